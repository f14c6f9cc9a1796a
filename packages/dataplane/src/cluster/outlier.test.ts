import type { OutlierDetectionConfig } from "@weft/api/snapshot";
import { VirtualClock } from "@weft/testkit";
import { describe, expect, it } from "vitest";
import { OutlierDetector, type OutlierEjection } from "./outlier.js";

const CFG: OutlierDetectionConfig = {
  consecutive5xx: 3,
  consecutiveGatewayErrors: 5,
  intervalMs: 10_000,
  baseEjectionTimeMs: 2_000,
  maxEjectionTimeMs: 5_000,
  maxEjectionPercent: 50,
};

function setup(cfg: Partial<OutlierDetectionConfig> = {}, ids = ["a", "b", "c"]) {
  const clock = new VirtualClock();
  const ejections: OutlierEjection[] = [];
  const d = new OutlierDetector({ ...CFG, ...cfg }, clock, (e) => ejections.push(e));
  d.setEndpoints(ids);
  const fail = (id: string, n: number, status = 503): void => {
    for (let i = 0; i < n; i++) d.report(id, { kind: "status", status });
  };
  return { clock, d, ejections, fail };
}

describe("OutlierDetector", () => {
  it("ejects after N consecutive 5xx, and not before", () => {
    const { d, ejections, fail } = setup();
    fail("a", 2, 500);
    expect(d.isEjected("a")).toBe(false);
    fail("a", 1, 500);
    expect(d.isEjected("a")).toBe(true);
    expect([...d.ejected()]).toEqual(["a"]);
    expect(ejections).toEqual([
      { endpointId: "a", ejections: 1, durationMs: 2_000, reason: "consecutive_5xx" },
    ]);
  });

  it("a success in between resets the count", () => {
    const { d, fail } = setup();
    fail("a", 2);
    d.report("a", { kind: "status", status: 200 });
    fail("a", 2);
    expect(d.isEjected("a")).toBe(false);
    // 4xx are the client's doing, not the endpoint's: they reset as well.
    d.report("a", { kind: "status", status: 404 });
    fail("a", 2);
    expect(d.isEjected("a")).toBe(false);
  });

  it("counts gateway errors (no response, 502/503/504) on their own threshold", () => {
    const { d, ejections } = setup({ consecutive5xx: 100, consecutiveGatewayErrors: 2 });
    d.report("b", { kind: "gateway-error" });
    d.report("b", { kind: "status", status: 500 }); // a 5xx, not a gateway error: resets that count
    d.report("b", { kind: "gateway-error" });
    expect(d.isEjected("b")).toBe(false);
    d.report("b", { kind: "status", status: 504 });
    expect(d.isEjected("b")).toBe(true);
    expect(ejections[0]?.reason).toBe("consecutive_gateway_errors");
  });

  it("returns an endpoint after its ejection time, and ejects it longer the next time, capped", () => {
    const { clock, d, ejections, fail } = setup();
    fail("a", 3);
    clock.advance(1_999);
    expect(d.isEjected("a")).toBe(true);
    clock.advance(1);
    expect(d.isEjected("a")).toBe(false);
    fail("a", 3);
    expect(d.isEjected("a")).toBe(true);
    clock.advance(3_999);
    expect(d.isEjected("a")).toBe(true);
    clock.advance(1);
    expect(d.isEjected("a")).toBe(false);
    fail("a", 3);
    clock.advance(5_000);
    expect(d.isEjected("a")).toBe(false);
    expect(ejections.map((e) => e.durationMs)).toEqual([2_000, 4_000, 5_000]);
  });

  it("forgets past ejections one per interval spent back in service", () => {
    const { clock, ejections, fail } = setup();
    fail("a", 3);
    clock.advance(2_000);
    fail("a", 3); // second ejection: 4 s
    clock.advance(4_000 + 2 * CFG.intervalMs);
    fail("a", 3); // two intervals later the count is back to 0: first ejection again
    expect(ejections.map((e) => e.ejections)).toEqual([1, 2, 1]);
  });

  it("does not count tries that end while the endpoint is ejected", () => {
    const { clock, d, ejections, fail } = setup();
    fail("a", 3);
    fail("a", 10);
    expect(ejections).toHaveLength(1);
    clock.advance(2_000);
    fail("a", 2);
    expect(d.isEjected("a")).toBe(false);
  });

  it("ejects while the share already ejected is below maxEjectionPercent (Envoy)", () => {
    const { d, fail } = setup({ maxEjectionPercent: 50 }, ["a", "b", "c", "d"]);
    fail("a", 3);
    fail("b", 3); // 25% ejected before: allowed
    fail("c", 3); // 50% ejected before: refused
    expect([...d.ejected()].sort()).toEqual(["a", "b"]);
  });

  it("with 10% and 3 endpoints ejects one, and 0% ejects none", () => {
    const ten = setup({ maxEjectionPercent: 10 });
    ten.fail("a", 3);
    ten.fail("b", 3);
    expect([...ten.d.ejected()]).toEqual(["a"]);
    const zero = setup({ maxEjectionPercent: 0 });
    zero.fail("a", 3);
    expect(zero.d.ejected().size).toBe(0);
    expect(zero.ejections).toHaveLength(0);
  });

  it("drops the state of endpoints that left, and ignores reports about unknown ones", () => {
    const { d, fail } = setup();
    fail("a", 3);
    d.setEndpoints(["b", "c"]);
    expect(d.isEjected("a")).toBe(false);
    d.setEndpoints(["a", "b", "c"]);
    expect(d.isEjected("a")).toBe(false);
    d.report("zzz", { kind: "gateway-error" });
    expect(d.ejected().size).toBe(0);
  });
});
