import { describe, expect, it } from "vitest";
import { stripAnsi } from "../output.js";
import { sampleGateway, sampleState } from "./state-sample.suite.js";
import {
  gatewayHealthy,
  gatewayProblem,
  gatewayTable,
  headerLines,
  healthy,
  humanDuration,
  psJson,
  replicaProblem,
  replicaTable,
} from "./status-view.js";

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
    expect(lines[2]).toBe("web UI: -");
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

  it("the gateways table: pid, listener ports, admin port, health; nothing without gateways", () => {
    expect(gatewayTable(sampleState(), allAlive, false)).toBe("");
    const s = sampleState();
    s.gateways = [
      sampleGateway(),
      {
        ...sampleGateway(),
        name: "egress",
        type: "terminating",
        pid: 111,
        admin: 40020,
        listeners: [
          { name: "payments", port: 41001 },
          { name: "legacy", port: 41002 },
        ],
      },
      { ...sampleGateway(), name: "late", pid: null, status: "backoff", ready: false, restarts: 2 },
    ];
    const lines = stripAnsi(gatewayTable(s, (pid) => pid !== 111, true))
      .trim()
      .split("\n");
    expect(lines[0]).toMatch(/^GATEWAY\s+TYPE\s+PID\s+LISTENERS\s+ADMIN\s+HEALTH\s+RESTARTS$/);
    expect(lines[1]).toMatch(/^edge\s+ingress\s+110\s+9090\s+40010\s+passing\s+0$/);
    expect(lines[2]).toMatch(
      /^egress\s+terminating\s+111 \(dead\)\s+payments:41001,legacy:41002\s+40020\s+passing\s+0$/,
    );
    expect(lines[3]).toMatch(/^late\s+ingress\s+restarting\s+9090\s+40010\s+unknown\s+2$/);
  });

  it("psJson lists gateways (kind gateway) with liveness checked now", () => {
    const s = sampleState();
    s.gateways = [sampleGateway()];
    const v = psJson(s, allAlive) as { gateways: unknown[] };
    expect(v.gateways).toEqual([
      {
        kind: "gateway",
        name: "edge",
        type: "ingress",
        instance: "edge-0a1b2c3d4e",
        pid: 110,
        alive: true,
        listeners: [{ name: "listener-0", port: 9090 }],
        admin: 40010,
        ready: true,
        health: "passing",
        healthy: true,
        status: "running",
        restarts: 0,
        lastExit: null,
        log: "/m/.weft/logs/edge.gateway.log",
      },
    ]);
    const dead = psJson(s, (pid) => pid !== 110) as { gateways: { alive: boolean; healthy: boolean }[] };
    expect(dead.gateways[0]).toMatchObject({ alive: false, healthy: false });
  });

  it("gatewayProblem says why a gateway is not healthy", () => {
    const g = sampleGateway();
    expect(gatewayHealthy(g)).toBe(true);
    expect(gatewayProblem(g)).toBeUndefined();
    expect(gatewayProblem({ ...g, ready: false })).toBe(
      "gateway edge: not ready yet (no ready line in /m/.weft/logs/edge.gateway.log)",
    );
    expect(gatewayProblem({ ...g, health: "critical", healthOutput: "draining" })).toBe(
      "gateway edge: health critical: draining",
    );
    const crashed = {
      ...g,
      status: "backoff" as const,
      ready: false,
      restarts: 1,
      lastExit: { code: 2, signal: null, at: 0, uptimeMs: 5, output: ["weft: port 9090 in use"] },
    };
    expect(gatewayHealthy(crashed)).toBe(false);
    expect(gatewayProblem(crashed)).toBe(
      "gateway edge exited with code 2 (1 restart); last output:\n    weft: port 9090 in use",
    );
  });

  it("humanDuration", () => {
    expect([850, 4_200, 190_000, 7_500_000].map(humanDuration)).toEqual(["850ms", "4.2s", "3m 10s", "2h 5m"]);
  });
});
