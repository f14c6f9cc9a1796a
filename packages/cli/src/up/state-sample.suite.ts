/** Tests only: a small, complete UpState (one replica, everything running). */
import type { UpState } from "./state.js";

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
