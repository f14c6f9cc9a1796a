/**
 * StreamHealth on virtual time: passing at once and every ttl/3 while a
 * node's stream is open, critical when its last stream ends, reports in
 * order, nothing for instances without the `xds` check or after stop().
 */
import { VirtualClock } from "@weft/testkit";
import { describe, expect, it } from "vitest";
import {
  type HealthCatalog,
  StreamHealth,
  serverListenerVerdict,
  XDS_CHECK_ID,
  XDS_CHECK_OUTPUT_CLOSED,
} from "./stream-health.js";

type Report = { id: string; checkId: string; status: string; output: string; at: number };

function setup(checks: Record<string, number | undefined> = { "srv-1": 3000 }) {
  const clock = new VirtualClock();
  const reports: Report[] = [];
  let slow: Promise<void> | undefined;
  const catalog: HealthCatalog = {
    getInstance: (id) =>
      id in checks
        ? { checks: checks[id] === undefined ? [] : [{ id: XDS_CHECK_ID, ttlMs: checks[id] as number }] }
        : undefined,
    heartbeat: async (id, checkId, u) => {
      const at = clock.now();
      if (slow && u.status === "passing") await slow;
      reports.push({ id, checkId, ...u, at });
    },
  };
  const health = new StreamHealth({ catalog, clock });
  const flush = () => health.settled();
  return {
    clock,
    reports,
    health,
    flush,
    slowPassing(p: Promise<void>) {
      slow = p;
    },
  };
}

describe("StreamHealth", () => {
  it("reports passing at once and every ttl/3, then critical when the stream ends", async () => {
    const { clock, reports, health, flush } = setup();
    const lease = health.open("srv-1");
    await flush();
    expect(reports.map((r) => r.status)).toEqual(["passing"]);
    for (let i = 0; i < 3; i++) {
      clock.advance(1000);
      await flush();
    }
    expect(reports.map((r) => r.status)).toEqual(["passing", "passing", "passing", "passing"]);
    expect(reports.map((r) => r.at - (reports[0]?.at ?? 0))).toEqual([0, 1000, 2000, 3000]);
    lease.dispose();
    lease.dispose(); // idempotent
    await flush();
    expect(reports.at(-1)).toMatchObject({
      checkId: "xds",
      status: "critical",
      output: XDS_CHECK_OUTPUT_CLOSED,
    });
    clock.advance(10_000);
    await flush();
    expect(reports).toHaveLength(5);
    expect(clock.pending).toBe(0);
  });

  it("stays passing while another stream of the node is open", async () => {
    const { reports, health, flush } = setup();
    const a = health.open("srv-1");
    const b = health.open("srv-1");
    a.dispose();
    await flush();
    expect(reports.map((r) => r.status)).toEqual(["passing"]);
    expect(health.connected()).toEqual(["srv-1"]);
    b.dispose();
    await flush();
    expect(reports.map((r) => r.status)).toEqual(["passing", "critical"]);
    expect(health.connected()).toEqual([]);
  });

  it("never lets a slow passing report land after the critical one", async () => {
    const { reports, health, flush, slowPassing } = setup();
    let release = () => {};
    slowPassing(new Promise<void>((r) => (release = r)));
    const lease = health.open("srv-1");
    lease.dispose();
    const again = health.open("srv-1"); // a reconnect while the reports are still queued
    release();
    await flush();
    expect(reports.map((r) => r.status)).toEqual(["passing", "critical", "passing"]);
    again.dispose();
    await flush();
    expect(reports.at(-1)?.status).toBe("critical");
  });

  it("reports what the stream learnt (a refused server Listener) at once and on every tick", async () => {
    const { clock, reports, health, flush } = setup();
    const lease = health.open("srv-1");
    lease.set(...serverListenerVerdict(false, "rbac filter validation failed"));
    lease.set(...serverListenerVerdict(false, "rbac filter validation failed")); // unchanged: not re-sent
    await flush();
    expect(reports.map((r) => r.status)).toEqual(["passing", "critical"]);
    expect(reports[1]?.output).toMatch(/server Listener was refused: rbac filter validation failed/);
    clock.advance(1000);
    await flush();
    expect(reports.at(-1)?.status).toBe("critical");
    lease.set(...serverListenerVerdict(true, ""));
    await flush();
    expect(reports.at(-1)).toMatchObject({ status: "passing", output: "xDS stream open" });
    lease.dispose();
    lease.set("passing", "late"); // after the end: ignored
    await flush();
    expect(reports.at(-1)?.status).toBe("critical");
  });

  it("does nothing for an instance without the xds check, or an unknown one", async () => {
    const { clock, reports, health, flush } = setup({ "srv-1": undefined });
    health.open("srv-1").dispose();
    health.open("nobody").dispose();
    clock.advance(60_000);
    await flush();
    expect(reports).toEqual([]);
    expect(clock.pending).toBe(0);
  });

  it("reports nothing more after stop() (control plane shutdown)", async () => {
    const { clock, reports, health, flush } = setup();
    const lease = health.open("srv-1");
    await flush();
    health.stop();
    lease.dispose();
    clock.advance(10_000);
    await flush();
    expect(reports.map((r) => r.status)).toEqual(["passing"]);
  });
});
