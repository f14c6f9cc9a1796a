import { describe, expect, it } from "vitest";
import { type BreakerLimit, CircuitBreaker } from "./breaker.js";

const LIMITS = { maxConnections: 2, maxPendingRequests: 1, maxRequests: 3, maxRetries: 0 };

describe("CircuitBreaker", () => {
  it("grants leases up to each limit, then refuses and reports the overflow", () => {
    const overflows: BreakerLimit[] = [];
    const b = new CircuitBreaker(LIMITS, (l) => overflows.push(l));
    const leases = [b.acquire("requests"), b.acquire("requests"), b.acquire("requests")];
    expect(leases.every((l) => l !== undefined)).toBe(true);
    expect(b.acquire("requests")).toBeUndefined();
    expect(b.acquire("retries")).toBeUndefined();
    // The limits are independent.
    expect(b.acquire("connections")).toBeDefined();
    expect(overflows).toEqual(["requests", "retries"]);
    expect(b.inUse("requests")).toBe(3);
  });

  it("frees a unit when a lease ends, once however often it is released", () => {
    const b = new CircuitBreaker(LIMITS);
    const a = b.acquire("pending_requests");
    expect(b.acquire("pending_requests")).toBeUndefined();
    a?.();
    a?.();
    expect(b.inUse("pending_requests")).toBe(0);
    expect(b.acquire("pending_requests")).toBeDefined();
    expect(b.acquire("pending_requests")).toBeUndefined();
  });

  it("keeps its counters across a new config: a lowered limit holds until enough leases end", () => {
    const b = new CircuitBreaker(LIMITS);
    const held = [b.acquire("requests"), b.acquire("requests"), b.acquire("requests")];
    b.configure({ ...LIMITS, maxRequests: 2 });
    held[0]?.();
    expect(b.acquire("requests")).toBeUndefined();
    held[1]?.();
    expect(b.acquire("requests")).toBeDefined();
    b.configure({ ...LIMITS, maxRequests: 10 });
    expect(b.acquire("requests")).toBeDefined();
    expect(b.inUse("requests")).toBe(3);
  });

  it("survives an overflow listener that throws", () => {
    const b = new CircuitBreaker({ ...LIMITS, maxRequests: 1 }, () => {
      throw new Error("metrics down");
    });
    b.acquire("requests");
    expect(b.acquire("requests")).toBeUndefined();
  });
});
