/**
 * Blocking queries (long-poll): `?index=N&wait=DUR` holds a read until the
 * answer's index passes N or `wait` elapses. Event-driven: the services call
 * `notify(topic)` from their store watch, so a change is answered within
 * milliseconds. Bounded: at most `maxWaiters` held requests per server (503
 * beyond), `wait` capped; a client that goes away releases its waiter;
 * `closeAll()` (server drain) answers every waiter with its current state.
 */
import { BLOCKING_DEFAULT_WAIT_MS, BLOCKING_MAX_WAIT_MS } from "@weft/api";
import { type Clock, parseDuration, systemClock, type TimerHandle, weftError } from "@weft/core";

export const DEFAULT_MAX_WAITERS = 10_000;

interface Waiter {
  current: () => number;
  minIndex: number;
  done: () => void;
}

export interface BlockingParams {
  index: number;
  waitMs: number;
}

export class BlockingQueries {
  private readonly topics = new Map<string, Set<Waiter>>();
  private count = 0;
  private closed = false;
  private readonly clock: Clock;
  private readonly maxWaiters: number;

  constructor(opts: { clock?: Clock; maxWaiters?: number } = {}) {
    this.clock = opts.clock ?? systemClock;
    this.maxWaiters = opts.maxWaiters ?? DEFAULT_MAX_WAITERS;
  }

  /** `index` and `wait` from a query string; undefined when the read is not blocking. Throws 400. */
  static parse(query: URLSearchParams): BlockingParams | undefined {
    const idx = query.get("index");
    const wait = query.get("wait");
    if (idx === null) {
      if (wait !== null)
        throw weftError("WEFT_ERR_BAD_QUERY", { param: "wait", detail: "only valid with index" });
      return undefined;
    }
    if (!/^\d{1,15}$/.test(idx))
      throw weftError("WEFT_ERR_BAD_QUERY", { param: "index", detail: "expected a non-negative integer" });
    let waitMs = BLOCKING_DEFAULT_WAIT_MS;
    if (wait !== null) {
      const r = parseDuration(wait);
      if (!r.ok) throw weftError("WEFT_ERR_BAD_QUERY", { param: "wait", detail: r.error });
      waitMs = Math.min(r.ms, BLOCKING_MAX_WAIT_MS);
    }
    return { index: Number(idx), waitMs };
  }

  get waiting(): number {
    return this.count;
  }

  /**
   * Resolves when `current()` differs from `minIndex` (checked now and on each
   * `notify(topic)`), after `waitMs`, when `signal` aborts, or on close.
   */
  wait(
    topic: string,
    current: () => number,
    minIndex: number,
    waitMs: number,
    signal?: AbortSignal,
  ): Promise<void> {
    const now = current();
    // now < minIndex: the client's index is from another store (a restarted memory store):
    // answer at once so that it resets to ours, as Consul does, instead of hanging for `wait`.
    if (this.closed || now !== minIndex || waitMs <= 0 || signal?.aborted) return Promise.resolve();
    if (this.count >= this.maxWaiters) {
      return Promise.reject(
        weftError("WEFT_ERR_UNAVAILABLE", {
          detail: `too many blocking queries (${this.maxWaiters}); retry later`,
        }),
      );
    }
    return new Promise((resolve) => {
      let set = this.topics.get(topic);
      if (!set) {
        set = new Set();
        this.topics.set(topic, set);
      }
      const waiters = set;
      let timer: TimerHandle | undefined;
      const waiter: Waiter = {
        current,
        minIndex,
        done: () => {
          if (!waiters.delete(waiter)) return;
          this.count--;
          if (waiters.size === 0 && this.topics.get(topic) === waiters) this.topics.delete(topic);
          timer?.cancel();
          signal?.removeEventListener("abort", waiter.done);
          resolve();
        },
      };
      waiters.add(waiter);
      this.count++;
      timer = this.clock.setTimeout(waiter.done, waitMs);
      signal?.addEventListener("abort", waiter.done, { once: true });
    });
  }

  /** Wakes the waiters of `topic` whose index has moved past theirs. */
  notify(topic: string): void {
    const set = this.topics.get(topic);
    if (!set) return;
    for (const w of [...set]) if (w.current() !== w.minIndex) w.done();
  }

  /** Answers every held request now and refuses to hold new ones (server drain). */
  closeAll(): void {
    this.closed = true;
    for (const set of [...this.topics.values()]) for (const w of [...set]) w.done();
  }
}
