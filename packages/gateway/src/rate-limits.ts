/**
 * Gateway rate limits (`rateLimit: {requestsPerSecond, burst, perClient}` on
 * a listener or a route): token buckets from the data plane, one for the
 * whole listener/route or one per client address. Per-client buckets live
 * in a bounded map (oldest evicted first), so a scan from many addresses
 * costs at most `maxClients` buckets. Refused requests get the wait for the
 * next token as whole seconds (`retry-after`).
 */

import type { Clock } from "@weft/core";
import { TokenBucket } from "@weft/dataplane";

export interface RateLimitSpec {
  requestsPerSecond: number;
  burst: number;
  perClient: boolean;
}

export type LimitVerdict = { ok: true } | { ok: false; retryAfterSeconds: number };

const OK: LimitVerdict = Object.freeze({ ok: true });
export const MAX_CLIENT_BUCKETS = 10_000;

export class GatewayRateLimit {
  private readonly shared: TokenBucket | undefined;
  private readonly perClient = new Map<string, TokenBucket>();

  constructor(
    private readonly spec: RateLimitSpec,
    private readonly clock: Clock,
    private readonly maxClients = MAX_CLIENT_BUCKETS,
  ) {
    if (!spec.perClient) this.shared = new TokenBucket(spec.requestsPerSecond, spec.burst, clock);
  }

  take(client: string): LimitVerdict {
    let bucket = this.shared;
    if (bucket === undefined) {
      bucket = this.perClient.get(client);
      if (bucket === undefined) {
        if (this.perClient.size >= this.maxClients) {
          const oldest = this.perClient.keys().next().value;
          if (oldest !== undefined) this.perClient.delete(oldest);
        }
        bucket = new TokenBucket(this.spec.requestsPerSecond, this.spec.burst, this.clock);
        this.perClient.set(client, bucket);
      }
    }
    const waitMs = bucket.take();
    return waitMs === 0 ? OK : { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  get clients(): number {
    return this.perClient.size;
  }
}
