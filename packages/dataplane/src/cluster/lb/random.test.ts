import { describe, expect, it } from "vitest";
import { countPicks, endpoint, endpoints, seeded } from "./lb.suite.js";
import { RandomBalancer } from "./random.js";

function expectNear(actual: number | undefined, expected: number, tolerance: number): void {
  expect(actual).toBeGreaterThanOrEqual(expected * (1 - tolerance));
  expect(actual).toBeLessThanOrEqual(expected * (1 + tolerance));
}

describe("random", () => {
  it("spreads 3000 picks uniformly over 3 endpoints (within 8 %)", () => {
    const b = new RandomBalancer({ random: seeded(21) });
    b.update(endpoints(3));
    const counts = countPicks(b, 3000);
    for (const id of ["ep-0", "ep-1", "ep-2"]) expectNear(counts.get(id), 1000, 0.08);
  });

  it("ignores weights, as Envoy's random does", () => {
    const b = new RandomBalancer({ random: seeded(22) });
    b.update([endpoint("light", 1), endpoint("heavy", 9)]);
    const counts = countPicks(b, 3000);
    expectNear(counts.get("light"), 1500, 0.08);
  });

  it("stays uniform among the rest when some are excluded", () => {
    const b = new RandomBalancer({ random: seeded(23) });
    b.update(endpoints(4));
    const exclude = new Set(["ep-0"]);
    const counts = countPicks(b, 3000, () => ({ exclude }));
    expect(counts.has("ep-0")).toBe(false);
    for (const id of ["ep-1", "ep-2", "ep-3"]) expectNear(counts.get(id), 1000, 0.08);
  });

  it("finds the one endpoint left among many excluded (past the rejection draws)", () => {
    const b = new RandomBalancer({ random: seeded(24) });
    b.update(endpoints(200));
    const exclude = new Set(endpoints(200).map((e) => e.id));
    exclude.delete("ep-137");
    expect([...countPicks(b, 50, () => ({ exclude })).keys()]).toEqual(["ep-137"]);
  });

  it("uses the injected source: a random of 0.99 picks the last endpoint", () => {
    const b = new RandomBalancer({ random: () => 0.99 });
    b.update(endpoints(5));
    expect([...countPicks(b, 10).keys()]).toEqual(["ep-4"]);
  });
});
