/**
 * The state file of a `weft up` (DIR/state.json): what the supervisor runs,
 * so that `weft ps`, `weft down` and `weft logs` (other invocations) find
 * every process, port and log. The supervisor rewrites it atomically (temp
 * file + rename) whenever something changes and removes it once everything
 * it started has stopped.
 *
 * Files written before gateways ran (`gateways` as a list of names) still
 * read: each name becomes a gateway record without a process.
 *
 * Each pid is recorded with the process's start time (Linux: field 22 of
 * /proc/PID/stat), so that a pid the kernel has since given to another
 * process is never signalled by `weft down` or taken for alive by `weft ps`.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dataDirLayout, gatewayLogFile } from "./paths.js";

export type Health = "passing" | "warning" | "critical" | "unknown";
export type ProcStatus = "starting" | "running" | "backoff" | "stopped";

export interface ExitRecord {
  code: number | null;
  signal: string | null;
  /** Epoch ms. */
  at: number;
  uptimeMs: number;
  /** The last lines the process wrote (stdout and stderr). */
  output: string[];
}

export interface ProcRecord {
  pid: number | null;
  /** Process start time (clock ticks since boot, Linux), to recognise the pid. */
  startTime: number | null;
  status: ProcStatus;
  restarts: number;
  /** Epoch ms of the current start. */
  startedAt: number | null;
  lastExit: ExitRecord | null;
  log: string;
}

export interface ReplicaRecord {
  workload: string;
  service: string;
  /** 1-based. */
  replica: number;
  /** The catalog instance id, `<workload>-<replica>`. */
  instance: string;
  app: ProcRecord & { port: number };
  sidecar: ProcRecord & { inbound: number | null; admin: number | null; ready: boolean };
  /** Upstream service -> the loopback port this replica's app reaches it at. */
  upstreams: Record<string, number>;
  health: Health;
  /** The health check's last output, from the catalog. */
  healthOutput: string;
  /** Inbound HTTP requests per second through the sidecar, when measured. */
  rps: number | null;
}

/** A gateway `weft up` runs (`weft gateway --name NAME`). */
export interface GatewayRecord extends ProcRecord {
  name: string;
  /** Null in a state file written before gateways ran. */
  type: "ingress" | "terminating" | null;
  /**
   * Where it serves, from its ready line: ingress listeners (`listener-0`)
   * with their ports, or each external service's mTLS port (terminating).
   * Before it is ready: the file's listener ports.
   */
  listeners: { name: string; port: number }[];
  /** Its admin listener (/ready, /config, /metrics). */
  admin: number | null;
  ready: boolean;
  /** passing while its admin /ready answers 200. */
  health: Health;
  healthOutput: string;
  /**
   * An ingress gateway's catalog instance id in this run (random per run; from
   * its admin /config), so that the instance of a run that died is
   * deregistered instead of lingering until its check expires. Null for a
   * terminating gateway (its instances have fixed ids and are re-registered).
   */
  instance?: string | null;
}

export type Phase = "starting" | "running" | "stopping" | "failed";

export interface UpState {
  format: 1;
  /** The weft.yaml, absolute. */
  file: string;
  dataDir: string;
  phase: Phase;
  /** Why it failed (phase "failed"). */
  message?: string | undefined;
  startedAt: number;
  /** When everything was first healthy. */
  readyAt: number | null;
  updatedAt: number;
  supervisor: { pid: number; startTime: number | null; detached: boolean; log: string };
  controlPlane: {
    /** In-process: the supervisor's pid. */
    pid: number;
    api: string | null;
    /** The web UI's address once there is one (issue #10). */
    ui: string | null;
    tokenFile: string;
    log: string;
  };
  replicas: ReplicaRecord[];
  /** The gateway processes, in file order. */
  gateways: GatewayRecord[];
  /** The most recent events (restarts, health changes), newest last. */
  events: string[];
}

export function readState(path: string): UpState | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  try {
    const v = JSON.parse(text) as UpState;
    if (v?.format !== 1 || !Array.isArray(v.replicas)) return undefined;
    return { ...v, gateways: upgradeGateways(v.gateways as unknown, v.dataDir) };
  } catch {
    return undefined;
  }
}

/** Gateway records; names (the format before gateways ran) become records without a process. */
function upgradeGateways(v: unknown, dataDir: string): GatewayRecord[] {
  if (!Array.isArray(v)) return [];
  return v.flatMap((g): GatewayRecord[] => {
    if (typeof g === "object" && g !== null && typeof (g as GatewayRecord).name === "string") {
      return [g as GatewayRecord];
    }
    if (typeof g !== "string") return [];
    return [
      {
        name: g,
        type: null,
        listeners: [],
        admin: null,
        ready: false,
        health: "unknown",
        healthOutput: "",
        pid: null,
        startTime: null,
        status: "stopped",
        restarts: 0,
        startedAt: null,
        lastExit: null,
        log: gatewayLogFile(dataDirLayout(dataDir), g),
      },
    ];
  });
}

/** Atomic replace: readers never see half a file. */
export function writeState(path: string, state: UpState): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

export function removeState(path: string): void {
  rmSync(path, { force: true });
}

// ---------------------------------------------------------------- processes

/** Fields of /proc/PID/stat after the command name: state is [0], starttime (field 22) is [19]. */
function procStat(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** The process's start time (clock ticks since boot), or null where /proc is not available. */
export function processStartTime(pid: number): number | null {
  const f = procStat(pid);
  const v = f ? Number(f[19]) : Number.NaN;
  return Number.isFinite(v) ? v : null;
}

/**
 * Whether `pid` is the live process recorded with `startTime`: it exists,
 * is not a zombie, and (when both are known) started at that time.
 */
export function processAlive(pid: number | null | undefined, startTime?: number | null): boolean {
  if (pid === null || pid === undefined || !Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const f = procStat(pid);
  if (!f) return true; // no /proc (not Linux): kill(0) is all we know
  if (f[0] === "Z" || f[0] === "X") return false;
  if (startTime !== null && startTime !== undefined && Number(f[19]) !== startTime) return false;
  return true;
}

/**
 * Waits (up to `ms`) until a dead process is also reaped: a zombie still
 * answers kill(pid, 0), which is how the control plane's store lock decides
 * that its previous holder is alive.
 */
export async function waitReaped(pid: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  const zombie = () => {
    try {
      process.kill(pid, 0);
    } catch {
      return false;
    }
    const f = procStat(pid);
    return f !== undefined && (f[0] === "Z" || f[0] === "X");
  };
  while (Date.now() < deadline && zombie()) await new Promise((r) => setTimeout(r, 50));
}

/** Sends `signal` to the process group led by `pid` (our children are group leaders), else to the process. */
export function signalProcess(pid: number, signal: NodeJS.Signals, group = true): void {
  try {
    process.kill(group ? -pid : pid, signal);
    return;
  } catch {
    // not a group leader (or gone)
  }
  try {
    process.kill(pid, signal);
  } catch {
    // gone
  }
}

/**
 * Every process the state file names, with its start time, in stopping
 * order after the supervisor: gateways (they send to sidecars), then each
 * replica's sidecar and app.
 */
export function recordedProcesses(state: UpState): {
  what: string;
  pid: number;
  startTime: number | null;
  group: boolean;
  kind: "supervisor" | "gateway" | "sidecar" | "app";
}[] {
  const out: ReturnType<typeof recordedProcesses> = [];
  out.push({
    what: "weft up supervisor",
    pid: state.supervisor.pid,
    startTime: state.supervisor.startTime,
    group: state.supervisor.detached,
    kind: "supervisor",
  });
  for (const g of state.gateways) {
    if (g.pid)
      out.push({
        what: `gateway ${g.name}`,
        pid: g.pid,
        startTime: g.startTime,
        group: true,
        kind: "gateway",
      });
  }
  for (const r of state.replicas) {
    if (r.sidecar.pid)
      out.push({
        what: `${r.instance} sidecar`,
        pid: r.sidecar.pid,
        startTime: r.sidecar.startTime,
        group: true,
        kind: "sidecar",
      });
    if (r.app.pid)
      out.push({
        what: `${r.instance} app`,
        pid: r.app.pid,
        startTime: r.app.startTime,
        group: true,
        kind: "app",
      });
  }
  return out;
}
