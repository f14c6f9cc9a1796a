import { describe, expect, it } from "vitest";
import { stripAnsi } from "../output.js";
import { sampleState } from "./state-sample.suite.js";
import { headerLines, healthy, humanDuration, psJson, replicaProblem, replicaTable } from "./status-view.js";

const allAlive = () => true;

describe("status view", () => {
  it("the replica table: one row per replica, app and sidecar", () => {
    const t = replicaTable(sampleState(), allAlive, true);
    const lines = stripAnsi(t).trimEnd().split("\n");
    expect(lines[0]).toMatch(
      /^WORKLOAD\s+REPLICA\s+SERVICE\s+APP PID\s+APP PORT\s+SIDECAR PID\s+INBOUND\s+ADMIN\s+HEALTH\s+RESTARTS\s+REQ\/S$/,
    );
    expect(lines[1]).toMatch(/^web\s+1\s+web\s+101\s+40001\s+102\s+40002\s+40003\s+passing\s+0\s+4\.0$/);
    expect(t).toContain("\u001b[32mpassing");
  });

  it("dead and restarting processes are shown as such", () => {
    const s = sampleState();
    const r = s.replicas[0]!;
    r.app.status = "backoff";
    r.app.pid = null;
    const t = replicaTable(s, (pid) => pid !== 102, false);
    expect(t).toMatch(/web\s+1\s+web\s+restarting\s+40001\s+102 \(dead\)/);
  });

  it("header: control plane address and token file, UI, the supervisor's liveness", () => {
    const lines = headerLines(sampleState(), "/m", (pid) => pid !== 100);
    expect(lines[0]).toBe(
      "weft up weft.yaml: running (supervisor gone), healthy since " + new Date(4000).toLocaleTimeString(),
    );
    expect(lines[1]).toBe(
      "control plane: http://127.0.0.1:7400 (pid 100, dead), token .weft/server/bootstrap-token",
    );
    expect(lines[2]).toMatch(/web UI: not yet/);
  });

  it("psJson checks liveness per pid", () => {
    const v = psJson(sampleState(), (pid) => pid !== 101) as {
      supervisor: { alive: boolean };
      processes: { app: { alive: boolean }; sidecar: { alive: boolean }; healthy: boolean }[];
    };
    expect(v.supervisor.alive).toBe(true);
    expect(v.processes[0]).toMatchObject({ app: { alive: false }, sidecar: { alive: true }, healthy: false });
  });

  it("replicaProblem says what is wrong with an unhealthy replica", () => {
    const s = sampleState();
    const r = s.replicas[0]!;
    expect(healthy(r)).toBe(true);
    expect(replicaProblem(r)).toBeUndefined();
    r.app.status = "backoff";
    r.app.restarts = 3;
    r.app.lastExit = { code: 1, signal: null, at: 0, uptimeMs: 10, output: ["Error: boom", "  at main"] };
    expect(healthy(r)).toBe(false);
    expect(replicaProblem(r)).toBe(
      "web-1 app exited with code 1 (3 restarts); last output:\n    Error: boom\n      at main",
    );
    const s2 = sampleState();
    const r2 = s2.replicas[0]!;
    r2.health = "critical";
    r2.healthOutput = "connection refused";
    expect(replicaProblem(r2)).toBe("web-1: health critical: connection refused");
  });

  it("humanDuration", () => {
    expect([850, 4_200, 190_000, 7_500_000].map(humanDuration)).toEqual(["850ms", "4.2s", "3m 10s", "2h 5m"]);
  });
});
