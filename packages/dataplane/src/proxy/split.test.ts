import { describe, expect, it } from "vitest";
import { pickSplit } from "./split.js";

/** A deterministic sequence in [0, 1): i/n for i = 0..n-1. */
function sweep(n: number): () => number {
  let i = 0;
  return () => (i++ % n) / n;
}

describe("split", () => {
  it("honours the weights exactly over an even sweep, and never picks a weight-0 target", () => {
    const splits = [
      { cluster: "api.v1", weight: 90 },
      { cluster: "api.v2", weight: 10 },
      { cluster: "api.v3", weight: 0 },
    ];
    const random = sweep(1000);
    const counts: Record<string, number> = {};
    for (let i = 0; i < 1000; i++) {
      const c = pickSplit(splits, random) as string;
      counts[c] = (counts[c] ?? 0) + 1;
    }
    expect(counts).toEqual({ "api.v1": 900, "api.v2": 100 });
  });

  it("stays within a few percent with Math.random over 1,000 draws", () => {
    const splits = [
      { cluster: "a", weight: 70 },
      { cluster: "b", weight: 30 },
    ];
    let a = 0;
    for (let i = 0; i < 1000; i++) if (pickSplit(splits) === "a") a++;
    expect(a).toBeGreaterThan(640);
    expect(a).toBeLessThan(760);
  });

  it("gives a float sliver past the sum to the last weighted target", () => {
    expect(
      pickSplit(
        [
          { cluster: "a", weight: 33.33 },
          { cluster: "b", weight: 66.66 },
        ],
        () => 0.99999,
      ),
    ).toBe("b");
  });
});
