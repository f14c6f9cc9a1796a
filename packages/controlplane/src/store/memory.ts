/**
 * The in-memory backend: for tests, `weft dev` and as the reference the
 * contract suite is read against. Nothing survives the process.
 *
 * Keys live in a Map plus a sorted key array (binary search), so ranges are
 * O(log n + k) and writes O(n) in the worst case - fine for a registry of
 * thousands of keys. History is an array of committed batches.
 */

import { BaseStore, type BaseStoreOptions } from "./base-store.js";
import { compareKeys } from "./keys.js";
import type { KeyValue, WatchBatch } from "./store.js";
import type { Commit } from "./txn.js";

export type MemoryStoreOptions = BaseStoreOptions;

export class MemoryStore extends BaseStore {
  readonly backend = "memory";
  private readonly kvs = new Map<string, KeyValue>();
  private readonly sorted: string[] = [];
  /** Committed batches with revision > `compacted`, oldest first. */
  private history: WatchBatch[] = [];

  constructor(opts: MemoryStoreOptions = {}) {
    super(opts);
  }

  getSync(key: string): KeyValue | undefined {
    return this.kvs.get(key);
  }

  scan(prefix: string, startAfter?: string, limit?: number): readonly KeyValue[] {
    let i = lowerBound(this.sorted, prefix);
    if (startAfter !== undefined && compareKeys(startAfter, prefix) >= 0) {
      i = lowerBound(this.sorted, startAfter);
      if (this.sorted[i] === startAfter) i++;
    }
    const out: KeyValue[] = [];
    for (; i < this.sorted.length; i++) {
      const key = this.sorted[i] as string;
      if (!key.startsWith(prefix)) break;
      if (limit !== undefined && out.length >= limit) break;
      out.push(this.kvs.get(key) as KeyValue);
    }
    return out;
  }

  readHistory(after: number, maxRevisions: number): readonly WatchBatch[] {
    // Revisions are dense in history, so the index is arithmetic.
    const first = this.history[0];
    if (!first) return [];
    const start = Math.max(0, after + 1 - first.revision);
    return this.history.slice(start, start + maxRevisions);
  }

  protected applyCommit(c: Commit, compactTo: number | undefined): void {
    for (const kv of c.puts) {
      if (!this.kvs.has(kv.key)) this.sorted.splice(lowerBound(this.sorted, kv.key), 0, kv.key);
      this.kvs.set(kv.key, kv);
    }
    for (const key of c.deletes) {
      this.kvs.delete(key);
      this.sorted.splice(lowerBound(this.sorted, key), 1);
    }
    this.history.push(c.batch);
    if (compactTo !== undefined) this.applyCompact(compactTo);
  }

  protected applyCompact(revision: number): void {
    const drop = this.history.findIndex((b) => b.revision > revision);
    this.history = drop < 0 ? [] : this.history.slice(drop);
  }

  protected release(): void {
    this.kvs.clear();
    this.sorted.length = 0;
    this.history = [];
  }
}

/** Index of the first element >= key in code point order. */
function lowerBound(arr: readonly string[], key: string): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(arr[mid] as string, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
