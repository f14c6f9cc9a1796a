/**
 * A real single-member etcd for tests (store, leader election, e2e): started
 * from the `etcd` binary (Debian's etcd-server) on loopback ports with a
 * temporary data dir, waited on until /health answers, stopped and removed
 * by `stop()`. Not used at run time.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

export interface EtcdTestServer {
  /** Client URL: http://127.0.0.1:<port>. */
  readonly url: string;
  /** The host:port form for `etcd://` specs. */
  readonly hostPort: string;
  readonly proc: ChildProcess;
  /** SIGSTOP / SIGCONT: an etcd that hangs without closing connections. */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

/** The etcd binary on PATH (or /usr/bin/etcd), undefined when not installed. */
export function etcdBinary(): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/bin", "/usr/local/bin"];
  for (const d of dirs) {
    if (d === "") continue;
    try {
      accessSync(join(d, "etcd"), constants.X_OK);
      return join(d, "etcd");
    } catch {
      // next
    }
  }
  return undefined;
}

async function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** A free port below the usual ephemeral range (see @weft/testkit's freePort for why). */
async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await bindable(port)) return port;
  }
}

export interface EtcdTestTls {
  /** PEM files: the server's certificate and key, and the CA that clients' certificates must chain to. */
  certFile: string;
  keyFile: string;
  caFile: string;
  /** A client certificate and key, for the health check (etcd requires one: --client-cert-auth). */
  clientCertFile: string;
  clientKeyFile: string;
}

/** GET /health over https with a client certificate. */
function httpsHealth(url: string, tls: EtcdTestTls): Promise<{ health?: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${url}/health`,
      {
        ca: readFileSync(tls.caFile),
        cert: readFileSync(tls.clientCertFile),
        key: readFileSync(tls.clientKeyFile),
        timeout: 1_000,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
        });
        res.on("end", () => {
          try {
            resolve(JSON.parse(body) as { health?: string });
          } catch (e) {
            reject(e);
          }
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

export async function startEtcd(
  opts: { startTimeoutMs?: number; tls?: EtcdTestTls } = {},
): Promise<EtcdTestServer> {
  const bin = etcdBinary();
  if (!bin) throw new Error("etcd binary not found (install etcd-server)");
  const base = (() => {
    try {
      accessSync("/dev/shm", constants.W_OK);
      return "/dev/shm"; // tmpfs: etcd fsyncs every write; tests do not need that durability
    } catch {
      return tmpdir();
    }
  })();
  const dataDir = mkdtempSync(join(base, "weft-etcd-"));
  const client = await freePort();
  const peer = await freePort();
  const name = `weft-test-${process.pid}-${client}`;
  const url = `${opts.tls ? "https" : "http"}://127.0.0.1:${client}`;
  const tlsArgs = opts.tls
    ? [
        `--cert-file=${opts.tls.certFile}`,
        `--key-file=${opts.tls.keyFile}`,
        `--trusted-ca-file=${opts.tls.caFile}`,
        "--client-cert-auth",
      ]
    : [];
  const peerUrl = `http://127.0.0.1:${peer}`;
  const proc = spawn(
    bin,
    [
      `--name=${name}`,
      `--data-dir=${dataDir}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=${name}=${peerUrl}`,
      "--initial-cluster-state=new",
      "--logger=zap",
      "--log-level=error",
      ...tlsArgs,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  proc.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    proc.once("exit", () => {
      exited = true;
      resolve();
    }),
  );
  const stop = async () => {
    if (!exited) {
      proc.kill("SIGCONT");
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 3_000);
      await exit;
      clearTimeout(t);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + (opts.startTimeoutMs ?? 20_000);
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`etcd exited during start: ${stderr}`);
    }
    try {
      const body = opts.tls
        ? await httpsHealth(url, opts.tls)
        : ((await (await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) })).json()) as {
            health?: string;
          });
      if (body.health === "true") break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`etcd did not become healthy: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    hostPort: `127.0.0.1:${client}`,
    proc,
    pause: () => {
      proc.kill("SIGSTOP");
      // The signal is delivered asynchronously: return only once the kernel shows the process
      // stopped ("T"), or a request sent right after could still be served (seen on a loaded CI).
      waitStopped(proc.pid);
    },
    resume: () => proc.kill("SIGCONT"),
    stop,
  };
}

/** Blocks (at most ~2 s, 1 ms steps) until /proc/PID/stat shows the process stopped. Linux only; a no-op elsewhere. */
function waitStopped(pid: number | undefined): void {
  if (pid === undefined) return;
  const tick = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 2_000; i++) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      return;
    }
    // Field 3, after the parenthesised command name (which may hold spaces).
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state === "T" || state === "t") return;
    Atomics.wait(tick, 0, 0, 1);
  }
}
