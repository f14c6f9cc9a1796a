import { isWeftError } from "@weft/core";
import { describe, expect, it } from "vitest";
import type { PickComplete } from "./balancer.js";
import { countPicks, endpoint, endpoints, outcome, seeded } from "./lb.suite.js";
import { createLeastRequest, LeastRequestBalancer, parseLeastRequestConfig } from "./least-request.js";

function make(seed: number, choiceCount = 2): LeastRequestBalancer {
  return new LeastRequestBalancer(parseLeastRequestConfig({ policy: "least_request", choiceCount }), {
    random: seeded(seed),
  });
}

/** Picks and keeps the request in flight. */
function hold(b: LeastRequestBalancer, n: number, exclude?: ReadonlySet<string>): PickComplete[] {
  return Array.from({ length: n }, () => {
    const r = b.pick(exclude ? { exclude } : undefined);
    if (r.type !== "complete") throw new Error(`expected a pick, got ${outcome(r)}`);
    return r;
  });
}

function expectNear(actual: number | undefined, expected: number, tolerance: number): void {
  expect(actual).toBeGreaterThanOrEqual(expected * (1 - tolerance));
  expect(actual).toBeLessThanOrEqual(expected * (1 + tolerance));
}

describe("least_request", () => {
  it("spreads 3000 short requests uniformly over idle endpoints (within 8 %)", () => {
    const b = make(31);
    b.update(endpoints(3));
    const counts = countPicks(b, 3000);
    for (const id of ["ep-0", "ep-1", "ep-2"]) expectNear(counts.get(id), 1000, 0.08);
  });

  it("prefers the idle endpoints when one has many requests in flight", () => {
    const b = make(32);
    b.update(endpoints(3));
    const loaded = hold(b, 200, new Set(["ep-1", "ep-2"]));
    expect(b.inFlight("ep-0")).toBe(200);
    const counts = countPicks(b, 3000);
    // ep-0 wins only when both draws land on it: 1/9 of picks.
    expectNear(counts.get("ep-0"), 3000 / 9, 0.2);
    expectNear(counts.get("ep-1"), (3000 * 4) / 9, 0.08);
    expectNear(counts.get("ep-2"), (3000 * 4) / 9, 0.08);
    for (const r of loaded) r.done();
    expect(b.inFlight("ep-0")).toBe(0);
  });

  it("with as many choices as endpoints, almost always picks the least loaded", () => {
    const b = make(34, 100);
    b.update(endpoints(3));
    hold(b, 5, new Set(["ep-1", "ep-2"]));
    hold(b, 5, new Set(["ep-0", "ep-2"]));
    expect(outcome(b.pick())).toBe("ep-2");
  });

  it("balances held requests: in-flight counts stay close", () => {
    const b = make(35);
    b.update(endpoints(4));
    hold(b, 400);
    const loads = ["ep-0", "ep-1", "ep-2", "ep-3"].map((id) => b.inFlight(id));
    expect(loads.reduce((a, c) => a + c, 0)).toBe(400);
    expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(6);
  });

  it("counts in flight from pick to done(), once per request", () => {
    const b = make(36);
    b.update([endpoint("a")]);
    const [r1, r2] = hold(b, 2);
    expect(b.inFlight("a")).toBe(2);
    r1!.done();
    r1!.done();
    r1!.done();
    expect(b.inFlight("a")).toBe(1);
    r2!.done();
    expect(b.inFlight("a")).toBe(0);
    expect(b.inFlight("unknown")).toBe(0);
  });

  it("keeps in-flight counts across updates for endpoints that remain", () => {
    const b = make(37);
    b.update([endpoint("a"), endpoint("b")]);
    const held = hold(b, 10, new Set(["b"]));
    b.update([endpoint("a"), endpoint("c")]);
    expect(b.inFlight("a")).toBe(10);
    // a is busy: every pick goes to the idle c.
    const counts = countPicks(b, 50);
    expect(counts.get("c")).toBeGreaterThan(counts.get("a") ?? 0);
    for (const r of held) r.done();
    expect(b.inFlight("a")).toBe(0);
  });

  it("an endpoint that leaves and returns starts from zero; done() on its old requests is harmless", () => {
    const b = make(38);
    b.update([endpoint("a")]);
    const held = hold(b, 3);
    b.update([endpoint("b")]);
    b.update([endpoint("a")]);
    expect(b.inFlight("a")).toBe(0);
    for (const r of held) r.done();
    expect(b.inFlight("a")).toBe(0);
  });

  it("settles in-flight counts in proportion to weight when weights differ", () => {
    const b = make(39);
    b.update([endpoint("light", 1), endpoint("heavy", 3)]);
    hold(b, 400);
    expect(b.inFlight("light")).toBeGreaterThanOrEqual(97);
    expect(b.inFlight("light")).toBeLessThanOrEqual(103);
  });

  it("excluded endpoints are skipped even when the draws keep landing on them", () => {
    const b = make(40);
    b.update(endpoints(50));
    const exclude = new Set(endpoints(50).map((e) => e.id));
    exclude.delete("ep-7");
    exclude.delete("ep-8");
    const counts = countPicks(b, 100, () => ({ exclude }));
    expect([...counts.keys()].sort()).toEqual(["ep-7", "ep-8"]);
  });

  it("parses choiceCount: default 2, bounds 2..100", () => {
    expect(parseLeastRequestConfig({ policy: "least_request" }).choiceCount).toBe(2);
    for (const choiceCount of [0, 1, 101, 2.5]) {
      let error: unknown;
      try {
        createLeastRequest({ policy: "least_request", choiceCount }, {});
      } catch (e) {
        error = e;
      }
      expect(isWeftError(error, "WEFT_ERR_CONFIG_INVALID")).toBe(true);
    }
  });
});
