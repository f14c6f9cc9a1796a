import { describe, expect, it } from "vitest";
import { countPicks, endpoint, endpoints, outcome, seeded } from "./lb.suite.js";
import { RoundRobinBalancer } from "./round-robin.js";

function picks(b: RoundRobinBalancer, n: number, exclude?: ReadonlySet<string>): string[] {
  return Array.from({ length: n }, () => outcome(b.pick(exclude ? { exclude } : undefined)));
}

describe("round_robin", () => {
  it("spreads 3 x 300 picks exactly evenly", () => {
    const b = new RoundRobinBalancer({ random: seeded(11) });
    b.update(endpoints(3));
    expect(Object.fromEntries(countPicks(b, 900))).toEqual({ "ep-0": 300, "ep-1": 300, "ep-2": 300 });
  });

  it("rotates in list order from a random offset", () => {
    const b = new RoundRobinBalancer({ random: () => 0.5 });
    b.update(endpoints(4));
    expect(picks(b, 6)).toEqual(["ep-2", "ep-3", "ep-0", "ep-1", "ep-2", "ep-3"]);
  });

  it("starts sidecars with different random sources at different endpoints", () => {
    const firsts = new Set<string>();
    for (let seed = 0; seed < 40; seed++) {
      const b = new RoundRobinBalancer({ random: seeded(seed) });
      b.update(endpoints(4));
      firsts.add(outcome(b.pick()));
    }
    expect(firsts.size).toBe(4);
  });

  it("skips excluded endpoints and continues after the one it picked", () => {
    const b = new RoundRobinBalancer({ random: () => 0 });
    b.update(endpoints(4));
    expect(picks(b, 3, new Set(["ep-0", "ep-1"]))).toEqual(["ep-2", "ep-3", "ep-2"]);
    expect(picks(b, 2)).toEqual(["ep-3", "ep-0"]);
  });

  it("keeps its position across an update that adds an endpoint", () => {
    const b = new RoundRobinBalancer({ random: () => 0 });
    b.update([endpoint("a"), endpoint("b"), endpoint("d")]);
    expect(picks(b, 2)).toEqual(["a", "b"]);
    b.update([endpoint("a"), endpoint("b"), endpoint("c"), endpoint("d")]);
    expect(picks(b, 3)).toEqual(["c", "d", "a"]);
  });

  it("continues with the follower when the endpoint picked last is removed", () => {
    const b = new RoundRobinBalancer({ random: () => 0 });
    b.update([endpoint("a"), endpoint("b"), endpoint("c"), endpoint("d")]);
    expect(picks(b, 3)).toEqual(["a", "b", "c"]);
    b.update([endpoint("a"), endpoint("b"), endpoint("d")]);
    expect(picks(b, 2)).toEqual(["d", "a"]);
  });

  it("does not restart the rotation for an equal list", () => {
    const b = new RoundRobinBalancer({ random: () => 0 });
    b.update(endpoints(3));
    expect(picks(b, 2)).toEqual(["ep-0", "ep-1"]);
    b.update(endpoints(3));
    expect(picks(b, 2)).toEqual(["ep-2", "ep-0"]);
  });

  it("returns the same frozen result per endpoint (no allocation per pick)", () => {
    const b = new RoundRobinBalancer({ random: () => 0 });
    b.update(endpoints(2));
    const first = b.pick();
    b.pick();
    expect(b.pick()).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
  });
});
