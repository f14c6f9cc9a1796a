import { describe, expect, it } from "vitest";
import { Backoff, backoffDelay } from "./backoff.js";

describe("backoff", () => {
  it("grows exponentially up to the cap without jitter", () => {
    const opts = { baseMs: 100, maxMs: 1000, jitter: 0 };
    expect([0, 1, 2, 3, 4, 10].map((n) => backoffDelay(n, opts))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it("full jitter stays within [1, ceiling]", () => {
    for (let i = 0; i < 1000; i++) {
      const d = backoffDelay(i % 8, { baseMs: 50, maxMs: 2000 });
      expect(d).toBeGreaterThanOrEqual(1);
      expect(d).toBeLessThanOrEqual(Math.min(2000, 50 * 2 ** (i % 8)));
    }
  });

  it("resets after success", () => {
    const b = new Backoff({ baseMs: 10, maxMs: 100, jitter: 0 });
    expect([b.next(), b.next(), b.next()]).toEqual([10, 20, 40]);
    b.reset();
    expect(b.next()).toBe(10);
  });
});
