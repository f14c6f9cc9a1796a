/**
 * Circuit breaking per cluster (Envoy's cluster circuit breakers): counters
 * of what is in use right now — connections, requests waiting for a
 * connection, requests in flight, retries in flight — against the limits of
 * the cluster's `circuitBreaker` config. A caller asks for a lease before it
 * starts; no lease = overflow, and the caller fails fast (503, flag UO)
 * instead of queueing behind a struggling upstream.
 *
 * The counters outlive config updates: a new snapshot changes the limits,
 * and leases taken under the old ones are released against the same
 * counters, so a lowered limit applies as soon as enough leases end.
 */
import type { CircuitBreakerConfig } from "@weft/api/snapshot";

/** The four limits, named as the overflow metric labels them. */
export type BreakerLimit = "connections" | "pending_requests" | "requests" | "retries";

export const BREAKER_LIMITS: readonly BreakerLimit[] = [
  "connections",
  "pending_requests",
  "requests",
  "retries",
];

/** Ends a lease; calling it more than once is harmless. */
export type Release = () => void;

/** What the HTTP and TCP engines see of a breaker. Must not throw, must not block. */
export interface Breaker {
  /** A lease on one unit of `limit`, or undefined when the limit is reached (overflow, counted). */
  acquire(limit: BreakerLimit): Release | undefined;
}

function limitOf(cfg: CircuitBreakerConfig, limit: BreakerLimit): number {
  switch (limit) {
    case "connections":
      return cfg.maxConnections;
    case "pending_requests":
      return cfg.maxPendingRequests;
    case "requests":
      return cfg.maxRequests;
    case "retries":
      return cfg.maxRetries;
  }
}

export class CircuitBreaker implements Breaker {
  private readonly active: Record<BreakerLimit, number> = {
    connections: 0,
    pending_requests: 0,
    requests: 0,
    retries: 0,
  };

  constructor(
    private limits: CircuitBreakerConfig,
    /** Told of every refused lease (metrics). Must not throw. */
    private readonly onOverflow?: (limit: BreakerLimit) => void,
  ) {}

  configure(limits: CircuitBreakerConfig): void {
    this.limits = limits;
  }

  acquire(limit: BreakerLimit): Release | undefined {
    if (this.active[limit] >= limitOf(this.limits, limit)) {
      try {
        this.onOverflow?.(limit);
      } catch {
        // Metrics must never break traffic.
      }
      return undefined;
    }
    this.active[limit]++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active[limit]--;
    };
  }

  /** Leases currently held for `limit` (admin, tests). */
  inUse(limit: BreakerLimit): number {
    return this.active[limit];
  }
}
