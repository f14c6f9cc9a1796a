/**
 * How a `weft up` looks to people: the header lines (file, control plane
 * address and token, UI), the tables of replicas and of gateways (shared by
 * `weft up` and `weft ps`), and the JSON view of `weft ps --json`. Pure functions of the
 * state (and of which pids are alive), so they are tested without processes.
 */
import { relative } from "node:path";
import { type Color, paint, table } from "../output.js";
import { describeExit } from "./managed-process.js";
import type { GatewayRecord, Health, ReplicaRecord, UpState } from "./state.js";

const HEALTH_COLOR: Record<Health, Color> = {
  passing: "green",
  warning: "yellow",
  critical: "red",
  unknown: "dim",
};

const PHASE_COLOR: Record<UpState["phase"], Color> = {
  starting: "yellow",
  running: "green",
  stopping: "yellow",
  failed: "red",
};

/** Whether a recorded process is alive; injected (ps checks /proc, up knows its children). */
export type AliveFn = (pid: number | null, startTime: number | null) => boolean;

function dash(v: number | string | null | undefined): string {
  return v === null || v === undefined || v === "" ? "-" : String(v);
}

function procCell(pid: number | null, startTime: number | null, status: string, alive: AliveFn): string {
  if (pid !== null && alive(pid, startTime)) return String(pid);
  if (status === "backoff") return "restarting";
  if (status === "starting") return "starting";
  return pid === null ? "-" : `${pid} (dead)`;
}

/** Human duration: 850ms, 4.2s, 3m 10s, 2h 5m. */
export function humanDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/** The replicas table: one row per replica (its app and its sidecar). */
export function replicaTable(state: UpState, alive: AliveFn, color: boolean): string {
  const rows = state.replicas.map((r) => {
    const health = r.sidecar.ready || r.health !== "unknown" ? r.health : "unknown";
    return [
      r.workload,
      String(r.replica),
      r.service,
      procCell(r.app.pid, r.app.startTime, r.app.status, alive),
      String(r.app.port),
      procCell(r.sidecar.pid, r.sidecar.startTime, r.sidecar.status, alive),
      dash(r.sidecar.inbound),
      dash(r.sidecar.admin),
      paint(health, HEALTH_COLOR[health], color),
      String(r.app.restarts + r.sidecar.restarts),
      r.rps === null ? "-" : r.rps.toFixed(1),
    ];
  });
  return table(
    [
      "WORKLOAD",
      "REPLICA",
      "SERVICE",
      "APP PID",
      "APP PORT",
      "SIDECAR PID",
      "INBOUND",
      "ADMIN",
      "HEALTH",
      "RESTARTS",
      "REQ/S",
    ],
    rows,
  );
}

/** Lines above the table: where the control plane is and how to reach it. */
export function headerLines(state: UpState, cwd: string, alive: AliveFn, color = false): string[] {
  const rel = (p: string) => {
    const r = relative(cwd, p);
    return r === "" ? "." : r.startsWith("..") ? p : r;
  };
  const sup = state.supervisor;
  const supAlive = alive(sup.pid, sup.startTime);
  const lines = [
    `weft up ${rel(state.file)}: ${paint(state.phase, PHASE_COLOR[state.phase], color)}${supAlive ? "" : " (supervisor gone)"}` +
      `${state.phase === "running" && state.readyAt ? `, healthy since ${new Date(state.readyAt).toLocaleTimeString()}` : ""}`,
    `control plane: ${state.controlPlane.api ?? "-"} (pid ${state.controlPlane.pid}${supAlive ? "" : ", dead"}), token ${rel(state.controlPlane.tokenFile)}`,
    `web UI: ${state.controlPlane.ui ?? "-"}`,
  ];
  if (state.phase === "failed" && state.message) lines.push(`failed: ${state.message}`);
  return lines;
}

/** What went wrong with a replica that is not healthy, in one or a few lines (for -d failures). */
export function replicaProblem(r: ReplicaRecord): string | undefined {
  const out: string[] = [];
  const exitLine = (what: string, p: ReplicaRecord["app"] | ReplicaRecord["sidecar"]) => {
    if (!p.lastExit || p.status === "running") return;
    out.push(
      `${r.instance} ${what} ${describeExit(p.lastExit)} (${p.restarts} restart${p.restarts === 1 ? "" : "s"}); last output:`,
    );
    for (const l of p.lastExit.output.slice(-6)) out.push(`    ${l}`);
  };
  exitLine("app", r.app);
  exitLine("sidecar", r.sidecar);
  if (out.length === 0) {
    if (!r.sidecar.ready) out.push(`${r.instance}: sidecar not ready yet`);
    else if (r.health !== "passing")
      out.push(`${r.instance}: health ${r.health}${r.healthOutput ? `: ${r.healthOutput}` : ""}`);
  }
  return out.length > 0 ? out.join("\n") : undefined;
}

/** A gateway's health as shown: unknown until it is ready. */
function gatewayHealth(g: GatewayRecord): Health {
  return g.ready ? g.health : "unknown";
}

/** `9090` for ingress listeners, `payments:41001` for a terminating gateway's services. */
function listenerCell(g: GatewayRecord): string {
  if (g.listeners.length === 0) return "-";
  return g.listeners
    .map((l) => (l.name.startsWith("listener-") ? String(l.port) : `${l.name}:${l.port}`))
    .join(",");
}

/**
 * The gateways table (empty string when the file has none): one row per
 * gateway process, with the ports it serves on and its admin (metrics) port.
 */
export function gatewayTable(state: UpState, alive: AliveFn, color: boolean): string {
  if (state.gateways.length === 0) return "";
  const rows = state.gateways.map((g) => {
    const health = gatewayHealth(g);
    return [
      g.name,
      g.type ?? "-",
      procCell(g.pid, g.startTime, g.status, alive),
      listenerCell(g),
      dash(g.admin),
      paint(health, HEALTH_COLOR[health], color),
      String(g.restarts),
    ];
  });
  return `\n${table(["GATEWAY", "TYPE", "PID", "LISTENERS", "ADMIN", "HEALTH", "RESTARTS"], rows)}`;
}

export function gatewayHealthy(g: GatewayRecord): boolean {
  return g.status === "running" && g.ready && g.health === "passing";
}

/** What went wrong with a gateway that is not healthy (for -d failures). */
export function gatewayProblem(g: GatewayRecord): string | undefined {
  if (gatewayHealthy(g)) return undefined;
  if (g.lastExit && g.status !== "running") {
    return [
      `gateway ${g.name} ${describeExit(g.lastExit)} (${g.restarts} restart${g.restarts === 1 ? "" : "s"}); last output:`,
      ...g.lastExit.output.slice(-6).map((l) => `    ${l}`),
    ].join("\n");
  }
  if (!g.ready) return `gateway ${g.name}: not ready yet (no ready line in ${g.log})`;
  return `gateway ${g.name}: health ${g.health}${g.healthOutput ? `: ${g.healthOutput}` : ""}`;
}

export function healthy(r: ReplicaRecord): boolean {
  return (
    r.app.status === "running" && r.sidecar.status === "running" && r.sidecar.ready && r.health === "passing"
  );
}

/** `weft ps --json`: the state as scripts want it, with liveness checked now. */
export function psJson(state: UpState, alive: AliveFn): unknown {
  const supAlive = alive(state.supervisor.pid, state.supervisor.startTime);
  return {
    file: state.file,
    dataDir: state.dataDir,
    phase: state.phase,
    ...(state.message ? { message: state.message } : {}),
    startedAt: new Date(state.startedAt).toISOString(),
    readyAt: state.readyAt ? new Date(state.readyAt).toISOString() : null,
    supervisor: { pid: state.supervisor.pid, alive: supAlive, detached: state.supervisor.detached },
    controlPlane: {
      pid: state.controlPlane.pid,
      alive: supAlive,
      api: state.controlPlane.api,
      ui: state.controlPlane.ui,
      tokenFile: state.controlPlane.tokenFile,
    },
    gateways: state.gateways.map((g) => ({
      kind: "gateway",
      name: g.name,
      type: g.type,
      instance: g.instance ?? null,
      pid: g.pid,
      alive: alive(g.pid, g.startTime),
      listeners: g.listeners,
      admin: g.admin,
      ready: g.ready,
      health: gatewayHealth(g),
      healthy: gatewayHealthy(g) && alive(g.pid, g.startTime),
      status: g.status,
      restarts: g.restarts,
      lastExit: g.lastExit,
      log: g.log,
    })),
    processes: state.replicas.map((r) => ({
      workload: r.workload,
      service: r.service,
      replica: r.replica,
      instance: r.instance,
      health: r.health,
      healthy: healthy(r) && alive(r.app.pid, r.app.startTime) && alive(r.sidecar.pid, r.sidecar.startTime),
      rps: r.rps,
      upstreams: r.upstreams,
      app: {
        pid: r.app.pid,
        alive: alive(r.app.pid, r.app.startTime),
        port: r.app.port,
        status: r.app.status,
        restarts: r.app.restarts,
        lastExit: r.app.lastExit,
        log: r.app.log,
      },
      sidecar: {
        pid: r.sidecar.pid,
        alive: alive(r.sidecar.pid, r.sidecar.startTime),
        inbound: r.sidecar.inbound,
        admin: r.sidecar.admin,
        ready: r.sidecar.ready,
        status: r.sidecar.status,
        restarts: r.sidecar.restarts,
        lastExit: r.sidecar.lastExit,
        log: r.sidecar.log,
      },
    })),
  };
}
