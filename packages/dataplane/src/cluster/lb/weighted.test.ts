import { describe, expect, it } from "vitest";
import { countPicks, endpoint, endpoints, outcome, seeded } from "./lb.suite.js";
import { WeightedBalancer } from "./weighted.js";

function picks(b: WeightedBalancer, n: number, exclude?: ReadonlySet<string>): string[] {
  return Array.from({ length: n }, () => outcome(b.pick(exclude ? { exclude } : undefined)));
}

describe("weighted", () => {
  it("spreads 10,000 picks 1:2:7 within 1 %", () => {
    const b = new WeightedBalancer({ random: seeded(41) });
    b.update([endpoint("one", 1), endpoint("two", 2), endpoint("seven", 7)]);
    const counts = countPicks(b, 10_000);
    for (const [id, share] of [
      ["one", 0.1],
      ["two", 0.2],
      ["seven", 0.7],
    ] as const) {
      expect(Math.abs(counts.get(id)! - share * 10_000)).toBeLessThanOrEqual(share * 10_000 * 0.01);
    }
  });

  it("is exact over whole cycles: each cycle of 10 picks has 1, 2 and 7", () => {
    const b = new WeightedBalancer({ random: seeded(42) });
    b.update([endpoint("one", 1), endpoint("two", 2), endpoint("seven", 7)]);
    const seq = picks(b, 1000);
    // Counts over any prefix stay within one pick (plus the random starting phase) of the share.
    for (let n = 10; n <= 1000; n += 10) {
      const prefix = seq.slice(0, n);
      expect(Math.abs(prefix.filter((x) => x === "seven").length - 0.7 * n)).toBeLessThanOrEqual(2);
      expect(Math.abs(prefix.filter((x) => x === "one").length - 0.1 * n)).toBeLessThanOrEqual(2);
    }
  });

  it("interleaves heavy and light endpoints rather than bursting", () => {
    const b = new WeightedBalancer({ random: seeded(43) });
    b.update([endpoint("a", 1), endpoint("b", 1), endpoint("heavy", 2)]);
    const seq = picks(b, 400);
    let run = 0;
    let longest = 0;
    for (const x of seq) {
      run = x === "heavy" ? run + 1 : 0;
      longest = Math.max(longest, run);
    }
    expect(longest).toBeLessThanOrEqual(2);
  });

  it("with equal weights is a round robin: 3 x 300 exactly even", () => {
    const b = new WeightedBalancer({ random: seeded(44) });
    b.update(endpoints(3));
    expect(Object.fromEntries(countPicks(b, 900))).toEqual({ "ep-0": 300, "ep-1": 300, "ep-2": 300 });
  });

  it("starts different sidecars at different phases", () => {
    const firsts = new Set<string>();
    for (let seed = 0; seed < 40; seed++) {
      const b = new WeightedBalancer({ random: seeded(seed) });
      b.update(endpoints(4));
      firsts.add(outcome(b.pick()));
    }
    expect(firsts.size).toBe(4);
  });

  it("an update with an equal list continues the same schedule", () => {
    const list = [endpoint("a", 1), endpoint("b", 3), endpoint("c", 5)];
    const plain = new WeightedBalancer({ random: seeded(45) });
    plain.update(list);
    const updated = new WeightedBalancer({ random: seeded(45) });
    updated.update(list);
    const expected = picks(plain, 60);
    const got = [...picks(updated, 20)];
    updated.update(list.map((e) => ({ ...e })));
    got.push(...picks(updated, 40));
    expect(got).toEqual(expected);
  });

  it("keeps the schedule of remaining endpoints when one is added", () => {
    const b = new WeightedBalancer({ random: seeded(46) });
    b.update([endpoint("a", 1), endpoint("b", 1)]);
    picks(b, 7);
    b.update([endpoint("a", 1), endpoint("b", 1), endpoint("c", 2)]);
    const counts = countPicks(b, 4000);
    expect(Math.abs(counts.get("a")! - 1000)).toBeLessThanOrEqual(2);
    expect(Math.abs(counts.get("c")! - 2000)).toBeLessThanOrEqual(2);
  });

  it("follows a weight change", () => {
    const b = new WeightedBalancer({ random: seeded(47) });
    b.update([endpoint("a", 1), endpoint("b", 1)]);
    picks(b, 5);
    b.update([endpoint("a", 1), endpoint("b", 4)]);
    const counts = countPicks(b, 5000);
    expect(Math.abs(counts.get("b")! - 4000)).toBeLessThanOrEqual(3);
  });

  it("passes over an excluded endpoint without losing its turns", () => {
    const b = new WeightedBalancer({ random: seeded(48) });
    b.update([endpoint("a", 1), endpoint("b", 1), endpoint("c", 2)]);
    const skipped = picks(b, 10, new Set(["c"]));
    expect(skipped).not.toContain("c");
    expect(skipped.filter((x) => x === "a").length).toBe(5);
    // c's deadline did not move: it is picked next, and keeps picking until it catches up.
    expect(picks(b, 1)).toEqual(["c"]);
  });
});
