import { bucketIndex, type EdgeStatsDelta, GOLDEN_BUCKET_COUNT } from "@weft/api/client";
import { VirtualClock } from "@weft/testkit";
import { describe, expect, it } from "vitest";
import { GoldenWindow } from "./golden.js";

function delta(
  direction: "inbound" | "outbound",
  source: string,
  destination: string,
  latencies: number[],
  failures = 0,
): EdgeStatsDelta {
  const buckets = new Array<number>(GOLDEN_BUCKET_COUNT).fill(0);
  for (const ms of latencies) buckets[bucketIndex(ms)] = (buckets[bucketIndex(ms)] ?? 0) + 1;
  return {
    direction,
    source,
    destination,
    requests: latencies.length,
    success: latencies.length - failures,
    buckets,
  };
}

describe("GoldenWindow", () => {
  it("sums reports per service (inbound view) and per edge (outbound view preferred)", () => {
    const clock = new VirtualClock(1_000_000_000);
    const w = new GoldenWindow({ clock });
    clock.advance(60_000);
    expect(w.accept("api-1", "s1", 1, [delta("inbound", "web", "api", new Array(30).fill(3), 3)])).toBe(true);
    expect(w.accept("api-2", "s2", 1, [delta("inbound", "web", "api", new Array(10).fill(3))])).toBe(true);
    // The caller saw 2 more: they failed before reaching api.
    expect(w.accept("web-1", "s3", 1, [delta("outbound", "web", "api", new Array(42).fill(3), 5)])).toBe(
      true,
    );
    const [api, other] = w.services(["api", "idle"]);
    expect(api?.service).toBe("api");
    expect(api?.requests).toBe(40);
    expect(api?.success).toBe(37);
    expect(api?.successRate).toBeCloseTo(37 / 40, 9);
    // At a slot boundary the window covers 11 full slots (55 s).
    expect(w.window().seconds).toBe(55);
    expect(api?.rps).toBeCloseTo(40 / 55, 2);
    expect(api?.latencyMs.p50).toBeGreaterThan(2.5);
    expect(api?.latencyMs.p50).toBeLessThanOrEqual(5);
    expect(other).toMatchObject({ service: "idle", requests: 0, successRate: null, rps: 0 });
    const edges = w.edges();
    expect(edges).toHaveLength(1);
    expect(edges[0]).toMatchObject({ source: "web", destination: "api", requests: 42, success: 37 });
  });

  it("an edge reported only by its destination is served from the inbound view", () => {
    const clock = new VirtualClock();
    const w = new GoldenWindow({ clock });
    w.accept("api-1", "s", 1, [delta("inbound", "gw", "api", [1, 2, 3])]);
    expect(w.edges()).toMatchObject([{ source: "gw", destination: "api", requests: 3 }]);
  });

  it("a resent report (same session and seq) is counted once; a new session starts over", () => {
    const clock = new VirtualClock();
    const w = new GoldenWindow({ clock });
    const d = [delta("inbound", "web", "api", [1, 1])];
    expect(w.accept("api-1", "a", 1, d)).toBe(true);
    expect(w.accept("api-1", "a", 1, d)).toBe(false);
    expect(w.accept("api-1", "a", 2, d)).toBe(true);
    expect(w.accept("api-1", "b", 1, d)).toBe(true);
    expect(w.service("api").requests).toBe(6);
    expect(w.stats).toMatchObject({ reports: 3, duplicates: 1 });
  });

  it("old slots leave the window", () => {
    const clock = new VirtualClock(0);
    const w = new GoldenWindow({ clock, windowMs: 60_000, slotMs: 5_000 });
    w.accept("api-1", "s", 1, [delta("inbound", "web", "api", [1, 1, 1])]);
    clock.advance(30_000);
    w.accept("api-1", "s", 2, [delta("inbound", "web", "api", [1])]);
    expect(w.service("api").requests).toBe(4);
    clock.advance(30_000);
    // The first report's slot (0-5 s) is out; the second's (30-35 s) is in.
    expect(w.service("api").requests).toBe(1);
    expect(w.window().seconds).toBe(55);
    clock.advance(60_000);
    expect(w.service("api").requests).toBe(0);
    expect(w.edges()).toEqual([]);
  });

  it("bounds the edges per slot and counts the ones it drops", () => {
    const clock = new VirtualClock();
    const w = new GoldenWindow({ clock, maxEdges: 2 });
    w.accept("x", "s", 1, [
      delta("inbound", "a", "api", [1]),
      delta("inbound", "b", "api", [1]),
      delta("inbound", "c", "api", [1]),
    ]);
    expect(w.edges().map((e) => e.source)).toEqual(["a", "b"]);
    expect(w.stats.droppedEdges).toBe(1);
  });

  it("refuses a window that is not a multiple of the slot", () => {
    expect(() => new GoldenWindow({ clock: new VirtualClock(), windowMs: 7_000, slotMs: 5_000 })).toThrow(
      RangeError,
    );
  });

  describe("proxyless (LRS) reports", () => {
    /** An LRS delta: counts, no latency (the buckets are zero and ignored). */
    const lrs = (source: string, destination: string, requests: number, success: number): EdgeStatsDelta => ({
      direction: "outbound",
      source,
      destination,
      requests,
      success,
      buckets: new Array<number>(GOLDEN_BUCKET_COUNT).fill(0),
    });

    it("gives an edge only proxyless clients saw rate and success rate, and null (not zero) percentiles", () => {
      const clock = new VirtualClock(1_000_000_000);
      const w = new GoldenWindow({ clock });
      clock.advance(60_000);
      expect(w.accept("lrs:client-1", "a", 1, [lrs("client", "echo", 30, 27)], "proxyless")).toBe(true);
      expect(w.accept("lrs:client-1", "a", 2, [lrs("client", "echo", 10, 10)], "proxyless")).toBe(true);
      const [e] = w.edges();
      expect(e).toEqual({
        source: "client",
        destination: "echo",
        requests: 40,
        success: 37,
        successRate: 37 / 40,
        rps: Math.round((40 / 55) * 1000) / 1000,
        latencyMs: { p50: null, p95: null, p99: null },
        proxylessRequests: 40,
      });
      // echo has no sidecar reporting (a proxyless server): its callers' reports are its figures.
      expect(w.service("echo")).toMatchObject({ requests: 40, success: 37, proxylessRequests: 40 });
      expect(w.services(["echo", "idle"]).map((s) => [s.service, s.requests])).toEqual([
        ["echo", 40],
        ["idle", 0],
      ]);
    });

    it("counts a repeated (session, seq) once, as for sidecars", () => {
      const w = new GoldenWindow({ clock: new VirtualClock(10_000) });
      expect(w.accept("lrs:c", "a", 1, [lrs("client", "echo", 5, 5)], "proxyless")).toBe(true);
      expect(w.accept("lrs:c", "a", 1, [lrs("client", "echo", 5, 5)], "proxyless")).toBe(false);
      expect(w.edges()[0]?.requests).toBe(5);
      expect(w.stats).toMatchObject({ reports: 1, duplicates: 1 });
    });

    it("adds to sidecar callers of the same edge; latency comes from the sidecars only", () => {
      const w = new GoldenWindow({ clock: new VirtualClock(10_000) });
      w.accept("web-1", "s", 1, [delta("outbound", "web", "api", new Array(10).fill(30), 1)]);
      w.accept("lrs:web-2", "p", 1, [lrs("web", "api", 20, 18)], "proxyless");
      // api's own sidecar saw 28: the service view stays its inbound view.
      w.accept("api-1", "i", 1, [delta("inbound", "web", "api", new Array(28).fill(30))]);
      const [e] = w.edges();
      expect(e).toMatchObject({ requests: 30, success: 27, proxylessRequests: 20 });
      expect(e?.latencyMs.p50).toBeGreaterThan(25);
      expect(e?.latencyMs.p50).toBeLessThanOrEqual(50);
      const api = w.service("api");
      expect(api.requests).toBe(28);
      expect(api.proxylessRequests).toBeUndefined();
    });

    it("leaves proxylessRequests off sidecar-only figures (the wire shape is unchanged)", () => {
      const w = new GoldenWindow({ clock: new VirtualClock(10_000) });
      w.accept("web-1", "s", 1, [delta("outbound", "web", "api", [3])]);
      expect(Object.keys(w.edges()[0] ?? {})).not.toContain("proxylessRequests");
    });

    it("ages proxyless counts out with the window and bounds their edges", () => {
      const clock = new VirtualClock(0);
      const w = new GoldenWindow({ clock, maxEdges: 1 });
      w.accept("lrs:c", "a", 1, [lrs("client", "echo", 5, 5), lrs("client", "other", 1, 1)], "proxyless");
      expect(w.edges().map((x) => x.destination)).toEqual(["echo"]);
      expect(w.stats.droppedEdges).toBe(1);
      clock.advance(120_000);
      expect(w.edges()).toEqual([]);
      expect(w.service("echo").requests).toBe(0);
    });
  });
});
