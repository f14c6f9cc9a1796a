/**
 * Several "hosts" on one machine for multi-host tests: each host is a Linux
 * network namespace with one veth pair to a bridge in the root namespace
 * (10.213.N.0/24: the bridge is .1, host i is .(10+i)). Processes run in a
 * host with `ip netns exec`; `cut(host)` takes the host's link down (its
 * processes live on, unreachable, as behind a failed switch port) and
 * `restore(host)` brings it back. `forward()` exposes a root-namespace
 * loopback port (etcd) on the bridge address, so every host reaches it.
 *
 * `startEtcdCluster()` runs one etcd member per host (a real three-member
 * cluster whose peers talk over the bridge, so cutting a host also cuts
 * its member off from the quorum).
 *
 * Needs root and iproute2 (`netnsUnavailable()` says why not). `destroy()`
 * kills every process started here and removes the namespaces, veths and
 * bridge; it also runs on process exit, so a failed or interrupted test does
 * not leave namespaces behind. Names carry the test's pid: parallel runs and
 * leftovers of a crashed run never collide.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanEnv, exited, killGroup, tempDir } from "./weft.js";

export interface NetnsHost {
  readonly index: number;
  /** The namespace name. */
  readonly ns: string;
  /** The host's address on the bridge. */
  readonly ip: string;
  /** The root-namespace end of its veth pair (taken down by `cut`). */
  readonly hostVeth: string;
}

export interface NsProc {
  readonly host: NetnsHost;
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly ready: RegExpExecArray;
  stdout(): string;
  stderr(): string;
  /** SIGKILL to the process group; resolves once it is gone. */
  kill9(): Promise<void>;
}

function ip(...args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Why multi-host tests cannot run here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== "linux") return `not Linux (${process.platform})`;
  if (typeof process.getuid === "function" && process.getuid() !== 0)
    return "not root (ip netns needs CAP_SYS_ADMIN)";
  const probe = `weft-probe-${process.pid}`;
  try {
    ip("netns", "add", probe);
  } catch (e) {
    return `ip netns is unavailable: ${(e as { stderr?: string }).stderr?.trim() || (e as Error).message}`;
  }
  try {
    ip("netns", "del", probe);
  } catch {}
  return undefined;
}

const MAX_KEPT = 1024 * 1024;

export class NetnsLab {
  readonly hosts: NetnsHost[] = [];
  readonly bridge: string;
  readonly bridgeIp: string;
  private readonly subnet: string;
  private readonly procs = new Set<ChildProcess>();
  private readonly forwards: Server[] = [];
  private readonly dirs: string[] = [];
  private readonly onExit = () => this.destroySync();
  private destroyed = false;

  private constructor(id: number) {
    this.bridge = `wbr${id}`;
    this.subnet = `10.213.${id % 250}`;
    this.bridgeIp = `${this.subnet}.1`;
  }

  /** Builds `n` hosts on a fresh bridge. Cleans up what it made if a step fails. */
  static create(n: number): NetnsLab {
    const lab = new NetnsLab(process.pid % 100_000);
    process.once("exit", lab.onExit);
    try {
      ip("link", "add", lab.bridge, "type", "bridge");
      ip("addr", "add", `${lab.bridgeIp}/24`, "dev", lab.bridge);
      ip("link", "set", lab.bridge, "up");
      for (let i = 1; i <= n; i++) {
        const host: NetnsHost = {
          index: i,
          ns: `weft-${process.pid}-h${i}`,
          ip: `${lab.subnet}.${10 + i}`,
          hostVeth: `wv${process.pid % 100_000}h${i}`,
        };
        const inner = `wi${process.pid % 100_000}h${i}`;
        ip("netns", "add", host.ns);
        lab.hosts.push(host);
        ip("link", "add", host.hostVeth, "type", "veth", "peer", "name", inner);
        ip("link", "set", inner, "netns", host.ns);
        ip("link", "set", host.hostVeth, "master", lab.bridge);
        ip("link", "set", host.hostVeth, "up");
        ip("netns", "exec", host.ns, "ip", "link", "set", "lo", "up");
        ip("netns", "exec", host.ns, "ip", "link", "set", inner, "name", "eth0");
        ip("netns", "exec", host.ns, "ip", "addr", "add", `${host.ip}/24`, "dev", "eth0");
        ip("netns", "exec", host.ns, "ip", "link", "set", "eth0", "up");
      }
    } catch (e) {
      lab.destroySync();
      throw e;
    }
    return lab;
  }

  /** Takes the host's link down: nothing in or out, its processes keep running. */
  cut(host: NetnsHost): void {
    ip("link", "set", host.hostVeth, "down");
  }

  restore(host: NetnsHost): void {
    ip("link", "set", host.hostVeth, "up");
  }

  /** Relays `bridgeIp:<returned port>` to `127.0.0.1:targetPort` in the root namespace. */
  async forward(targetPort: number): Promise<number> {
    const server = createServer((down) => {
      const up = new Socket();
      up.connect(targetPort, "127.0.0.1");
      down.pipe(up);
      up.pipe(down);
      const end = () => {
        down.destroy();
        up.destroy();
      };
      down.on("error", end);
      up.on("error", end);
      down.on("close", end);
      up.on("close", end);
    });
    this.forwards.push(server);
    await new Promise<void>((r) => server.listen(0, this.bridgeIp, r));
    return (server.address() as { port: number }).port;
  }

  /**
   * Runs `node argv...` in `host` (its own process group, cwd a temp dir,
   * a clean environment plus `env`) and waits for `ready` on stdout.
   */
  async spawn(
    host: NetnsHost,
    argv: readonly string[],
    o: { ready: RegExp; what: string; env?: Record<string, string>; timeoutMs?: number },
  ): Promise<NsProc> {
    const proc = spawn("ip", ["netns", "exec", host.ns, process.execPath, ...argv], {
      cwd: tempDir("weft-netns-cwd-"),
      env: cleanEnv(o.env),
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    this.procs.add(proc);
    proc.once("exit", () => this.procs.delete(proc));
    let out = "";
    let err = "";
    proc.stdout?.setEncoding("utf8");
    proc.stderr?.setEncoding("utf8");
    proc.stderr?.on("data", (c: string) => {
      err += c;
      if (err.length > 2 * MAX_KEPT) err = err.slice(-MAX_KEPT);
    });
    const what = `${o.what} on ${host.ns}`;
    const timeoutMs = o.timeoutMs ?? 30_000;
    const ready = await new Promise<RegExpExecArray>((resolve, reject) => {
      const timer = setTimeout(() => {
        killGroup(proc, "SIGKILL");
        reject(
          new Error(
            `${what}: not ready within ${timeoutMs} ms\nstdout:\n${out.slice(-4000)}\nstderr:\n${err.slice(-8000)}`,
          ),
        );
      }, timeoutMs);
      const onExit = (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        reject(
          new Error(
            `${what} exited (${code ?? signal}) before it was ready\nstdout:\n${out}\nstderr:\n${err.slice(-8000)}`,
          ),
        );
      };
      proc.once("exit", onExit);
      proc.stdout?.on("data", (c: string) => {
        out += c;
        if (out.length > 2 * MAX_KEPT) out = out.slice(-MAX_KEPT);
        const m = o.ready.exec(out);
        if (m) {
          clearTimeout(timer);
          proc.off("exit", onExit);
          resolve(m);
        }
      });
    });
    return {
      host,
      proc,
      pid: proc.pid as number,
      ready,
      stdout: () => out,
      stderr: () => err,
      kill9: async () => {
        killGroup(proc, "SIGKILL");
        await exited(proc);
      },
    };
  }

  /**
   * One etcd member per host (client port 2379, peer port 2380 on the host's
   * address), waited on until every member answers /health. Returns the
   * client endpoints, host 1 first.
   */
  async startEtcdCluster(etcdBin: string, timeoutMs = 30_000): Promise<string[]> {
    const base = (() => {
      try {
        accessSync("/dev/shm", constants.W_OK);
        return "/dev/shm"; // tmpfs: etcd fsyncs every write; tests do not need that durability
      } catch {
        return tmpdir();
      }
    })();
    const token = `weft-netns-${process.pid}`;
    const initial = this.hosts.map((h) => `h${h.index}=http://${h.ip}:2380`).join(",");
    for (const h of this.hosts) {
      const dataDir = mkdtempSync(join(base, `weft-netns-etcd-h${h.index}-`));
      this.dirs.push(dataDir);
      const proc = spawn(
        "ip",
        [
          "netns",
          "exec",
          h.ns,
          etcdBin,
          `--name=h${h.index}`,
          `--data-dir=${dataDir}`,
          `--listen-client-urls=http://${h.ip}:2379`,
          `--advertise-client-urls=http://${h.ip}:2379`,
          `--listen-peer-urls=http://${h.ip}:2380`,
          `--initial-advertise-peer-urls=http://${h.ip}:2380`,
          `--initial-cluster=${initial}`,
          `--initial-cluster-token=${token}`,
          "--initial-cluster-state=new",
          "--logger=zap",
          "--log-level=error",
        ],
        { stdio: ["ignore", "ignore", "pipe"], detached: true },
      );
      this.procs.add(proc);
      proc.once("exit", () => this.procs.delete(proc));
      proc.stderr?.resume();
    }
    const endpoints = this.hosts.map((h) => `${h.ip}:2379`);
    const deadline = Date.now() + timeoutMs;
    for (const ep of endpoints) {
      for (;;) {
        const ok = await fetch(`http://${ep}/health`, { signal: AbortSignal.timeout(1_000) })
          .then(async (r) => r.ok && ((await r.json()) as { health?: string }).health === "true")
          .catch(() => false);
        if (ok) break;
        if (Date.now() > deadline)
          throw new Error(`etcd member at ${ep}: not healthy within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return endpoints;
  }

  /** Kills every process started here, then removes hosts, veths and the bridge. */
  async destroy(): Promise<void> {
    const procs = [...this.procs];
    for (const p of procs) killGroup(p, "SIGKILL");
    await Promise.all(procs.map((p) => exited(p)));
    for (const f of this.forwards) f.close();
    this.destroySync();
  }

  private destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    process.off("exit", this.onExit);
    for (const p of this.procs) killGroup(p, "SIGKILL");
    for (const h of this.hosts) {
      try {
        ip("link", "del", h.hostVeth);
      } catch {}
      try {
        ip("netns", "del", h.ns);
      } catch {}
    }
    try {
      ip("link", "del", this.bridge);
    } catch {}
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}

/**
 * Steady HTTP traffic from inside a host: `concurrency` loops GET
 * http://127.0.0.1:PORT/PATH (a sidecar's upstream port), each request with
 * a timeout; one line per answer on stdout: "R <epoch ms> <status|ERR> <replica>".
 */
export const LOAD_SCRIPT = `
const [port, path, concurrency, timeoutMs, gapMs] = process.argv.slice(1).map((v, i) => (i === 1 ? v : Number(v)));
let stop = false;
process.on("SIGTERM", () => { stop = true; });
console.log("load started");
async function loop() {
  while (!stop) {
    const t = Date.now();
    try {
      const r = await fetch("http://127.0.0.1:" + port + path, { signal: AbortSignal.timeout(timeoutMs) });
      const body = await r.text();
      let replica = "-";
      try { replica = JSON.parse(body).replica ?? "-"; } catch {}
      console.log("R " + t + " " + r.status + " " + replica);
    } catch (e) {
      console.log("R " + t + " ERR " + String(e && e.cause ? e.cause.code || e.cause.message : e).replace(/\\s+/g, "_"));
    }
    await new Promise((res) => setTimeout(res, gapMs));
  }
}
await Promise.all(Array.from({ length: concurrency }, loop));
`;

export interface LoadSample {
  at: number;
  status: string;
  replica: string;
}

/** Parses the load generator's output. */
export function loadSamples(stdout: string): LoadSample[] {
  const out: LoadSample[] = [];
  for (const line of stdout.split("\n")) {
    const m = /^R (\d+) (\S+) (\S+)$/.exec(line);
    if (m) out.push({ at: Number(m[1]), status: m[2] as string, replica: m[3] as string });
  }
  return out;
}
