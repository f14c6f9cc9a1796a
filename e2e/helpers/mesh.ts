/**
 * A real mesh for end-to-end tests of the sidecar: test apps (e2e/apps/*.mjs)
 * and `weft proxy` processes, each spawned in its own process group and
 * waited for by the line it prints when it serves (never a sleep), and a
 * control plane that can be restarted on the same port (`startControlPlane`
 * with `port`), which `startWeftServer` cannot do. Everything started here is
 * killed by `meshCleanup()` (call it in afterAll), which also runs weft.ts's
 * `cleanup()`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { type Agent, request as httpRequest } from "node:http";
import { join } from "node:path";
import { type HttpOptions, type HttpResult, http } from "./http.js";
import { cleanEnv, cleanup, exited, killGroup, REPO, runWeft, tempDir, WEFT_BIN } from "./weft.js";

export const APPS_DIR = join(REPO, "e2e/apps");

/** Most of a child's stderr kept in memory (the tail); a chatty proxy must not grow the test. */
const MAX_KEPT_OUTPUT = 1024 * 1024;

const live = new Set<ChildProcess>();

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const exitOf: (p: ChildProcess) => Promise<Exit> = exited;

export interface Spawned {
  proc: ChildProcess;
  pid: number;
  /** The match of the ready pattern. */
  ready: RegExpExecArray;
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited. */
  exited(): Promise<Exit>;
  /** SIGKILL to the process group; resolves once it is gone. */
  kill9(): Promise<void>;
  /** SIGTERM (to the process only, as a supervisor would), SIGKILL after `timeoutMs`; resolves to how it exited. */
  stop(timeoutMs?: number): Promise<Exit>;
}

interface SpawnOptions {
  /** Printed on stdout once the process serves. */
  ready: RegExp;
  what: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** Spawns `node ARGV...` detached (its own process group), registered for `meshCleanup`, and waits for `ready` on stdout. */
export async function spawnUntil(argv: readonly string[], o: SpawnOptions): Promise<Spawned> {
  const proc = spawn(process.execPath, argv, {
    // Not the repo: a ./.weft/ token file there would be picked up by `weft proxy`.
    cwd: tempDir("weft-cwd-"),
    env: cleanEnv(o.env),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  live.add(proc);
  proc.once("exit", () => live.delete(proc));
  let out = "";
  let err = "";
  proc.stdout!.setEncoding("utf8");
  proc.stderr!.setEncoding("utf8");
  proc.stderr!.on("data", (c: string) => {
    err += c;
    if (err.length > 2 * MAX_KEPT_OUTPUT) err = err.slice(-MAX_KEPT_OUTPUT);
  });
  const timeoutMs = o.timeoutMs ?? 20_000;
  const ready = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => {
      killGroup(proc, "SIGKILL");
      reject(
        new Error(
          `${o.what}: not ready within ${timeoutMs} ms\nstdout:\n${out}\nstderr:\n${err.slice(-8000)}`,
        ),
      );
    }, timeoutMs);
    const onExit = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      reject(
        new Error(
          `${o.what} exited (${code ?? signal}) before it was ready\nstdout:\n${out}\nstderr:\n${err.slice(-8000)}`,
        ),
      );
    };
    proc.once("exit", onExit);
    proc.once("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`${o.what}: could not start: ${e.message}`));
    });
    proc.stdout!.on("data", (c: string) => {
      out += c;
      if (out.length > 2 * MAX_KEPT_OUTPUT) out = out.slice(-MAX_KEPT_OUTPUT);
      const m = o.ready.exec(out);
      if (m) {
        clearTimeout(timer);
        proc.off("exit", onExit);
        resolve(m);
      }
    });
  });
  return {
    proc,
    pid: proc.pid!,
    ready,
    stdout: () => out,
    stderr: () => err,
    exited: () => exitOf(proc),
    async kill9() {
      killGroup(proc, "SIGKILL");
      await exitOf(proc);
    },
    async stop(stopTimeoutMs = 15_000) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      const t = setTimeout(() => killGroup(proc, "SIGKILL"), stopTimeoutMs);
      const r = await exitOf(proc);
      clearTimeout(t);
      return r;
    },
  };
}

/** Kills every process started here (and by weft.ts) and removes the temp dirs. For afterAll. */
export async function meshCleanup(): Promise<void> {
  const procs = [...live];
  for (const p of procs) killGroup(p, "SIGKILL");
  await Promise.all(procs.map(exitOf));
  await cleanup();
}

// ---------------------------------------------------------------- apps

export interface App extends Spawned {
  port: number;
}

/**
 * Starts `e2e/apps/<script>` with PORT (default 0: any) and `env`, and
 * waits for its "listening PORT" line.
 */
export async function startApp(
  script: string,
  opts: { port?: number; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<App> {
  const s = await spawnUntil([join(APPS_DIR, script)], {
    ready: /listening (\d+)/,
    what: `app ${script}`,
    env: { ...opts.env, PORT: String(opts.port ?? 0) },
    ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
  });
  return { ...s, port: Number(s.ready[1]) };
}

// ---------------------------------------------------------------- sidecars

export type ProxyProtocol = "tcp" | "http" | "http2" | "grpc";

export interface ProxyOptions {
  service: string;
  appPort: number;
  /** The control plane's host:port. */
  server: string;
  protocol: ProxyProtocol;
  /** Default: TCP connect. */
  health?: { http: string } | { tcp: true } | { grpc: true };
  /** Default 500ms, so new instances pass their check quickly. */
  healthInterval?: string;
  /** Upstream service -> local loopback port. */
  upstreams?: Record<string, number>;
  meta?: Record<string, string>;
  token?: string;
  drainTimeout?: string;
  /** More flags, as given. */
  args?: string[];
  /** Environment added to the clean one (WEFT_* settings such as WEFT_MAX_CONNECTIONS). */
  env?: Record<string, string>;
  timeoutMs?: number;
}

export interface SidecarProc extends Spawned {
  service: string;
  instanceId: string;
  inboundPort: number;
  adminPort: number;
}

/** Runs `weft proxy` and waits for its "weft proxy ready" line. */
export async function startProxy(o: ProxyOptions): Promise<SidecarProc> {
  const args = [
    WEFT_BIN,
    "proxy",
    "--service",
    o.service,
    "--app-port",
    String(o.appPort),
    "--protocol",
    o.protocol,
    "--inbound",
    "127.0.0.1:0",
    "--admin",
    "127.0.0.1:0",
    "--health-interval",
    o.healthInterval ?? "500ms",
    "--server",
    o.server,
  ];
  const h = o.health ?? { tcp: true };
  if ("http" in h) args.push("--health-http", h.http);
  else if ("grpc" in h) args.push("--health-grpc");
  else args.push("--health-tcp");
  for (const [svc, port] of Object.entries(o.upstreams ?? {})) args.push("--upstream", `${svc}=${port}`);
  for (const [k, v] of Object.entries(o.meta ?? {})) args.push("--meta", `${k}=${v}`);
  if (o.token) args.push("--token", o.token);
  if (o.drainTimeout) args.push("--drain-timeout", o.drainTimeout);
  args.push(...(o.args ?? []));
  const s = await spawnUntil(args, {
    ready: /weft proxy ready service=(\S+) instance=(\S+) inbound=(\d+) admin=(\d+)/,
    what: `weft proxy --service ${o.service}`,
    timeoutMs: o.timeoutMs ?? 30_000,
    ...(o.env ? { env: o.env } : {}),
  });
  return {
    ...s,
    service: o.service,
    instanceId: s.ready[2] as string,
    inboundPort: Number(s.ready[3]),
    adminPort: Number(s.ready[4]),
  };
}

// ---------------------------------------------------------------- control plane

export interface ControlPlane extends Spawned {
  url: string;
  addr: string;
  port: number;
  token: string | undefined;
  dataDir: string;
}

/**
 * `weft server` on `port` (default 0: any) and `dataDir` (default: a fresh
 * temp dir), so a test can kill it and start it again at the same address
 * with the same state. Waits for the bootstrap token too when `expectToken`
 * (default: true unless `dataDir` was given).
 */
export async function startControlPlane(
  o: { port?: number; dataDir?: string; store?: "memory"; dev?: boolean; expectToken?: boolean } = {},
): Promise<ControlPlane> {
  const dataDir = o.dataDir ?? join(tempDir(), "data");
  const args = [WEFT_BIN, "server", "--listen", `127.0.0.1:${o.port ?? 0}`, "--data-dir", dataDir];
  if (o.store) args.push("--store", o.store);
  if (o.dev) args.push("--dev");
  const expectToken = o.expectToken ?? o.dataDir === undefined;
  const s = await spawnUntil(args, {
    ready: expectToken
      ? /weft server listening on (\S+)[\s\S]*bootstrap management token: (\S+)/
      : /weft server listening on (\S+)/,
    what: "weft server",
  });
  const url = (s.ready[1] as string).replace(/\/+$/, "");
  const u = new URL(url);
  return { ...s, url, addr: u.host, port: Number(u.port), token: s.ready[2], dataDir };
}

/** `weft apply -f` of `resources` (one YAML file: a JSON document each, `---` between); throws unless it exits 0. */
export async function applyResources(
  addr: string,
  resources: readonly Record<string, unknown>[],
  token?: string,
): Promise<void> {
  const file = join(tempDir("weft-apply-"), "resources.yaml");
  writeFileSync(file, resources.map((r) => JSON.stringify(r)).join("\n---\n"));
  const args = ["apply", "-f", file, "--addr", addr];
  if (token) args.push("--token", token);
  const r = await runWeft(args);
  if (r.code !== 0) throw new Error(`weft apply failed (${r.code}): ${r.stderr}${r.stdout}`);
}

// ---------------------------------------------------------------- polling and admin

/**
 * Calls `fn` every `intervalMs` until it returns a truthy value (which is
 * returned) without throwing; throws with the last error or value after
 * `timeoutMs`.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  timeoutMs: number,
  opts: { intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `${opts.what ?? "condition"} not met within ${timeoutMs} ms; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`,
      );
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}

/** GET an admin path of a sidecar; resolves to the parsed JSON body (throws on a non-200). */
// biome-ignore lint/suspicious/noExplicitAny: test code reads arbitrary JSON fields
export async function adminJson(adminPort: number, path: string): Promise<any> {
  const r = await http(`http://127.0.0.1:${adminPort}`, path, { timeoutMs: 5_000 });
  if (r.status !== 200) throw new Error(`admin ${path}: ${r.status} ${r.text}`);
  return r.body;
}

/** Waits until the sidecar's snapshot has exactly `n` endpoints for `cluster` (default: the service name). */
export async function waitEndpoints(
  adminPort: number,
  cluster: string,
  n: number,
  timeoutMs = 20_000,
): Promise<void> {
  let seen = -1;
  await waitFor(
    async () => {
      const c = await adminJson(adminPort, "/config");
      seen = c.snapshot?.clusters?.[cluster]?.endpoints?.length ?? -1;
      return seen === n;
    },
    timeoutMs,
    { what: `${n} endpoints for ${cluster} in the sidecar's snapshot`, intervalMs: 100 },
  ).catch((e: Error) => {
    throw new Error(`${e.message} (last seen ${seen})`);
  });
}

/** The sum of a Prometheus counter's samples whose labels include all of `labels`. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const ok = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (ok) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

// ---------------------------------------------------------------- payloads

/** The pattern of e2e/apps/pattern.mjs: 64 KiB chunks of a fixed xorshift block, each with its index in its first 8 bytes. */
export const PATTERN_CHUNK = 64 * 1024;

const patternBase = (() => {
  const b = Buffer.alloc(PATTERN_CHUNK);
  let x = 0x9e3779b9;
  for (let i = 0; i < PATTERN_CHUNK; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
})();

export function patternChunk(i: number, len = PATTERN_CHUNK): Buffer {
  const c = Buffer.from(patternBase.subarray(0, len));
  const head = Buffer.alloc(8);
  head.writeBigUInt64BE(BigInt(i));
  head.copy(c, 0, 0, Math.min(8, len));
  return c;
}

/** sha256 (hex) of the first `bytes` bytes of the pattern, computed without holding them. */
export function patternSha256(bytes: number): string {
  const h = createHash("sha256");
  for (let i = 0; i * PATTERN_CHUNK < bytes; i++) {
    h.update(patternChunk(i, Math.min(PATTERN_CHUNK, bytes - i * PATTERN_CHUNK)));
  }
  return h.digest("hex");
}

export function sha256(b: Buffer | string): string {
  return createHash("sha256").update(b).digest("hex");
}

/** One meshed HTTP replica: an app (a script of e2e/apps) with its sidecar. */
export interface ReplicaSpec {
  service: string;
  /** Name of the replica (the app's REPLICA env). */
  replica: string;
  script: string;
  env?: Record<string, string>;
  meta?: Record<string, string>;
}

export interface ClientMesh {
  /** The `web` client sidecar, with one upstream per service of the replicas. */
  web: SidecarProc;
  /** Apps by replica name. */
  apps: Map<string, App>;
  sidecars: Map<string, SidecarProc>;
}

/**
 * Starts HTTP replicas, each with its sidecar (health on /healthz), and a
 * `web` sidecar (for an http-app.mjs) whose upstreams are `local`
 * (service -> loopback port); resolves once `web` sees every replica.
 */
export async function startClientMesh(
  server: string,
  replicas: ReplicaSpec[],
  local: Record<string, number>,
): Promise<ClientMesh> {
  const apps = new Map<string, App>();
  const sidecars = new Map<string, SidecarProc>();
  const webApp = await startApp("http-app.mjs", { env: { NAME: "web", REPLICA: "w" } });
  const [web] = await Promise.all([
    startProxy({
      service: "web",
      appPort: webApp.port,
      protocol: "http",
      health: { http: "/healthz" },
      upstreams: local,
      server,
    }),
    ...replicas.map(async (r) => {
      const app = await startApp(r.script, { env: { NAME: r.service, REPLICA: r.replica, ...r.env } });
      apps.set(r.replica, app);
      const sidecar = await startProxy({
        service: r.service,
        appPort: app.port,
        protocol: "http",
        health: { http: "/healthz" },
        ...(r.meta ? { meta: r.meta } : {}),
        server,
      });
      sidecars.set(r.replica, sidecar);
      return sidecar;
    }),
  ]);
  const perService = new Map<string, number>();
  for (const r of replicas) perService.set(r.service, (perService.get(r.service) ?? 0) + 1);
  for (const [service, n] of perService) await waitEndpoints(web.adminPort, service, n);
  return { web, apps, sidecars };
}

/** An Intention letting `source` call `service`. */
export function allowFrom(service: string, source = "web"): Record<string, unknown> {
  return { kind: "Intention", name: service, sources: [{ name: source, action: "allow" }] };
}

// ---------------------------------------------------------------- routes

/**
 * `weft apply` of a Route for `service` (plus `extra` resources), then waits
 * until the sidecar at `adminPort` has it: its listener for `service` carries
 * routes with the same names in the same order (so name every route), and
 * every cluster they forward or mirror to has an endpoint.
 */
export async function applyRoutes(
  addr: string,
  adminPort: number,
  service: string,
  routes: readonly Record<string, unknown>[],
  extra: readonly Record<string, unknown>[] = [],
): Promise<void> {
  await applyResources(addr, [...extra, { kind: "Route", name: service, routes }]);
  const want = JSON.stringify(routes.map((r) => r.name));
  await waitFor(
    async () => {
      const s = (await adminJson(adminPort, "/config")).snapshot;
      // biome-ignore lint/suspicious/noExplicitAny: the snapshot as JSON
      const listener = s?.upstreams?.find((u: any) => u.service === service);
      // biome-ignore lint/suspicious/noExplicitAny: the snapshot as JSON
      const have: any[] = listener?.routes ?? [];
      if (JSON.stringify(have.map((r) => r.name)) !== want) return false;
      const clusters = have.flatMap((r) => [r.forward?.cluster, r.forward?.mirror?.cluster]);
      return clusters.every((c) => c === undefined || (s.clusters?.[c]?.endpoints?.length ?? 0) > 0);
    },
    15_000,
    { what: `Route ${service} ${want} in the sidecar's snapshot, with endpoints`, intervalMs: 50 },
  );
}

/** Runs `fn(i)` for i in 0..n-1, `concurrency` at a time; results in order of i. */
export async function concurrently<T>(
  n: number,
  fn: (i: number) => Promise<T>,
  concurrency = 8,
): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

/** What an http-app.mjs saw since its last reset (GET /_log). */
export interface AppLog {
  /** Requests other than /healthz and /_*. */
  seen: number;
  /** Of those, with a Host ending "-shadow" (before any port). */
  shadow: number;
  recent: { method: string; url: string; host: string; body: string }[];
}

export async function appLog(app: App): Promise<AppLog> {
  return (await http(`http://127.0.0.1:${app.port}`, "/_log")).body as AppLog;
}

export async function resetAppLog(app: App): Promise<void> {
  await http(`http://127.0.0.1:${app.port}`, "/_reset", { method: "POST" });
}

/** A sidecar's Prometheus text (GET /metrics on its admin port). */
export async function proxyMetrics(adminPort: number): Promise<string> {
  return (await http(`http://127.0.0.1:${adminPort}`, "/metrics", { timeoutMs: 5_000 })).text;
}

/**
 * `http()` over `agent` (keep-alive, so a loop of requests does not pay a
 * connection each): one request to 127.0.0.1:`port`. Rejects on a
 * connection error or after `timeoutMs` (default 15 s).
 */
export function httpOn(
  agent: Agent,
  port: number,
  path: string,
  opts: HttpOptions = {},
): Promise<HttpResult> {
  const payload =
    opts.body === undefined
      ? undefined
      : Buffer.isBuffer(opts.body)
        ? opts.body
        : Buffer.from(typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body));
  const headers: Record<string, string> = { accept: "application/json", ...opts.headers };
  if (payload) {
    headers["content-type"] = opts.contentType ?? "application/json";
    headers["content-length"] = String(payload.length);
  }
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: "127.0.0.1",
      port,
      path,
      method: opts.method ?? (payload ? "POST" : "GET"),
      headers,
      agent,
    });
    req.setTimeout(opts.timeoutMs ?? 15_000, () =>
      req.destroy(
        new Error(`${opts.method ?? "GET"} ${path}: no answer within ${opts.timeoutMs ?? 15_000} ms`),
      ),
    );
    req.on("error", reject);
    req.on("response", (res) => {
      const receivedAt = Date.now();
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(parts).toString();
        let body: unknown;
        try {
          body = text.length > 0 ? JSON.parse(text) : undefined;
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body, receivedAt });
      });
    });
    req.end(payload);
  });
}
