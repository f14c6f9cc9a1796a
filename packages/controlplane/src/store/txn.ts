/**
 * Transaction semantics, written once so every backend behaves the same:
 * validation, compare evaluation and turning a list of ops into one commit.
 * A backend only has to read keys and apply a `Commit` atomically.
 *
 * Rules (etcd's, so the etcd adapter is thin):
 * - A key may be written at most once per branch: two puts of one key, or a
 *   put inside a deletePrefix of the same branch, are refused. This keeps
 *   "one event per key per revision" true for watchers.
 * - Compares against a missing key see version/createRevision/modRevision 0;
 *   a `value` compare (= or !=) on a missing key is false.
 * - Ops run in order and a `get` sees earlier writes of the same txn.
 */

import { weftError } from "@weft/core";
import { checkKey, checkPrefix, checkValue } from "./keys.js";
import type { Compare, KeyValue, TxnOp, TxnRequest, WatchBatch, WatchEvent } from "./store.js";

/** Everything one revision changes; applied atomically by the backend. */
export interface Commit {
  readonly revision: number;
  /** Final state of each written key (each key at most once). */
  readonly puts: readonly KeyValue[];
  /** Deleted keys (disjoint from `puts`). */
  readonly deletes: readonly string[];
  /** The events watchers receive and history records. */
  readonly batch: WatchBatch;
}

export interface Execution {
  readonly results: (KeyValue | undefined)[];
  /** Undefined when nothing changed (the revision does not move). */
  readonly commit: Commit | undefined;
}

/** Read access a txn needs from the backend's committed state. */
export interface KvReader {
  get(key: string): KeyValue | undefined;
  /** All pairs whose key starts with `prefix`, in key order. */
  scan(prefix: string): readonly KeyValue[];
}

function checkOps(ops: readonly TxnOp[] | undefined, branch: string): readonly TxnOp[] {
  if (ops === undefined) return [];
  if (!Array.isArray(ops)) throw weftError("WEFT_ERR_VALIDATION", { detail: `txn ${branch} must be a list` });
  const keys = new Set<string>();
  const prefixes: string[] = [];
  const dup = (what: string) =>
    weftError("WEFT_ERR_VALIDATION", { detail: `txn ${branch} writes ${what} more than once` });
  for (const op of ops) {
    switch (op?.type) {
      case "get":
        checkKey(op.key);
        break;
      case "put":
      case "delete":
        checkKey(op.key);
        if (op.type === "put") checkValue(op.value);
        if (keys.has(op.key)) throw dup(`key "${op.key}"`);
        keys.add(op.key);
        break;
      case "deletePrefix":
        checkPrefix(op.prefix);
        prefixes.push(op.prefix);
        break;
      default:
        throw weftError("WEFT_ERR_VALIDATION", { detail: `txn ${branch}: unknown op type` });
    }
  }
  for (const [i, p] of prefixes.entries()) {
    for (const k of keys) if (k.startsWith(p)) throw dup(`key "${k}" (also inside prefix "${p}")`);
    for (const [j, q] of prefixes.entries()) {
      if (i !== j && q.startsWith(p)) throw dup(`prefix "${q}" (inside prefix "${p}")`);
    }
  }
  return ops;
}

const NUMERIC_TARGETS = new Set(["modRevision", "createRevision", "version"]);

function checkCompare(c: Compare): void {
  checkKey(c?.key, "compare key");
  if (c.target === "exists") {
    if (typeof c.value !== "boolean") {
      throw weftError("WEFT_ERR_VALIDATION", { detail: "txn compare on exists needs a boolean value" });
    }
  } else if (c.target === "value") {
    if (c.op !== "=" && c.op !== "!=") {
      throw weftError("WEFT_ERR_VALIDATION", { detail: 'txn compare on value supports "=" and "!=" only' });
    }
    checkValue(c.value);
  } else if (NUMERIC_TARGETS.has(c.target)) {
    if (!["=", "!=", "<", ">"].includes(c.op) || !Number.isFinite(c.value)) {
      throw weftError("WEFT_ERR_VALIDATION", { detail: `txn compare on ${c.target} is malformed` });
    }
  } else {
    throw weftError("WEFT_ERR_VALIDATION", { detail: "txn compare has an unknown target" });
  }
}

/** Validates a request up front (both branches), so nothing fails half-way. */
export function checkTxn(req: TxnRequest): TxnRequest {
  if (req === null || typeof req !== "object" || !Array.isArray(req.compare)) {
    throw weftError("WEFT_ERR_VALIDATION", { detail: "txn needs a compare list" });
  }
  for (const c of req.compare) checkCompare(c);
  checkOps(req.success, "success");
  checkOps(req.failure, "failure");
  return req;
}

export function compareHolds(kv: KeyValue | undefined, c: Compare): boolean {
  if (c.target === "exists") return (kv !== undefined) === c.value;
  if (c.target === "value") {
    if (kv === undefined) return false;
    return c.op === "=" ? kv.value === c.value : kv.value !== c.value;
  }
  const actual = kv === undefined ? 0 : kv[c.target];
  switch (c.op) {
    case "=":
      return actual === c.value;
    case "!=":
      return actual !== c.value;
    case "<":
      return actual < c.value;
    case ">":
      return actual > c.value;
  }
}

/**
 * Runs validated ops against `reader` as revision `revision` would. Nothing
 * is written: the caller applies the returned commit (if any) atomically.
 */
export function execute(reader: KvReader, ops: readonly TxnOp[], revision: number): Execution {
  const staged = new Map<string, KeyValue | undefined>();
  const read = (key: string) => (staged.has(key) ? staged.get(key) : reader.get(key));
  const results: (KeyValue | undefined)[] = [];
  const events: WatchEvent[] = [];
  const puts: KeyValue[] = [];
  const deletes: string[] = [];
  const remove = (prev: KeyValue) => {
    staged.set(prev.key, undefined);
    deletes.push(prev.key);
    events.push({ type: "delete", key: prev.key, revision, prev });
  };
  for (const op of ops) {
    if (op.type === "get") {
      results.push(read(op.key));
    } else if (op.type === "put") {
      const prev = read(op.key);
      const kv: KeyValue = Object.freeze({
        key: op.key,
        value: op.value,
        createRevision: prev ? prev.createRevision : revision,
        modRevision: revision,
        version: prev ? prev.version + 1 : 1,
      });
      staged.set(op.key, kv);
      puts.push(kv);
      events.push({ type: "put", kv, prev });
      results.push(prev);
    } else if (op.type === "delete") {
      const prev = read(op.key);
      if (prev) remove(prev);
      results.push(prev);
    } else {
      // checkOps guarantees no other write of this branch touches the prefix,
      // so the committed state is the whole truth here.
      for (const prev of reader.scan(op.prefix)) remove(prev);
      results.push(undefined);
    }
  }
  if (events.length === 0) return { results, commit: undefined };
  const batch: WatchBatch = Object.freeze({ revision, events: Object.freeze(events) });
  return { results, commit: { revision, puts, deletes, batch } };
}
