/**
 * Local rate limits at the inbound listener (ServiceDefaults.rateLimit →
 * `InboundConfig.rateLimit`), Envoy's local_ratelimit: token buckets kept in
 * this proxy only, so a service with N instances admits up to N times the
 * configured rate. A request takes a token from the first route whose path
 * matches (declared order, matched as intentions match: the canonical path,
 * without the query), else from the service-wide bucket, else is not
 * limited. A TCP connection is one request against the service-wide bucket.
 *
 * Buckets refill lazily from an injected Clock on each take: no timers, so
 * nothing to dispose and nothing to test on real time.
 */
import { compileHttpMatch } from "@weft/api/authz";
import type { InboundRateLimit } from "@weft/api/snapshot";
import type { Clock } from "@weft/core";

/** Refills `requestsPerSecond` tokens a second, holds at most `burst`; starts full. */
export class TokenBucket {
  #tokens: number;
  #last: number;

  constructor(
    readonly requestsPerSecond: number,
    readonly burst: number,
    private readonly clock: Clock,
  ) {
    this.#tokens = burst;
    this.#last = clock.now();
  }

  /** Takes one token: 0 when taken, else the milliseconds until one is there (nothing taken). */
  take(): number {
    const now = this.clock.now();
    // A clock that goes back (wall time corrected) refills nothing, neither now nor on its way
    // forward again: only time past the latest instant seen counts.
    if (now > this.#last) {
      const refill = ((now - this.#last) * this.requestsPerSecond) / 1000;
      this.#tokens = Math.min(this.burst, this.#tokens + refill);
      this.#last = now;
    }
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return ((1 - this.#tokens) * 1000) / this.requestsPerSecond;
  }
}

/**
 * `limit` names the bucket with a bounded label: "route[i]" (index in the
 * config) or "service". Refused: `retryAfterSeconds` is the wait for the
 * next token in whole seconds, rounded up (at least 1), as `retry-after` says it.
 */
export type RateLimitVerdict = { ok: true } | { ok: false; limit: string; retryAfterSeconds: number };

const ALLOWED: RateLimitVerdict = Object.freeze({ ok: true });

export interface RateLimiter {
  /** An HTTP request on `path`: the canonical path without the query. Must not throw. */
  request(path: string): RateLimitVerdict;
  /** A TCP connection: one request against the service-wide bucket. */
  connection(): RateLimitVerdict;
}

interface RouteBucket {
  label: string;
  test: (path: string) => boolean;
  bucket: TokenBucket;
}

function verdict(bucket: TokenBucket, label: string): RateLimitVerdict {
  const waitMs = bucket.take();
  if (waitMs === 0) return ALLOWED;
  return { ok: false, limit: label, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
}

/** Compiles a checked config (checkSnapshot ran); throws only on a regex the check would refuse. */
export function createRateLimiter(config: InboundRateLimit, clock: Clock): RateLimiter {
  const routes: RouteBucket[] = (config.routes ?? []).map((r, i) => {
    const m = compileHttpMatch({
      ...(r.pathExact !== undefined ? { pathExact: r.pathExact } : {}),
      ...(r.pathPrefix !== undefined ? { pathPrefix: r.pathPrefix } : {}),
      ...(r.pathRegex !== undefined ? { pathRegex: r.pathRegex } : {}),
    });
    const noHeaders = (): undefined => undefined;
    return {
      label: `route[${i}]`,
      test: (path) => m.test({ method: "GET", path, headers: noHeaders }),
      bucket: new TokenBucket(r.requestsPerSecond, r.burst, clock),
    };
  });
  const service =
    config.requestsPerSecond !== undefined && config.burst !== undefined
      ? new TokenBucket(config.requestsPerSecond, config.burst, clock)
      : undefined;
  return {
    request(path) {
      for (const r of routes) if (r.test(path)) return verdict(r.bucket, r.label);
      return service ? verdict(service, "service") : ALLOWED;
    },
    connection() {
      return service ? verdict(service, "service") : ALLOWED;
    },
  };
}

/** The buckets of the config in use: replaced when a new snapshot changes the limits, kept (with their tokens) when not. */
export class InboundRateLimits implements RateLimiter {
  #key = "";
  #limiter: RateLimiter | undefined;

  constructor(private readonly clock: Clock) {}

  /** Applies a snapshot's limits (undefined = none). Throws only where createRateLimiter does, changing nothing. */
  update(config: InboundRateLimit | undefined): void {
    this.prepare(config)();
  }

  /**
   * Compiles a snapshot's limits without using them yet (throws as `update`
   * does); the returned function puts them in use. Lets the sidecar check a
   * whole snapshot before changing anything.
   */
  prepare(config: InboundRateLimit | undefined): () => void {
    const key = config === undefined ? "" : limitsKey(config);
    if (key === this.#key) return () => {};
    const limiter = config === undefined ? undefined : createRateLimiter(config, this.clock);
    return () => {
      this.#key = key;
      this.#limiter = limiter;
    };
  }

  get active(): boolean {
    return this.#limiter !== undefined;
  }

  request(path: string): RateLimitVerdict {
    return this.#limiter?.request(path) ?? ALLOWED;
  }

  connection(): RateLimitVerdict {
    return this.#limiter?.connection() ?? ALLOWED;
  }
}

/** Member order does not matter; everything the buckets and matching depend on does. */
function limitsKey(c: InboundRateLimit): string {
  return JSON.stringify([
    c.requestsPerSecond ?? null,
    c.burst ?? null,
    (c.routes ?? []).map((r) => [
      r.pathExact ?? null,
      r.pathPrefix ?? null,
      r.pathRegex ?? null,
      r.requestsPerSecond,
      r.burst,
    ]),
  ]);
}
