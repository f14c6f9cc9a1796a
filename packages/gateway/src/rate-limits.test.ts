import { VirtualClock } from "@weft/testkit";
import { describe, expect, it } from "vitest";
import { GatewayRateLimit } from "./rate-limits.js";

describe("GatewayRateLimit", () => {
  it("shares one bucket across clients unless perClient", () => {
    const clock = new VirtualClock();
    const l = new GatewayRateLimit({ requestsPerSecond: 2, burst: 2, perClient: false }, clock);
    expect([l.take("a").ok, l.take("b").ok, l.take("c").ok]).toEqual([true, true, false]);
    expect(l.take("a")).toEqual({ ok: false, retryAfterSeconds: 1 });
    clock.advance(500);
    expect(l.take("c").ok).toBe(true);
  });

  it("keeps one bucket per client, bounded in number", () => {
    const clock = new VirtualClock();
    const l = new GatewayRateLimit({ requestsPerSecond: 0.1, burst: 1, perClient: true }, clock, 3);
    expect(l.take("a").ok).toBe(true);
    expect(l.take("a")).toEqual({ ok: false, retryAfterSeconds: 10 });
    expect(l.take("b").ok).toBe(true);
    for (const c of ["c", "d", "e"]) l.take(c);
    expect(l.clients).toBe(3);
    // "a" was evicted (oldest): a new bucket, full again.
    expect(l.take("a").ok).toBe(true);
  });
});
