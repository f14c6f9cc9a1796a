import { describe, expect, it } from "vitest";
import { bucketIndex, GOLDEN_BUCKET_COUNT, GOLDEN_BUCKETS_MS, quantileFromBuckets } from "./metrics.js";

function histogram(latencies: readonly number[]): number[] {
  const counts = new Array<number>(GOLDEN_BUCKET_COUNT).fill(0);
  for (const ms of latencies) counts[bucketIndex(ms)] = (counts[bucketIndex(ms)] ?? 0) + 1;
  return counts;
}

describe("golden histogram", () => {
  it("bucketIndex: bounds are inclusive; above the last bound is the overflow", () => {
    expect(bucketIndex(0)).toBe(0);
    expect(bucketIndex(0.5)).toBe(0);
    expect(bucketIndex(0.51)).toBe(1);
    expect(bucketIndex(10)).toBe(4);
    expect(bucketIndex(30_000)).toBe(GOLDEN_BUCKETS_MS.length - 1);
    expect(bucketIndex(30_001)).toBe(GOLDEN_BUCKETS_MS.length);
    expect(GOLDEN_BUCKET_COUNT).toBe(GOLDEN_BUCKETS_MS.length + 1);
  });

  it("an empty histogram has no quantiles", () => {
    expect(quantileFromBuckets(new Array(GOLDEN_BUCKET_COUNT).fill(0), 0.5)).toBeNull();
    expect(quantileFromBuckets([], 0.99)).toBeNull();
  });

  it("interpolates linearly inside the bucket holding the rank", () => {
    // 100 requests all in (10, 25]: p50 is half-way through that bucket.
    const h = histogram(new Array(100).fill(20));
    expect(quantileFromBuckets(h, 0.5)).toBeCloseTo(17.5, 9);
    expect(quantileFromBuckets(h, 1)).toBeCloseTo(25, 9);
    // The first bucket interpolates from 0.
    expect(quantileFromBuckets(histogram([0.1, 0.1]), 0.5)).toBeCloseTo(0.25, 9);
  });

  it("percentiles fall in the bucket of the true value (the histogram's resolution)", () => {
    // 90 fast (3 ms), 9 medium (40 ms), 1 slow (700 ms).
    const lat = [...new Array(90).fill(3), ...new Array(9).fill(40), 700];
    const h = histogram(lat);
    const p50 = quantileFromBuckets(h, 0.5) as number;
    const p95 = quantileFromBuckets(h, 0.95) as number;
    const p99 = quantileFromBuckets(h, 0.99) as number;
    expect(p50).toBeGreaterThan(2.5);
    expect(p50).toBeLessThanOrEqual(5);
    expect(p95).toBeGreaterThan(25);
    expect(p95).toBeLessThanOrEqual(50);
    expect(p99).toBeGreaterThan(25);
    expect(p99).toBeLessThanOrEqual(50);
    expect(quantileFromBuckets(h, 1)).toBeGreaterThan(500);
  });

  it("a rank in the overflow answers the last bound", () => {
    expect(quantileFromBuckets(histogram([60_000, 60_000]), 0.5)).toBe(30_000);
  });
});
