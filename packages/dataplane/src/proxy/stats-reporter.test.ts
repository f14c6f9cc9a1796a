import { type ProxyStatsAck, type ProxyStatsReport, WeftApiError } from "@weft/api/client";
import { VirtualClock } from "@weft/testkit";
import { describe, expect, it } from "vitest";
import { isSuccess, StatsReporter, statsIntervalFromEnv } from "./stats-reporter.js";

/** A control plane stand-in: records reports; `fail` decides per call whether to throw. */
function fakeClient(fail: (n: number) => Error | undefined = () => undefined) {
  const calls: { id: string; report: ProxyStatsReport }[] = [];
  return {
    calls,
    async pushProxyStats(id: string, report: ProxyStatsReport): Promise<ProxyStatsAck> {
      calls.push({ id, report: structuredClone(report) });
      const e = fail(calls.length);
      if (e) throw e;
      return { accepted: true, edges: report.edges.length };
    },
  };
}

const ok = { status: 200, flags: "-", durationMs: 3 };

describe("StatsReporter", () => {
  it("folds requests per edge and pushes the deltas every interval; idle intervals send nothing", async () => {
    const clock = new VirtualClock();
    const client = fakeClient();
    const r = new StatsReporter({ client, instanceId: "web-1", clock, intervalMs: 2_000 });
    r.start();
    for (let i = 0; i < 5; i++) r.record("outbound", "web", "api", ok);
    r.record("outbound", "web", "api", { status: 503, flags: "UF", durationMs: 40 });
    r.record("inbound", "gw", "web", { status: 404, flags: "-", durationMs: 0.2 });
    clock.advance(2_000);
    await r.flush();
    expect(client.calls).toHaveLength(1);
    const rep = client.calls[0]?.report;
    expect(client.calls[0]?.id).toBe("web-1");
    expect(rep?.seq).toBe(1);
    const out = rep?.edges.find((e) => e.direction === "outbound");
    expect(out).toMatchObject({ source: "web", destination: "api", requests: 6, success: 5 });
    expect(out?.buckets.reduce((a, b) => a + b, 0)).toBe(6);
    expect(out?.buckets[3]).toBe(5); // (2.5, 5] ms
    expect(rep?.edges.find((e) => e.direction === "inbound")).toMatchObject({ requests: 1, success: 1 });
    clock.advance(10_000);
    await r.flush();
    expect(client.calls).toHaveLength(1);
    r.record("outbound", "web", "api", ok);
    await r.flush();
    expect(client.calls[1]?.report).toMatchObject({ seq: 2, edges: [{ requests: 1 }] });
    expect(client.calls[1]?.report.session).toBe(rep?.session);
  });

  it("resends an unanswered report unchanged (same seq) and folds new requests into the next", async () => {
    const clock = new VirtualClock();
    const client = fakeClient((n) => (n === 1 ? new Error("connection reset") : undefined));
    const r = new StatsReporter({ client, instanceId: "web-1", clock, intervalMs: 1_000 });
    r.record("outbound", "web", "api", ok);
    await r.flush();
    r.record("outbound", "web", "api", ok);
    r.record("outbound", "web", "api", ok);
    await r.flush();
    expect(client.calls.map((c) => [c.report.seq, c.report.edges[0]?.requests])).toEqual([
      [1, 1],
      [1, 1],
    ]);
    await r.flush();
    expect(client.calls[2]?.report).toMatchObject({ seq: 2, edges: [{ requests: 2 }] });
    expect(r.stats).toMatchObject({ pushes: 2, failures: 1, droppedRequests: 0 });
  });

  it("drops a refused report at once, and any report after maxAttempts", async () => {
    const clock = new VirtualClock();
    const refused = new WeftApiError("WEFT_ERR_VALIDATION", "bad", 400);
    const client = fakeClient((n) => (n === 1 ? refused : new Error("down")));
    const r = new StatsReporter({ client, instanceId: "web-1", clock, maxAttempts: 3 });
    r.record("outbound", "web", "api", ok);
    await r.flush();
    expect(r.stats.droppedRequests).toBe(1);
    r.record("outbound", "web", "api", ok);
    r.record("outbound", "web", "api", ok);
    for (let i = 0; i < 3; i++) await r.flush();
    expect(client.calls.map((c) => c.report.seq)).toEqual([1, 2, 2, 2]);
    expect(r.stats.droppedRequests).toBe(3);
    await r.flush();
    expect(client.calls).toHaveLength(4);
  });

  it("stop() pushes what is pending", async () => {
    const client = fakeClient();
    const r = new StatsReporter({ client, instanceId: "api-1", clock: new VirtualClock() });
    r.start();
    r.record("inbound", "web", "api", ok);
    await r.stop();
    expect(client.calls).toHaveLength(1);
  });

  it("keeps at most the report's edge limit between pushes and counts the rest", async () => {
    const client = fakeClient();
    const r = new StatsReporter({ client, instanceId: "api-1", clock: new VirtualClock() });
    for (let i = 0; i < 600; i++) r.record("inbound", `s${i}`, "api", ok);
    await r.flush();
    expect(client.calls[0]?.report.edges).toHaveLength(512);
    expect(r.stats.droppedRequests).toBe(88);
  });

  it("success: below 500 without a failure flag", () => {
    expect(isSuccess(200, "-")).toBe(true);
    expect(isSuccess(404, "-")).toBe(true);
    expect(isSuccess(403, "RBAC")).toBe(true);
    expect(isSuccess(429, "RL")).toBe(true);
    expect(isSuccess(500, "-")).toBe(false);
    expect(isSuccess(200, "URX")).toBe(false);
    expect(isSuccess(0, "UC")).toBe(false);
  });

  it("the interval comes from WEFT_STATS_INTERVAL_MS when valid", () => {
    expect(statsIntervalFromEnv({ WEFT_STATS_INTERVAL_MS: "500" })).toBe(500);
    expect(statsIntervalFromEnv({ WEFT_STATS_INTERVAL_MS: "5" })).toBe(2_000);
    expect(statsIntervalFromEnv({ WEFT_STATS_INTERVAL_MS: "x" })).toBe(2_000);
    expect(statsIntervalFromEnv({})).toBe(2_000);
  });
});
