import { type Clock, systemClock } from "@weft/core";

/**
 * A cluster's retry budget: over a sliding window, retries may be at most
 * `percent`% of the requests started, plus a floor of `minRetriesPerSecond`
 * (so a quiet service can still retry). This is the ratio-over-a-window
 * model of Linkerd and Finagle (`RetryBudget`: TTL'd deposits, a reserve per
 * second), which is what the schema's `minRetriesPerSecond` names; Envoy's
 * in-flight variant (retries in flight ≤ percent of active requests) is
 * weaker for a client that sends one request at a time, and concurrent
 * retries are the circuit breaker's `maxRetries` anyway.
 *
 * The point is that retries cannot amplify an outage: with a 100% failing
 * upstream, the load it sees is at most (1 + percent/100) × requests, plus
 * the floor.
 *
 * State is a ring of one-second slots; time comes from an injected Clock so
 * the window is tested on virtual time. Not thread-safe (nothing is).
 */

export interface RetryBudgetOptions {
  percent: number;
  minRetriesPerSecond: number;
  /** Default 10 s (Linkerd's default TTL). */
  windowMs?: number;
  clock?: Clock;
}

interface Slot {
  /** Start of the slot, ms since the epoch, a multiple of SLOT_MS; -1 when unused. */
  start: number;
  requests: number;
  retries: number;
}

const SLOT_MS = 1_000;

export class RetryBudget {
  private percent: number;
  private minPerSecond: number;
  private readonly windowMs: number;
  private readonly clock: Clock;
  private readonly slots: Slot[];

  constructor(opts: RetryBudgetOptions) {
    this.percent = opts.percent;
    this.minPerSecond = opts.minRetriesPerSecond;
    this.windowMs = Math.max(SLOT_MS, opts.windowMs ?? 10_000);
    this.clock = opts.clock ?? systemClock;
    const n = Math.ceil(this.windowMs / SLOT_MS);
    this.slots = Array.from({ length: n }, () => ({ start: -1, requests: 0, retries: 0 }));
  }

  /** New limits from a config change; what was counted so far stays counted. */
  configure(percent: number, minRetriesPerSecond: number): void {
    this.percent = percent;
    this.minPerSecond = minRetriesPerSecond;
  }

  /** Counts a request's first try (a deposit). */
  recordRequest(): void {
    this.slot().requests++;
  }

  /** Takes one retry from the budget; false (and nothing taken) when it is spent. */
  tryAcquire(): boolean {
    if (this.available() < 1) return false;
    this.slot().retries++;
    return true;
  }

  /** Retries that may still be taken now (fractional). */
  available(): number {
    const { requests, retries } = this.totals();
    const reserve = (this.minPerSecond * this.windowMs) / 1000;
    return (requests * this.percent) / 100 + reserve - retries;
  }

  /** Requests and retries counted in the current window. */
  totals(): { requests: number; retries: number } {
    const oldest = this.slotStart(this.clock.now()) - this.windowMs + SLOT_MS;
    let requests = 0;
    let retries = 0;
    for (const s of this.slots) {
      if (s.start >= oldest) {
        requests += s.requests;
        retries += s.retries;
      }
    }
    return { requests, retries };
  }

  private slotStart(now: number): number {
    return Math.floor(now / SLOT_MS) * SLOT_MS;
  }

  private slot(): Slot {
    const start = this.slotStart(this.clock.now());
    const s = this.slots[Math.floor(start / SLOT_MS) % this.slots.length] as Slot;
    if (s.start !== start) {
      s.start = start;
      s.requests = 0;
      s.retries = 0;
    }
    return s;
  }
}
