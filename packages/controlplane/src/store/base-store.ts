/**
 * The Store contract implemented once over a small backend surface: read a
 * key, scan a range, apply a commit atomically, read and trim history. The
 * memory and SQLite backends subclass this, so revision rules, txn semantics,
 * watches and the closed state cannot drift apart between them.
 *
 * Every operation runs synchronously to completion inside the promise it
 * returns (both backends are in-process and single-writer), so operations are
 * applied in call order and the cached revision is always the stored one.
 */

import { type Disposable, isWeftError, weftError } from "@weft/core";
import { checkKey, checkPrefix, checkRevision, checkValue } from "./keys.js";
import type {
  DeleteResult,
  KeyValue,
  PutResult,
  RangeOptions,
  RangeResult,
  Store,
  TxnRequest,
  TxnResult,
  WatchBatch,
  WatchOptions,
} from "./store.js";
import { type Commit, checkTxn, compareHolds, type Execution, execute } from "./txn.js";
import { type HistoryReader, WatchHub } from "./watch-hub.js";

export const DEFAULT_HISTORY_LIMIT = 10_000;

export interface BaseStoreOptions {
  /**
   * Revisions of history kept for watches (at least this many; trimming is
   * amortised over a tenth of it). Default 10,000.
   */
  historyLimit?: number;
}

export abstract class BaseStore implements Store, HistoryReader {
  abstract readonly backend: string;
  protected rev = 0;
  protected compacted = 0;
  protected closed = false;
  private readonly hub = new WatchHub(this);
  private readonly historyLimit: number;

  constructor(opts: BaseStoreOptions = {}) {
    const limit = opts.historyLimit ?? DEFAULT_HISTORY_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw weftError("WEFT_ERR_CONFIG_INVALID", { detail: "store historyLimit must be a positive integer" });
    }
    this.historyLimit = limit;
  }

  // --- the backend surface ---
  abstract getSync(key: string): KeyValue | undefined;
  abstract scan(prefix: string, startAfter?: string, limit?: number): readonly KeyValue[];
  abstract readHistory(after: number, maxRevisions: number): readonly WatchBatch[];
  /** Applies `c` atomically (and durably, for durable backends), trimming history to `compactTo` if set. */
  protected abstract applyCommit(c: Commit, compactTo: number | undefined): void;
  protected abstract applyCompact(revision: number): void;
  protected abstract release(): void;
  /** Turns a backend failure during a write into the error the caller sees. */
  protected writeFailed(e: unknown): Error {
    return isWeftError(e) ? e : weftError("WEFT_ERR_STORE_FAILED", { detail: String(e) }, { cause: e });
  }

  compactedRevision(): number {
    return this.compacted;
  }

  currentRevision(): number {
    return this.rev;
  }

  protected ensureOpen(): void {
    if (this.closed) throw weftError("WEFT_ERR_STORE_CLOSED");
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.ensureOpen();
    return this.getSync(checkKey(key));
  }

  async range(prefix: string, opts: RangeOptions = {}): Promise<RangeResult> {
    this.ensureOpen();
    checkPrefix(prefix);
    const limit = opts.limit ?? 0;
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw weftError("WEFT_ERR_VALIDATION", { detail: "range limit must be a non-negative integer" });
    }
    // "" (nothing read yet) is the same as no startAfter.
    const after = opts.startAfter === "" ? undefined : opts.startAfter;
    if (after !== undefined) checkKey(after, "startAfter");
    const kvs = this.scan(prefix, after, limit > 0 ? limit + 1 : undefined);
    const more = limit > 0 && kvs.length > limit;
    return { kvs: more ? kvs.slice(0, limit) : kvs, revision: this.rev, more };
  }

  async put(key: string, value: string): Promise<PutResult> {
    this.ensureOpen();
    checkKey(key);
    checkValue(value);
    const { results } = this.run([{ type: "put", key, value }]);
    return { revision: this.rev, prev: results[0] };
  }

  async delete(key: string): Promise<DeleteResult> {
    this.ensureOpen();
    checkKey(key);
    return this.deleted(this.run([{ type: "delete", key }]));
  }

  async deletePrefix(prefix: string): Promise<DeleteResult> {
    this.ensureOpen();
    checkPrefix(prefix);
    return this.deleted(this.run([{ type: "deletePrefix", prefix }]));
  }

  async txn(req: TxnRequest): Promise<TxnResult> {
    this.ensureOpen();
    checkTxn(req);
    const succeeded = req.compare.every((c) => compareHolds(this.getSync(c.key), c));
    const { results } = this.run(succeeded ? req.success : (req.failure ?? []));
    return { succeeded, revision: this.rev, results };
  }

  async revision(): Promise<number> {
    this.ensureOpen();
    return this.rev;
  }

  async watch(
    prefix: string,
    onBatch: (batch: WatchBatch) => void,
    opts: WatchOptions = {},
  ): Promise<Disposable> {
    this.ensureOpen();
    checkPrefix(prefix);
    if (opts.fromRevision !== undefined) checkRevision(opts.fromRevision, "watch fromRevision");
    return this.hub.watch(prefix, onBatch, opts);
  }

  async compact(revision: number): Promise<void> {
    this.ensureOpen();
    checkRevision(revision, "compact revision");
    if (revision > this.rev) {
      throw weftError("WEFT_ERR_VALIDATION", {
        detail: `cannot compact to revision ${revision}: the current revision is ${this.rev}`,
      });
    }
    if (revision <= this.compacted) return;
    try {
      this.applyCompact(revision);
    } catch (e) {
      throw this.writeFailed(e);
    }
    this.compacted = revision;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.hub.closeAll(weftError("WEFT_ERR_STORE_CLOSED"));
    this.release();
  }

  dispose(): Promise<void> {
    return this.close();
  }

  /** Number of live watches (for metrics and tests). */
  get watchCount(): number {
    return this.hub.size;
  }

  private deleted(ex: Execution): DeleteResult {
    return {
      revision: this.rev,
      deleted: ex.commit ? ex.commit.batch.events.map((e) => e.prev as KeyValue) : [],
    };
  }

  /** Executes validated ops as the next revision, commits, then notifies watchers. */
  private run(ops: TxnRequest["success"]): Execution {
    const ex = execute({ get: (k) => this.getSync(k), scan: (p) => this.scan(p) }, ops, this.rev + 1);
    if (!ex.commit) return ex;
    const c = ex.commit;
    // Trim history in the same commit once it exceeds the limit by a tenth,
    // so the cost is amortised and history never holds fewer than `limit`.
    const slack = Math.max(1, Math.floor(this.historyLimit / 10));
    const compactTo =
      c.revision - this.compacted > this.historyLimit + slack ? c.revision - this.historyLimit : undefined;
    try {
      this.applyCommit(c, compactTo);
    } catch (e) {
      throw this.writeFailed(e);
    }
    this.rev = c.revision;
    if (compactTo !== undefined) this.compacted = compactTo;
    this.hub.publish(c.batch);
    return ex;
  }
}
