import { VirtualClock } from "@weft/testkit";
import { describe, expect, it } from "vitest";
import { RetryBudget } from "./retry-budget.js";

function take(b: RetryBudget, n: number): number {
  let got = 0;
  for (let i = 0; i < n; i++) if (b.tryAcquire()) got++;
  return got;
}

describe("RetryBudget", () => {
  it("allows percent of the requests as retries, and no more", () => {
    const clock = new VirtualClock();
    const b = new RetryBudget({ percent: 20, minRetriesPerSecond: 0, clock });
    for (let i = 0; i < 100; i++) b.recordRequest();
    expect(take(b, 50)).toBe(20);
    expect(b.tryAcquire()).toBe(false);
    expect(b.totals()).toEqual({ requests: 100, retries: 20 });
  });

  it("earns retries as requests come in (one per five at 20%)", () => {
    const clock = new VirtualClock();
    const b = new RetryBudget({ percent: 20, minRetriesPerSecond: 0, clock });
    let retries = 0;
    // A 100% failing upstream: every request wants two retries.
    for (let i = 0; i < 1000; i++) {
      b.recordRequest();
      retries += take(b, 2);
      clock.advance(3);
    }
    expect(retries).toBeLessThanOrEqual(200);
    expect(retries).toBeGreaterThanOrEqual(195);
  });

  it("has a floor of minRetriesPerSecond over the window", () => {
    const clock = new VirtualClock();
    const b = new RetryBudget({ percent: 0, minRetriesPerSecond: 2, windowMs: 10_000, clock });
    expect(take(b, 100)).toBe(20);
  });

  it("forgets what left the window", () => {
    const clock = new VirtualClock();
    const b = new RetryBudget({ percent: 50, minRetriesPerSecond: 0, windowMs: 10_000, clock });
    for (let i = 0; i < 10; i++) b.recordRequest();
    expect(take(b, 10)).toBe(5);
    clock.advance(5_000);
    expect(b.tryAcquire()).toBe(false);
    clock.advance(5_000);
    // The window moved past both the requests and the retries.
    expect(b.totals()).toEqual({ requests: 0, retries: 0 });
    expect(b.tryAcquire()).toBe(false);
    b.recordRequest();
    b.recordRequest();
    expect(take(b, 5)).toBe(1);
  });

  it("keeps retries taken late in the window counted until they age out", () => {
    const clock = new VirtualClock();
    const b = new RetryBudget({ percent: 100, minRetriesPerSecond: 0, windowMs: 3_000, clock });
    b.recordRequest();
    clock.advance(2_000);
    expect(b.tryAcquire()).toBe(true);
    clock.advance(1_000);
    // The request aged out, the retry did not: nothing available.
    b.recordRequest();
    expect(b.tryAcquire()).toBe(false);
    clock.advance(2_000);
    b.recordRequest();
    expect(b.tryAcquire()).toBe(true);
  });

  it("takes new limits without forgetting", () => {
    const clock = new VirtualClock();
    const b = new RetryBudget({ percent: 10, minRetriesPerSecond: 0, clock });
    for (let i = 0; i < 10; i++) b.recordRequest();
    expect(take(b, 5)).toBe(1);
    b.configure(50, 0);
    expect(take(b, 10)).toBe(4);
  });
});
