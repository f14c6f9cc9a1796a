/** Tests only: a small, complete UpState (one replica, everything running). */
import type { GatewayRecord, UpState } from "./state.js";

export function sampleState(): UpState {
  const proc = (pid: number | null, log: string) => ({
    pid,
    startTime: null,
    status: "running" as const,
    restarts: 0,
    startedAt: 1,
    lastExit: null,
    log,
  });
  return {
    format: 1,
    file: "/m/weft.yaml",
    dataDir: "/m/.weft",
    phase: "running",
    startedAt: 1_000,
    readyAt: 4_000,
    updatedAt: 5_000,
    supervisor: { pid: 100, startTime: null, detached: true, log: "/m/.weft/logs/up.log" },
    controlPlane: {
      pid: 100,
      api: "http://127.0.0.1:7400",
      ui: null,
      tokenFile: "/m/.weft/server/bootstrap-token",
      log: "/m/.weft/logs/controlplane.log",
    },
    replicas: [
      {
        workload: "web",
        service: "web",
        replica: 1,
        instance: "web-1",
        app: { ...proc(101, "/m/.weft/logs/web-1.log"), port: 40001 },
        sidecar: {
          ...proc(102, "/m/.weft/logs/web-1.sidecar.log"),
          inbound: 40002,
          admin: 40003,
          ready: true,
        },
        upstreams: { api: 9101 },
        health: "passing",
        healthOutput: "HTTP GET /healthz: 200",
        rps: 4,
      },
    ],
    gateways: [],
    events: [],
  };
}

/** Tests only: a ready ingress gateway record, as the supervisor keeps it. */
export function sampleGateway(): GatewayRecord {
  return {
    name: "edge",
    type: "ingress",
    listeners: [{ name: "listener-0", port: 9090 }],
    admin: 40010,
    ready: true,
    health: "passing",
    healthOutput: "",
    instance: "edge-0a1b2c3d4e",
    pid: 110,
    startTime: null,
    status: "running",
    restarts: 0,
    startedAt: 2,
    lastExit: null,
    log: "/m/.weft/logs/edge.gateway.log",
  };
}
