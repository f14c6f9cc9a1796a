/**
 * The store interface, modelled on etcd's KV + Watch API so that the etcd
 * backend (issue #12) is a thin adapter. Keys are '/'-separated strings,
 * values are UTF-8 strings (JSON documents in practice).
 *
 * Contract, shared by every backend and checked by `contract.suite.ts`:
 * - Every mutation (put, delete that deletes, successful txn with writes)
 *   advances the store revision by exactly one; a txn is one revision.
 * - A promise that resolves means the write is durable for durable backends
 *   (SQLite: committed with synchronous=FULL in WAL mode).
 * - `createRevision` is the revision that created the key (reset after a
 *   delete), `modRevision` the last one that changed it, `version` counts
 *   changes since creation (1 on create).
 * - Watches deliver every event with revision > `fromRevision`, in revision
 *   order, each event exactly once, events of one txn in one batch. Asking
 *   for a revision older than the compaction point fails with
 *   WEFT_ERR_STORE_COMPACTED. Watch callbacks must not block; they run after
 *   the write that caused them has been acknowledged.
 * - Methods must not be called after `close()`; they reject with
 *   WEFT_ERR_STORE_CLOSED.
 */

import type { Disposable } from "@weft/core";

export interface KeyValue {
  readonly key: string;
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

export interface RangeOptions {
  /** At most this many results (in key order). 0 or absent: no limit. */
  limit?: number;
  /**
   * Only return keys strictly after this one (for paging: pass the last key
   * of the previous page). Keys are ordered by code point, i.e. UTF-8 bytes.
   */
  startAfter?: string;
}

export interface RangeResult {
  readonly kvs: readonly KeyValue[];
  /** The store revision the range was read at. */
  readonly revision: number;
  /** True when `limit` cut the result short. */
  readonly more: boolean;
}

export interface PutResult {
  readonly revision: number;
  readonly prev: KeyValue | undefined;
}

export interface DeleteResult {
  readonly revision: number;
  /** The deleted pairs (empty when nothing matched; the revision then does not move). */
  readonly deleted: readonly KeyValue[];
}

/** A comparison in a transaction; all must hold for `success` to run. */
export type Compare =
  | {
      key: string;
      target: "modRevision" | "createRevision" | "version";
      op: "=" | "!=" | "<" | ">";
      value: number;
    }
  | { key: string; target: "value"; op: "=" | "!="; value: string }
  /** The key does / does not exist. */
  | { key: string; target: "exists"; value: boolean };

export type TxnOp =
  | { type: "put"; key: string; value: string }
  | { type: "delete"; key: string }
  | { type: "deletePrefix"; prefix: string }
  | { type: "get"; key: string };

export interface TxnRequest {
  compare: readonly Compare[];
  success: readonly TxnOp[];
  failure?: readonly TxnOp[];
}

export interface TxnResult {
  readonly succeeded: boolean;
  readonly revision: number;
  /** One entry per executed op: the value read for `get`, the previous value for put/delete. */
  readonly results: readonly (KeyValue | undefined)[];
}

export type WatchEvent =
  | { type: "put"; kv: KeyValue; prev: KeyValue | undefined }
  | { type: "delete"; key: string; revision: number; prev: KeyValue | undefined };

export interface WatchBatch {
  /** The revision of the events (all events of one txn share it). */
  readonly revision: number;
  readonly events: readonly WatchEvent[];
}

export interface WatchOptions {
  /** Deliver events with revision > fromRevision. Default: the current revision (future events only). */
  fromRevision?: number;
  /** Called once if the watch breaks (e.g. compaction, store closed). */
  onError?: (err: Error) => void;
}

export interface Store extends Disposable {
  /** Backend name for logs and `weft server` output ("memory", "sqlite", "etcd"). */
  readonly backend: string;
  get(key: string): Promise<KeyValue | undefined>;
  range(prefix: string, opts?: RangeOptions): Promise<RangeResult>;
  put(key: string, value: string): Promise<PutResult>;
  delete(key: string): Promise<DeleteResult>;
  deletePrefix(prefix: string): Promise<DeleteResult>;
  txn(req: TxnRequest): Promise<TxnResult>;
  /** The current revision (0 for an empty, never-written store). */
  revision(): Promise<number>;
  /** Watches keys starting with `prefix` ("" for all). */
  watch(prefix: string, onBatch: (batch: WatchBatch) => void, opts?: WatchOptions): Promise<Disposable>;
  /** Drops history at or below `revision` (watches from before it become impossible). */
  compact(revision: number): Promise<void>;
  /** Flushes and releases resources. Idempotent. */
  close(): Promise<void>;
}

/** Factory registry (habit 6): backends register by URL scheme. */
export type StoreFactory = (url: URL) => Promise<Store>;
