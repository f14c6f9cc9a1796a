/**
 * The `weft up` supervisor: one process that owns a whole local mesh.
 *
 *   control plane (in this process: startServer, SQLite under DIR/server)
 *   -> management token (the store's bootstrap token) -> apply every
 *      non-Workload resource (Gateways included) -> one `service:<name>:write`
 *      token per service, and one per gateway (write on what it registers)
 *   -> per replica: app (PORT, WEFT_UPSTREAM_*) -> once it listens, its
 *      sidecar (`weft proxy`, token in WEFT_TOKEN)
 *   -> per Gateway, once the replicas' processes are up: `weft gateway
 *      --name NAME` (its resource from the control plane; ready when it
 *      prints its ready line, with the ports it serves on)
 *   -> loops: catalog health and gateway /ready (1 s), sidecar readiness,
 *      inbound request rate (2 s), state file, log rotation, the live view
 *   -> stop (Ctrl-C, SIGTERM from `weft down`, or a failed `-d` start):
 *      gateways first (they drain the requests they hold, while the
 *      sidecars they send to still serve), then sidecars (SIGTERM: they
 *      deregister and drain), then apps, then the control plane; the state
 *      file goes last.
 *
 * A process that dies is started again with backoff and the exit (code or
 * signal, last output lines) is shown. If this process itself is killed
 * abnormally, an exit hook SIGKILLs every child group, and `weft down`
 * can still find and stop whatever is left through the state file.
 */
import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import { get } from "node:http";
import { WeftClient } from "@weft/api/client";
import { describeError, WeftError } from "@weft/core";
import { webUiDir } from "../commands/server.js";
import type { Io } from "../io.js";
import { paint, useColor } from "../output.js";
import {
  appCommand,
  appEnv,
  baseEnv,
  gatewayArgs,
  gatewayPolicies,
  parseGatewayReady,
  type ReplicaPorts,
  sidecarArgs,
  WEFT_BIN,
} from "./launch.js";
import { lastRunLines, rotateIfLarge } from "./log-files.js";
import { describeExit, ManagedProcess } from "./managed-process.js";
import { type DataDir, elsewhereHint, gatewayLogFile, logFile } from "./paths.js";
import type { GatewayPlan, UpPlan, WorkloadPlan } from "./plan.js";
import { PortAllocator, waitForListening } from "./ports.js";
import {
  type GatewayRecord,
  type Health,
  processAlive,
  processStartTime,
  type ReplicaRecord,
  removeState,
  type UpState,
  writeState,
} from "./state.js";
import {
  gatewayHealthy,
  gatewayProblem,
  gatewayTable,
  headerLines,
  healthy,
  humanDuration,
  replicaProblem,
  replicaTable,
} from "./status-view.js";

export interface SupervisorOptions {
  plan: UpPlan;
  dir: DataDir;
  /** The control plane's API listener. */
  listen: string;
  io: Io;
  /** The background supervisor of `weft up -d`: plain lines, and a failure when not healthy within `timeoutMs`. */
  detached: boolean;
  timeoutMs: number;
  /** Instance ids a previous run left registered (it did not stop cleanly): deregistered first. */
  staleInstances?: string[];
}

const GATEWAY_GRACE_MS = 15_000;
const SIDECAR_GRACE_MS = 15_000;
const APP_GRACE_MS = 10_000;
const HEALTH_POLL_MS = 1_000;
const METRICS_POLL_MS = 2_000;
const MAX_EVENTS = 30;
const TOKEN_DESCRIPTION = "weft up: sidecar token for ";
const GATEWAY_TOKEN_DESCRIPTION = "weft up: gateway token for ";

interface Replica {
  rec: ReplicaRecord;
  workload: WorkloadPlan;
  app: ManagedProcess;
  sidecar: ManagedProcess;
  readyTimer?: NodeJS.Timeout;
  lastRequests?: { at: number; total: number };
}

interface GatewayProc {
  rec: GatewayRecord;
  plan: GatewayPlan;
  proc: ManagedProcess;
  readyTimer?: NodeJS.Timeout;
}

function httpGet(url: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        if (body.length < 4 * 1024 * 1024) body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
  });
}

/** Sum of `weft_proxy_requests_total` samples with direction="inbound". */
export function inboundRequests(metrics: string): number {
  let sum = 0;
  for (const line of metrics.split("\n")) {
    if (line.startsWith("weft_proxy_requests_total{") && line.includes('direction="inbound"')) {
      const v = Number(line.slice(line.lastIndexOf(" ") + 1));
      if (Number.isFinite(v)) sum += v;
    }
  }
  return sum;
}

export class Supervisor {
  private readonly state: UpState;
  private readonly replicas: Replica[] = [];
  private readonly gateways: GatewayProc[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private server: { url: string; close(): Promise<void> } | undefined;
  private client: WeftClient | undefined;
  private stopping = false;
  private stopReason = "";
  private wake: () => void = () => {};
  private readonly stopRequested: Promise<void>;
  private failure: WeftError | undefined;
  private lastWritten = "";
  private drawnLines = 0;
  private readonly tty: boolean;
  private readonly color: boolean;
  private readonly ports: PortAllocator;
  private tokens = new Map<string, string>();
  private gatewayTokens = new Map<string, string>();
  /** How to run ps/logs/down from another terminal started where this one was. */
  private hint = "";

  constructor(private readonly o: SupervisorOptions) {
    this.tty = !o.detached && o.io.out.isTTY;
    this.color = !o.detached && useColor(o.io.out);
    this.stopRequested = new Promise((r) => {
      this.wake = r;
    });
    const reserved: number[] = [];
    for (const w of o.plan.workloads) {
      if (w.port !== undefined) reserved.push(w.port);
      for (const u of w.upstreams) reserved.push(u.localPort);
    }
    for (const g of o.plan.gateways) for (const l of g.listeners) reserved.push(l.port);
    this.ports = new PortAllocator(reserved);
    const now = Date.now();
    this.state = {
      format: 1,
      file: o.plan.file,
      dataDir: o.dir.root,
      phase: "starting",
      startedAt: now,
      readyAt: null,
      updatedAt: now,
      supervisor: {
        pid: process.pid,
        startTime: processStartTime(process.pid),
        detached: o.detached,
        log: o.dir.upLog,
      },
      controlPlane: {
        pid: process.pid,
        api: null,
        ui: null,
        tokenFile: o.dir.tokenFile,
        log: o.dir.controlPlaneLog,
      },
      replicas: [],
      gateways: [],
      events: [],
    };
  }

  /** Asks for a graceful stop (signals, `weft down`). */
  requestStop(reason: string): void {
    if (this.stopping) return;
    this.stopping = true;
    this.stopReason = reason;
    this.wake();
  }

  /** Runs the mesh until asked to stop; throws (after stopping everything) when it could not start. */
  async run(): Promise<void> {
    const { dir } = this.o;
    mkdirSync(dir.logs, { recursive: true, mode: 0o700 });
    mkdirSync(dir.server, { recursive: true, mode: 0o700 });
    this.persist(true);
    this.hint = elsewhereHint(dir, this.o.plan.dir, this.o.io.cwd);

    let firstSignalAt = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      // `npm start` delivers Ctrl-C twice (the terminal's SIGINT, and npm forwarding it):
      // only a signal a second or more after the first means "now".
      if (this.stopping && Date.now() - firstSignalAt < 1_000) return;
      firstSignalAt ||= Date.now();
      if (this.stopping) {
        this.line(`received ${sig} again; killing everything now`);
        this.killAll();
        process.exit(1);
      }
      this.requestStop(`received ${sig}`);
    };
    const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
    for (const s of signals) process.on(s, onSignal);
    // Whatever way this process ends (an uncaught error included), no child outlives it.
    const onExit = () => this.killAll();
    process.on("exit", onExit);

    try {
      await this.start();
      if (!this.stopping) {
        this.loops();
        await this.stopRequested;
      }
    } catch (e) {
      this.fail(e);
    } finally {
      await this.shutdown();
      for (const s of signals) process.off(s, onSignal);
      process.off("exit", onExit);
    }
    if (this.failure) throw this.failure;
  }

  // ------------------------------------------------------------ start

  private async start(): Promise<void> {
    const { plan, dir } = this.o;
    const cp = await import("@weft/controlplane");
    const { pino } = await import("pino");
    const logger = pino(
      { level: process.env.WEFT_LOG_LEVEL ?? "info", name: "weft-controlplane", base: { pid: process.pid } },
      pino.destination({ dest: dir.controlPlaneLog, sync: true, mkdir: true, append: true }),
    );
    const server = await cp.startServer({
      listen: this.o.listen,
      storeSpec: dir.server,
      dataDir: dir.server,
      logger,
      uiDir: webUiDir(),
    });
    this.server = server;
    this.state.controlPlane.api = server.url;
    this.state.controlPlane.ui = `${server.url}/ui/`;
    this.event(`control plane listening on ${server.url} (store ${dir.server})`);
    let token = server.bootstrapToken;
    if (token === undefined) {
      try {
        token = readFileSync(dir.tokenFile, "utf8").trim();
      } catch {
        throw new WeftError("WEFT_ERR_UNAVAILABLE", {
          detail: `the store in ${dir.server} was set up before but its bootstrap-token file is gone; remove ${dir.server} to start afresh`,
        });
      }
    }
    const client = new WeftClient({ addr: server.url, token });
    this.client = client;
    this.persist();
    if (this.stopping) return;

    for (const id of this.o.staleInstances ?? []) {
      await client.deregisterInstance(id).catch(() => {});
    }
    if (plan.resources.length > 0) {
      const res = await client.applyConfig(plan.resources);
      const changed = res.applied.filter((a) => a.action !== "unchanged");
      this.event(
        `applied ${plan.resources.length} resource${plan.resources.length === 1 ? "" : "s"}` +
          (changed.length > 0
            ? ` (${changed.map((a) => `${a.kind}/${a.name} ${a.action}`).join(", ")})`
            : " (unchanged)"),
      );
    }
    await this.createTokens(client);
    if (this.stopping) return;

    for (const w of plan.workloads) {
      for (let i = 1; i <= w.replicas; i++) this.replicas.push(await this.replica(w, i));
    }
    for (const g of plan.gateways) this.gateways.push(this.gateway(g));
    this.state.replicas = this.replicas.map((r) => r.rec);
    this.state.gateways = this.gateways.map((g) => g.rec);
    this.persist();
    await Promise.all(this.replicas.map((r) => this.startReplica(r)));
    // Gateways after the workloads they route to (they answer 503 until a destination is healthy).
    if (this.stopping) return;
    await Promise.all(this.gateways.map((g) => g.proc.start()));
  }

  /** Fresh per-service tokens each run; the previous run's are revoked. */
  private async createTokens(client: WeftClient): Promise<void> {
    const old = await client.listTokens();
    for (const t of old) {
      const d = t.description ?? "";
      if (d.startsWith(TOKEN_DESCRIPTION) || d.startsWith(GATEWAY_TOKEN_DESCRIPTION))
        await client.deleteToken(t.accessorId).catch(() => {});
    }
    const services = [...new Set(this.o.plan.workloads.map((w) => w.service))];
    for (const s of services) {
      const t = await client.createToken({
        policies: [`service:${s}:write`],
        description: `${TOKEN_DESCRIPTION}${s}`,
      });
      this.tokens.set(s, t.secretId);
    }
    for (const g of this.o.plan.gateways) {
      const policies = gatewayPolicies(g);
      // A terminating gateway without services registers nothing; it still needs a valid token.
      const t = await client.createToken({
        policies: policies.length > 0 ? policies : [`service:${g.name}:write`],
        description: `${GATEWAY_TOKEN_DESCRIPTION}${g.name}`,
      });
      this.gatewayTokens.set(g.name, t.secretId);
    }
  }

  private gateway(g: GatewayPlan): GatewayProc {
    const { dir, plan } = this.o;
    const planned = () => g.listeners.map((l, i) => ({ name: `listener-${i}`, port: l.port }));
    const proc = new ManagedProcess({
      name: `gateway ${g.name}`,
      log: gatewayLogFile(dir, g.name),
      prepare: async () => {
        const admin = await this.ports.next();
        Object.assign(rec, { admin, ready: false, listeners: planned() });
        return {
          command: process.execPath,
          args: [WEFT_BIN, ...gatewayArgs(g, admin, this.server?.url ?? "")],
          cwd: plan.dir,
          env: { ...baseEnv(), WEFT_TOKEN: this.gatewayTokens.get(g.name) ?? "" },
        };
      },
      onStart: (p) => {
        this.event(`gateway ${g.name} started (pid ${p.record.pid})`);
        this.pollGatewayReady(gp);
      },
      onExit: (p, exit, restartIn) => {
        rec.ready = false;
        rec.health = "unknown";
        if (gp.readyTimer) clearTimeout(gp.readyTimer);
        // A gateway that stops when asked deregisters itself; one that died leaves its instance behind.
        const gone = rec.instance;
        rec.instance = null;
        if (gone && restartIn !== undefined) void this.client?.deregisterInstance(gone).catch(() => {});
        this.exitEvent(`gateway ${g.name}`, exit, restartIn, p.spawnError);
      },
    });
    const rec: GatewayRecord = Object.assign(proc.record, {
      name: g.name,
      type: g.type,
      listeners: planned(),
      admin: null,
      ready: false,
      health: "unknown" as Health,
      healthOutput: "",
      instance: null,
    });
    const gp: GatewayProc = { rec, plan: g, proc };
    return gp;
  }

  /** Ready once this run printed its ready line (with the ports it serves on) to its log. */
  private pollGatewayReady(g: GatewayProc): void {
    const tick = () => {
      g.readyTimer = undefined;
      if (this.stopping || !g.proc.alive) return;
      const ready = lastRunLines(g.rec.log, 500, 256 * 1024)
        .map((l) => parseGatewayReady(l, g.rec.name))
        .find((r) => r !== undefined);
      if (ready) {
        // admin=0: a terminating gateway without services has no admin listener (nothing to poll).
        Object.assign(g.rec, {
          listeners: ready.listeners,
          admin: ready.admin > 0 ? ready.admin : null,
          ready: true,
        });
        g.rec.health = "passing";
        g.rec.healthOutput = "";
        this.event(
          `gateway ${g.rec.name} ready (pid ${g.rec.pid}, ${g.rec.type === "terminating" ? "services" : "listeners"} ` +
            `${ready.listeners.map((l) => (g.rec.type === "terminating" ? `${l.name}:${l.port}` : l.port)).join(", ")}, admin ${ready.admin})`,
        );
        this.persist();
        this.checkReady();
        if (g.rec.type === "ingress") void this.gatewayInstance(g, ready.admin);
        return;
      }
      g.readyTimer = setTimeout(tick, 250);
    };
    g.readyTimer = setTimeout(tick, 200);
  }

  private async replica(w: WorkloadPlan, index: number): Promise<Replica> {
    const { dir } = this.o;
    const id = `${w.name}-${index}`;
    const ports: ReplicaPorts = { app: w.port ?? (await this.ports.next()), upstreams: {} };
    for (const u of w.upstreams) {
      // The first replica gets the file's localPort; each other replica's sidecar needs its own.
      ports.upstreams[u.service] = index === 1 ? u.localPort : await this.ports.next();
    }
    const app = new ManagedProcess({
      name: `${id} app`,
      log: logFile(dir, id),
      prepare: async () => ({ ...appCommand(w), cwd: w.cwd, env: appEnv(w, index, ports) }),
      onStart: (p) => this.event(`${id} app started (pid ${p.record.pid}, port ${ports.app})`),
      onExit: (p, exit, restartIn) => this.exitEvent(`${id} app`, exit, restartIn, p.spawnError),
    });
    const sidecar = new ManagedProcess({
      name: `${id} sidecar`,
      log: logFile(dir, id, true),
      prepare: async () => {
        const inbound = await this.ports.next();
        const admin = await this.ports.next();
        Object.assign(rec.sidecar, { inbound, admin, ready: false });
        return {
          command: process.execPath,
          args: [WEFT_BIN, ...sidecarArgs(w, id, { ...ports, inbound, admin }, this.server?.url ?? "")],
          cwd: w.cwd,
          env: { ...baseEnv(), WEFT_TOKEN: this.tokens.get(w.service) ?? "" },
        };
      },
      onStart: () => {
        this.persist();
        this.pollReady(r);
      },
      onExit: (p, exit, restartIn) => {
        rec.sidecar.ready = false;
        rec.health = "unknown";
        rec.rps = null;
        r.lastRequests = undefined;
        if (r.readyTimer) clearTimeout(r.readyTimer);
        this.exitEvent(`${id} sidecar`, exit, restartIn, p.spawnError);
      },
    });
    // The records are the processes' own objects, so pids and exits are always current.
    const rec: ReplicaRecord = {
      workload: w.name,
      service: w.service,
      replica: index,
      instance: id,
      app: Object.assign(app.record, { port: ports.app }),
      sidecar: Object.assign(sidecar.record, { inbound: null, admin: null, ready: false }),
      upstreams: { ...ports.upstreams },
      health: "unknown",
      healthOutput: "",
      rps: null,
    };
    const r: Replica = { rec, workload: w, app, sidecar };
    return r;
  }

  private async startReplica(r: Replica): Promise<void> {
    await r.app.start();
    if (this.stopping) return;
    // The sidecar's first health probe should find the app listening; a slow app
    // still gets its sidecar after a while (its checks then fail until it listens).
    await waitForListening(r.rec.app.port, Date.now() + 20_000, () => this.stopping || !r.app.alive);
    if (this.stopping) return;
    await r.sidecar.start();
  }

  private pollReady(r: Replica): void {
    const tick = async () => {
      r.readyTimer = undefined;
      if (this.stopping || !r.sidecar.alive || r.rec.sidecar.admin === null) return;
      const admin = r.rec.sidecar.admin;
      const ok = await httpGet(`http://127.0.0.1:${admin}/ready`, 1_000).then(
        (res) => res.status === 200,
        () => false,
      );
      if (ok && r.sidecar.alive && r.rec.sidecar.admin === admin) {
        r.rec.sidecar.ready = true;
        this.event(
          `${r.rec.instance} sidecar ready (pid ${r.rec.sidecar.pid}, inbound ${r.rec.sidecar.inbound}, admin ${admin})`,
        );
        this.persist();
        this.checkReady();
        return;
      }
      if (!this.stopping && r.sidecar.alive) r.readyTimer = setTimeout(() => void tick(), 250);
    };
    r.readyTimer = setTimeout(() => void tick(), 200);
  }

  // ------------------------------------------------------------ loops

  private loops(): void {
    const every = (ms: number, fn: () => Promise<void> | void) => {
      let busy = false;
      const t = setInterval(() => {
        if (busy || this.stopping) return;
        busy = true;
        Promise.resolve()
          .then(fn)
          .catch((e: unknown) => this.line(`internal: ${describeError(e)}`))
          .finally(() => {
            busy = false;
          });
      }, ms);
      this.timers.push(t);
    };
    every(HEALTH_POLL_MS, () => this.pollHealth());
    every(METRICS_POLL_MS, () => this.pollMetrics());
    every(30_000, () => {
      for (const r of this.replicas) {
        rotateIfLarge(r.rec.app.log);
        rotateIfLarge(r.rec.sidecar.log);
      }
      for (const g of this.gateways) rotateIfLarge(g.rec.log);
      rotateIfLarge(this.o.dir.controlPlaneLog);
      rotateIfLarge(this.o.dir.upLog);
    });
    if (this.tty) every(1_000, () => this.draw());
    if (this.o.detached) {
      const deadline = setTimeout(() => {
        if (this.state.phase !== "starting" || this.stopping) return;
        const problems = [
          ...this.replicas.map((r) => (healthy(r.rec) ? undefined : replicaProblem(r.rec))),
          ...this.gateways.map((g) => (gatewayHealthy(g.rec) ? undefined : gatewayProblem(g.rec))),
        ].filter((p): p is string => p !== undefined);
        this.fail(
          new WeftError("WEFT_ERR_UNAVAILABLE", {
            detail:
              `not healthy within ${humanDuration(this.o.timeoutMs)}:\n  ` +
              (problems.length > 0 ? problems.join("\n  ") : "(no details)"),
          }),
        );
        this.requestStop("start failed");
      }, this.o.timeoutMs);
      this.timers.push(deadline);
    }
  }

  private async pollHealth(): Promise<void> {
    const client = this.client;
    if (!client) return;
    const services = [...new Set(this.replicas.map((r) => r.rec.service))];
    const byId = new Map<string, { status: Health; output: string }>();
    await Promise.all(
      services.map(async (s) => {
        const res = await client.healthService(s, { status: "any" }).catch(() => undefined);
        for (const inst of res?.instances ?? []) {
          byId.set(inst.id, { status: inst.status, output: inst.checks[0]?.output ?? "" });
        }
      }),
    );
    for (const r of this.replicas) {
      const now = byId.get(r.rec.instance);
      const status: Health = r.sidecar.alive ? (now?.status ?? "unknown") : "unknown";
      const before = r.rec.health;
      r.rec.health = status;
      r.rec.healthOutput = now?.output ?? "";
      if (before !== status && !(before === "unknown" && this.state.phase === "starting")) {
        this.event(`${r.rec.instance} health ${before} -> ${status}${now?.output ? `: ${now.output}` : ""}`);
      }
    }
    await Promise.all(this.gateways.map((g) => this.pollGatewayHealth(g)));
    this.checkReady();
    this.persist();
  }

  /** Records an ingress gateway's catalog instance id (its admin /config says it). */
  private async gatewayInstance(g: GatewayProc, admin: number): Promise<void> {
    const res = await httpGet(`http://127.0.0.1:${admin}/config`, 2_000).catch(() => undefined);
    if (res?.status !== 200 || g.rec.admin !== admin || !g.proc.alive) return;
    try {
      const id = (JSON.parse(res.body) as { instanceId?: unknown }).instanceId;
      if (typeof id === "string") {
        g.rec.instance = id;
        this.persist();
      }
    } catch {
      // not JSON: nothing to record
    }
  }

  /** A ready gateway's health: its admin /ready (200 while it serves, 503 with reasons while not). */
  private async pollGatewayHealth(g: GatewayProc): Promise<void> {
    const admin = g.rec.admin;
    if (!g.rec.ready || admin === null || !g.proc.alive) return;
    const res = await httpGet(`http://127.0.0.1:${admin}/ready`, 1_000).catch((e: unknown) => ({
      status: 0,
      body: describeError(e),
    }));
    if (!g.proc.alive || g.rec.admin !== admin) return;
    const status: Health = res.status === 200 ? "passing" : "critical";
    const before = g.rec.health;
    g.rec.health = status;
    g.rec.healthOutput = status === "passing" ? "" : res.body.trim().slice(0, 200);
    if (before !== status) {
      this.event(
        `gateway ${g.rec.name} health ${before} -> ${status}${g.rec.healthOutput ? `: ${g.rec.healthOutput}` : ""}`,
      );
    }
  }

  private async pollMetrics(): Promise<void> {
    await Promise.all(
      this.replicas.map(async (r) => {
        const admin = r.rec.sidecar.admin;
        if (!r.rec.sidecar.ready || admin === null) return;
        const res = await httpGet(`http://127.0.0.1:${admin}/metrics`, 1_500).catch(() => undefined);
        if (res?.status !== 200) return;
        const total = inboundRequests(res.body);
        const now = Date.now();
        const last = r.lastRequests;
        if (last && total >= last.total && now > last.at) {
          r.rec.rps = Math.round(((total - last.total) * 10_000) / (now - last.at)) / 10;
        }
        r.lastRequests = { at: now, total };
      }),
    );
    this.persist();
  }

  private checkReady(): void {
    if (this.state.phase !== "starting" || this.stopping) return;
    if (this.replicas.length === 0 || !this.replicas.every((r) => healthy(r.rec))) return;
    if (this.gateways.length !== this.o.plan.gateways.length) return;
    if (!this.gateways.every((g) => gatewayHealthy(g.rec))) return;
    const now = Date.now();
    this.state.phase = "running";
    this.state.readyAt = now;
    this.persist(true);
    const n = this.replicas.length;
    const gw = this.gateways.length;
    this.event(
      `all ${n} replica${n === 1 ? "" : "s"}${gw > 0 ? ` and ${gw} gateway${gw === 1 ? "" : "s"}` : ""} healthy in ${humanDuration(now - this.state.startedAt)}`,
    );
    if (!this.tty) this.summary();
  }

  /** The status, once, as plain text (non-TTY foreground and the -d log). */
  private summary(): void {
    const alive = (pid: number | null, st: number | null) => processAlive(pid, st);
    const text = `${headerLines(this.state, this.o.io.cwd, alive).join("\n")}\n${replicaTable(this.state, alive, this.color)}${gatewayTable(this.state, alive, this.color)}`;
    this.o.io.out.write(text);
  }

  // ------------------------------------------------------------ output

  /** A line that is not an event (internal trouble): plain output only, the live view has no room for it. */
  private line(text: string): void {
    if (!this.tty) this.o.io.out.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`);
  }

  private event(text: string): void {
    const stamped = `${new Date().toISOString().slice(11, 19)} ${text}`;
    this.state.events.push(stamped);
    if (this.state.events.length > MAX_EVENTS)
      this.state.events.splice(0, this.state.events.length - MAX_EVENTS);
    if (!this.o.detached) {
      // In the foreground the events also go to up.log (a detached supervisor's stdout is that file).
      try {
        appendFileSync(this.o.dir.upLog, `${stamped}\n`);
      } catch {
        // best effort
      }
    }
    if (this.tty) this.draw();
    else this.o.io.out.write(`${stamped}\n`);
    this.persist();
  }

  private exitEvent(
    what: string,
    exit: { code: number | null; signal: string | null; uptimeMs: number; output: string[] },
    restartIn: number | undefined,
    spawnError: string | undefined,
  ): void {
    if (restartIn === undefined) return; // stopping: expected
    const lines = exit.output.slice(-5).map((l) => `    | ${l}`);
    this.event(
      `${what} ${describeExit(exit, spawnError)} after ${humanDuration(exit.uptimeMs)}; restarting in ${humanDuration(restartIn)}` +
        (lines.length > 0 ? `; last output:\n${lines.join("\n")}` : ""),
    );
  }

  /** Redraws the live view in place (TTY only). */
  private draw(): void {
    if (!this.tty) return;
    const alive = (pid: number | null, st: number | null) => processAlive(pid, st);
    const width = process.stdout.columns || 120;
    const clip = (l: string) => (l.length > width ? l.slice(0, width - 1) : l);
    const header = headerLines(this.state, this.o.io.cwd, alive, this.color);
    const lines = [
      ...header.map(clip),
      "",
      ...replicaTable(this.state, alive, this.color).trimEnd().split("\n"),
      ...(this.state.gateways.length > 0
        ? ["", ...gatewayTable(this.state, alive, this.color).trim().split("\n")]
        : []),
      "",
      paint("recent events:", "dim", this.color),
      ...this.state.events
        .slice(-8)
        .flatMap((e) => e.split("\n"))
        .slice(-12)
        .map(clip),
      "",
      paint(`Ctrl-C stops everything.  In another terminal: ${this.hint}`, "dim", this.color),
    ];
    let out = "";
    if (this.drawnLines > 0) out += `\u001b[${this.drawnLines}F\u001b[0J`;
    out += `${lines.join("\n")}\n`;
    this.drawnLines = lines.length;
    this.o.io.out.write(out);
  }

  // ------------------------------------------------------------ state

  private persist(force = false): void {
    const { updatedAt: _, ...rest } = this.state;
    const text = JSON.stringify(rest);
    if (!force && text === this.lastWritten) return;
    this.lastWritten = text;
    this.state.updatedAt = Date.now();
    try {
      writeState(this.o.dir.state, this.state);
    } catch (e) {
      this.line(`could not write ${this.o.dir.state}: ${describeError(e)}`);
    }
  }

  // ------------------------------------------------------------ stop

  private fail(e: unknown): void {
    if (this.failure) return;
    this.failure =
      e instanceof WeftError
        ? e
        : new WeftError("WEFT_ERR_UNAVAILABLE", { detail: describeError(e) }, { cause: e });
    this.state.phase = "failed";
    this.state.message = this.failure.message;
    this.persist(true);
    if (this.tty) this.draw();
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) {
      clearInterval(t);
      clearTimeout(t);
    }
    for (const r of this.replicas) if (r.readyTimer) clearTimeout(r.readyTimer);
    for (const g of this.gateways) if (g.readyTimer) clearTimeout(g.readyTimer);
    if (this.state.phase !== "failed") this.state.phase = "stopping";
    const running =
      this.replicas.some((r) => r.app.alive || r.sidecar.alive) || this.gateways.some((g) => g.proc.alive);
    if (running || this.server) {
      this.event(
        `stopping${this.stopReason ? ` (${this.stopReason})` : ""}: ${this.gateways.length > 0 ? "gateways (they drain), then " : ""}sidecars (they deregister and drain), then apps, then the control plane`,
      );
    }
    this.persist(true);
    // Gateways first: what they hold in flight still reaches the sidecars behind them.
    await Promise.all(this.gateways.map((g) => g.proc.stop(GATEWAY_GRACE_MS)));
    this.persist(true);
    await Promise.all(this.replicas.map((r) => r.sidecar.stop(SIDECAR_GRACE_MS)));
    this.persist(true);
    await Promise.all(this.replicas.map((r) => r.app.stop(APP_GRACE_MS)));
    this.persist(true);
    if (this.server) {
      await this.server.close().catch((e: unknown) => this.line(`control plane close: ${describeError(e)}`));
    }
    this.event("stopped; nothing left running");
    // A failed `-d` start keeps its state (phase "failed", no pids) for the waiting
    // `weft up -d`, which reads the reason and removes it.
    if (!(this.o.detached && this.failure)) removeState(this.o.dir.state);
  }

  private killAll(): void {
    for (const g of this.gateways) g.proc.killNow();
    for (const r of this.replicas) {
      r.sidecar.killNow();
      r.app.killNow();
    }
  }
}
