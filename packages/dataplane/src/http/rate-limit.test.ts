import { VirtualClock } from "@weft/testkit";
import { describe, expect, it } from "vitest";
import { FLAGS_HEADER, Flag } from "./flags.js";
import { localReply, rawLocalReply } from "./local-reply.js";
import { createRateLimiter, InboundRateLimits, type RateLimitVerdict, TokenBucket } from "./rate-limit.js";

/** Takes `n` tokens at once; returns how many were granted. */
function drain(take: () => RateLimitVerdict, n: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if (take().ok) ok++;
  return ok;
}

describe("TokenBucket", () => {
  it("starts full, grants `burst` at once, then refills `requestsPerSecond`", () => {
    const clock = new VirtualClock();
    const b = new TokenBucket(10, 10, clock);
    for (let i = 0; i < 10; i++) expect(b.take()).toBe(0);
    expect(b.take()).toBeCloseTo(100, 6);
    clock.advance(50);
    expect(b.take()).toBeCloseTo(50, 6);
    clock.advance(50);
    expect(b.take()).toBe(0);
    expect(b.take()).toBeCloseTo(100, 6);
  });

  it("never holds more than `burst`, however long it was idle", () => {
    const clock = new VirtualClock();
    const b = new TokenBucket(100, 5, clock);
    clock.advance(3_600_000);
    let granted = 0;
    while (b.take() === 0) granted++;
    expect(granted).toBe(5);
  });

  it("refills fractional rates (one token every 2 s at 0.5 rps)", () => {
    const clock = new VirtualClock();
    const b = new TokenBucket(0.5, 1, clock);
    expect(b.take()).toBe(0);
    expect(b.take()).toBeCloseTo(2_000, 6);
    clock.advance(1_999);
    expect(b.take()).toBeGreaterThan(0);
    clock.advance(1);
    expect(b.take()).toBe(0);
  });

  it("refills nothing when the clock goes back", () => {
    const clock = new VirtualClock(10_000);
    let offset = 0;
    const skewed = { ...clock, now: () => clock.now() + offset };
    const b = new TokenBucket(1, 1, skewed as VirtualClock);
    expect(b.take()).toBe(0);
    offset = -5_000;
    expect(b.take()).toBeCloseTo(1_000, 6);
    // Forward again to where it was: still no token (the way back was not counted as refill).
    offset = 0;
    expect(b.take()).toBeCloseTo(1_000, 6);
  });
});

describe("createRateLimiter", () => {
  it("refuses with retry-after rounded up to whole seconds, at least 1", () => {
    const clock = new VirtualClock();
    const rl = createRateLimiter({ requestsPerSecond: 10, burst: 10 }, clock);
    expect(drain(() => rl.request("/"), 30)).toBe(10);
    // Next token in 100 ms: still 1 s.
    expect(rl.request("/")).toEqual({ ok: false, limit: "service", retryAfterSeconds: 1 });
    const slow = createRateLimiter({ requestsPerSecond: 0.4, burst: 1 }, clock);
    expect(slow.request("/").ok).toBe(true);
    // Next token in 2.5 s: 3.
    expect(slow.request("/")).toEqual({ ok: false, limit: "service", retryAfterSeconds: 3 });
    clock.advance(2_000);
    expect(slow.request("/")).toEqual({ ok: false, limit: "service", retryAfterSeconds: 1 });
  });

  it("takes from the first matching route, then the service-wide bucket", () => {
    const clock = new VirtualClock();
    const rl = createRateLimiter(
      {
        requestsPerSecond: 5,
        burst: 5,
        routes: [
          { pathExact: "/login", requestsPerSecond: 1, burst: 1 },
          { pathPrefix: "/slow-lane", requestsPerSecond: 1, burst: 2 },
          { pathRegex: "/items/[0-9]+", requestsPerSecond: 1, burst: 3 },
          // Never reached for /slow-lane/...: the first match wins.
          { pathPrefix: "/slow", requestsPerSecond: 1, burst: 100 },
        ],
      },
      clock,
    );
    expect(drain(() => rl.request("/login"), 5)).toBe(1);
    expect(rl.request("/login")).toMatchObject({ ok: false, limit: "route[0]" });
    expect(drain(() => rl.request("/slow-lane/x"), 5)).toBe(2);
    expect(rl.request("/slow-lane")).toMatchObject({ ok: false, limit: "route[1]" });
    expect(drain(() => rl.request("/items/42"), 5)).toBe(3);
    // A full match: /items/42/x is not route[2], so it takes from the service bucket.
    expect(drain(() => rl.request("/items/42/x"), 3)).toBe(3);
    expect(drain(() => rl.request("/slowpoke"), 5)).toBe(5);
    // The route buckets took nothing from the service-wide one: 2 of its 5 are left.
    expect(drain(() => rl.request("/other"), 5)).toBe(2);
    expect(rl.request("/other")).toMatchObject({ ok: false, limit: "service" });
  });

  it("leaves paths no route matches unlimited when there is no service-wide bucket", () => {
    const clock = new VirtualClock();
    const rl = createRateLimiter(
      { routes: [{ pathPrefix: "/slow-lane", requestsPerSecond: 1, burst: 1 }] },
      clock,
    );
    expect(drain(() => rl.request("/fast"), 1_000)).toBe(1_000);
    expect(drain(() => rl.connection(), 1_000)).toBe(1_000);
    expect(drain(() => rl.request("/slow-lane/a"), 3)).toBe(1);
  });

  it("counts a TCP connection as one request against the service-wide bucket", () => {
    const clock = new VirtualClock();
    const rl = createRateLimiter(
      { requestsPerSecond: 2, burst: 3, routes: [{ pathPrefix: "/", requestsPerSecond: 1, burst: 1 }] },
      clock,
    );
    expect(drain(() => rl.connection(), 5)).toBe(3);
    expect(rl.connection()).toEqual({ ok: false, limit: "service", retryAfterSeconds: 1 });
    clock.advance(500);
    expect(rl.connection().ok).toBe(true);
  });
});

describe("InboundRateLimits", () => {
  it("keeps the buckets' state when a new snapshot has the same limits, replaces them when they change", () => {
    const clock = new VirtualClock();
    const limits = new InboundRateLimits(clock);
    expect(limits.active).toBe(false);
    expect(drain(() => limits.request("/"), 100)).toBe(100);

    limits.update({ requestsPerSecond: 1, burst: 3 });
    expect(limits.active).toBe(true);
    expect(drain(() => limits.request("/"), 5)).toBe(3);
    // Same limits, members in another order: the empty bucket stays empty.
    limits.update({ burst: 3, requestsPerSecond: 1 });
    expect(limits.request("/").ok).toBe(false);
    // Different limits: fresh, full buckets.
    limits.update({ requestsPerSecond: 1, burst: 4 });
    expect(drain(() => limits.request("/"), 10)).toBe(4);
    // Removed: unlimited again.
    limits.update(undefined);
    expect(limits.active).toBe(false);
    expect(drain(() => limits.request("/"), 100)).toBe(100);
  });

  it("keeps the config in use when a new one cannot be compiled", () => {
    const clock = new VirtualClock();
    const limits = new InboundRateLimits(clock);
    limits.update({ requestsPerSecond: 1, burst: 1 });
    expect(limits.request("/").ok).toBe(true);
    expect(() => limits.update({ routes: [{ pathRegex: "(", requestsPerSecond: 1, burst: 1 }] })).toThrow();
    expect(limits.request("/")).toMatchObject({ ok: false, limit: "service" });
  });

  it("prepare compiles without using the limits until its result is called", () => {
    const clock = new VirtualClock();
    const limits = new InboundRateLimits(clock);
    const use = limits.prepare({ requestsPerSecond: 1, burst: 1 });
    expect(limits.active).toBe(false);
    use();
    expect(drain(() => limits.request("/"), 3)).toBe(1);
  });
});

describe("the 429 local reply", () => {
  it("carries retry-after and flag RL; for gRPC a trailers-only RESOURCE_EXHAUSTED with retry-after", () => {
    const extra = { "retry-after": "2" };
    const plain = localReply(429, "local rate limit exceeded", Flag.RateLimited, false, extra);
    expect(plain.status).toBe(429);
    expect(plain.headers).toMatchObject({ "retry-after": "2", [FLAGS_HEADER]: "RL" });
    const grpc = localReply(429, "local rate limit exceeded", Flag.RateLimited, true, extra);
    expect(grpc).toMatchObject({ status: 200, endStream: true, body: "" });
    expect(grpc.headers).toMatchObject({ "grpc-status": "8", "retry-after": "2", [FLAGS_HEADER]: "RL" });
    expect(rawLocalReply(429, "x", Flag.RateLimited, extra)).toMatch(
      /^HTTP\/1\.1 429 Too Many Requests\r\n[\s\S]*retry-after: 2\r\n/,
    );
  });
});
