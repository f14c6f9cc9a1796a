/**
 * Exponential backoff with "full jitter" (AWS architecture blog): the delay
 * for attempt n is uniform in [0, min(max, base * factor^n)], with a floor so
 * a reconnect storm never spins. Reconnects, restarts and retries use it.
 */

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  factor?: number;
  /** Fraction of the delay that is randomised (1 = full jitter, 0 = none). */
  jitter?: number;
  /** Source of randomness in [0, 1); injectable for tests. */
  random?: () => number;
}

export function backoffDelay(attempt: number, opts: BackoffOptions): number {
  const factor = opts.factor ?? 2;
  const jitter = opts.jitter ?? 1;
  const random = opts.random ?? Math.random;
  const ceiling = Math.min(opts.maxMs, opts.baseMs * factor ** Math.max(0, Math.min(attempt, 60)));
  const fixed = ceiling * (1 - jitter);
  return Math.max(1, Math.round(fixed + random() * ceiling * jitter));
}

/** A stateful helper: `next()` returns the next delay, `reset()` after success. */
export class Backoff {
  private attempt = 0;
  constructor(private readonly opts: BackoffOptions) {}
  next(): number {
    return backoffDelay(this.attempt++, this.opts);
  }
  reset(): void {
    this.attempt = 0;
  }
  get attempts(): number {
    return this.attempt;
  }
}
