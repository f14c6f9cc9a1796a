/**
 * Deadlines for many keys on one timer: a hashed wheel of `granularityMs`
 * buckets. Scheduling and rescheduling a key is O(1) (a heartbeat moves its
 * check to a later bucket); each tick only visits the buckets that came due,
 * so 10,000 checks cost nothing between their deadlines. A key fires at or
 * after its deadline, at most one granularity late.
 */
import type { Clock, Disposable, TimerHandle } from "@weft/core";

export class DeadlineWheel<K> implements Disposable {
  private readonly buckets = new Map<number, Set<K>>();
  private readonly bucketOf = new Map<K, number>();
  private lastSwept: number;
  private readonly timer: TimerHandle;

  constructor(
    private readonly clock: Clock,
    private readonly onDue: (key: K) => void,
    private readonly granularityMs = 100,
  ) {
    this.lastSwept = this.floor(clock.now());
    this.timer = clock.setInterval(() => this.tick(), granularityMs);
  }

  private floor(t: number): number {
    return Math.floor(t / this.granularityMs) * this.granularityMs;
  }

  /** Fires `onDue(key)` once at or after `deadline`; replaces the key's previous deadline. */
  schedule(key: K, deadline: number): void {
    let bucket = Math.ceil(deadline / this.granularityMs) * this.granularityMs;
    if (bucket <= this.lastSwept) bucket = this.lastSwept + this.granularityMs;
    const prev = this.bucketOf.get(key);
    if (prev === bucket) return;
    if (prev !== undefined) this.buckets.get(prev)?.delete(key);
    let set = this.buckets.get(bucket);
    if (!set) {
      set = new Set();
      this.buckets.set(bucket, set);
    }
    set.add(key);
    this.bucketOf.set(key, bucket);
  }

  cancel(key: K): void {
    const prev = this.bucketOf.get(key);
    if (prev === undefined) return;
    this.buckets.get(prev)?.delete(key);
    this.bucketOf.delete(key);
  }

  get size(): number {
    return this.bucketOf.size;
  }

  /** Runs due buckets; public so tests and callers can force a sweep. */
  tick(): void {
    const now = this.floor(this.clock.now());
    if (now <= this.lastSwept) return;
    const steps = (now - this.lastSwept) / this.granularityMs;
    let due: number[];
    if (steps <= this.buckets.size) {
      due = [];
      for (let b = this.lastSwept + this.granularityMs; b <= now; b += this.granularityMs) {
        if (this.buckets.has(b)) due.push(b);
      }
    } else {
      // A long gap (process paused, clock jumped): visit the buckets, not the steps.
      due = [...this.buckets.keys()].filter((b) => b <= now).sort((a, b) => a - b);
    }
    this.lastSwept = now;
    for (const b of due) {
      const set = this.buckets.get(b);
      this.buckets.delete(b);
      if (!set) continue;
      for (const key of set) {
        this.bucketOf.delete(key);
        this.onDue(key);
      }
    }
  }

  dispose(): void {
    this.timer.cancel();
    this.buckets.clear();
    this.bucketOf.clear();
  }
}
