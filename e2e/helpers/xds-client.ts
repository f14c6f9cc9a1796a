/**
 * Proxyless gRPC in the e2e tests (xds-proxyless, xds-server,
 * xds-metrics): a control plane with its xDS port, `weft bootstrap grpc`,
 * and the e2e/apps/xds-client.mjs process (a real @grpc/grpc-js-xds
 * client): one JSON command line in, one JSON result line out. Client
 * processes started here are killed by `stopXdsClients()`, the control
 * plane by `meshCleanup()` (call both in afterAll).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { WeftClient } from "@weft/api/client";
import { APPS_DIR, type Spawned, spawnUntil } from "./mesh.js";
import { cleanEnv, killGroup, runWeft, tempDir, WEFT_BIN } from "./weft.js";

/** `weft server --xds-listen` on 127.0.0.1 (memory store) and what the tests need of it. */
export interface XdsControlPlane {
  cp: Spawned;
  /** host:port of the HTTP API. */
  addr: string;
  xdsPort: number;
  /** The bootstrap management token. */
  token: string;
  /** A client with the management token. */
  api: WeftClient;
  /** All the control plane has printed so far (stdout, then stderr). */
  log(): string;
}

export async function startXdsControlPlane(): Promise<XdsControlPlane> {
  const cp = await spawnUntil(
    [WEFT_BIN, "server", "--listen", "127.0.0.1:0", "--store", "memory", "--xds-listen", "127.0.0.1:0"],
    {
      ready:
        /weft server listening on (\S+)\nweft xds listening on port (\d+)\nbootstrap management token: (\S+)/,
      what: "weft server --xds-listen",
    },
  );
  const addr = new URL(cp.ready[1] as string).host;
  const token = cp.ready[3] as string;
  return {
    cp,
    addr,
    xdsPort: Number(cp.ready[2]),
    token,
    api: new WeftClient({ addr, token }),
    log: () => cp.stdout() + cp.stderr(),
  };
}

export interface BootstrapOptions {
  service: string;
  /** The instance id, also the node id. */
  id: string;
  /** The registered port (an XdsServer binds it). */
  port: number;
  upstreams?: string[];
  /** `--cert-dir DIR/certs` beside the bootstrap file (mTLS). */
  certs?: boolean;
  /** More flags (e.g. `--no-xds-health`). */
  extra?: string[];
}

/**
 * `weft bootstrap grpc` into a fresh directory, with a token that may only
 * write `service` (as a sidecar's would); throws unless it exits 0.
 * Resolves to the bootstrap file (DIR/ID.json), its cert dir and stdout.
 */
export async function bootstrapGrpc(
  x: XdsControlPlane,
  o: BootstrapOptions,
): Promise<{ file: string; certDir: string; stdout: string }> {
  const tok = await x.api.createToken({ policies: [`service:${o.service}:write`] });
  const dir = tempDir();
  const file = join(dir, `${o.id}.json`);
  const certDir = join(dir, "certs");
  const r = await runWeft([
    ...["bootstrap", "grpc", "--service", o.service, "--id", o.id, "--port", String(o.port)],
    ...(o.upstreams ?? []).flatMap((u) => ["--upstream", u]),
    ...(o.certs ? ["--cert-dir", certDir] : []),
    ...["--out", file, "--xds-server", `127.0.0.1:${x.xdsPort}`],
    ...["--addr", x.addr, "--token", tok.secretId],
    ...(o.extra ?? []),
  ]);
  if (r.code !== 0) throw new Error(`weft bootstrap grpc exited ${r.code}: ${r.stderr}`);
  return { file, certDir, stdout: r.stdout };
}

export interface Batch {
  counts: Record<string, number>;
  errors: Record<string, number>;
  details: string[];
  /** The first few reply messages (the TLS apps answer with the caller's SPIFFE ID). */
  messages: string[];
}

const started: ChildProcess[] = [];

export class XdsClient {
  private buf = "";
  private seq = 0;
  private readonly waiting = new Map<number, (b: Batch) => void>();
  private constructor(readonly proc: ChildProcess) {
    proc.stdout!.setEncoding("utf8").on("data", (c: string) => {
      this.buf += c;
      for (let i = this.buf.indexOf("\n"); i >= 0; i = this.buf.indexOf("\n")) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        if (!line.startsWith("{")) continue;
        const r = JSON.parse(line) as Batch & { id: number };
        this.waiting.get(r.id)?.(r);
        this.waiting.delete(r.id);
      }
    });
  }

  /** `env`: TARGET (service), XDS_CREDS=1 (mTLS from the bootstrap), TARGET_ADDR (a plain host:port). */
  static async start(bootstrap: string, env: Record<string, string> = {}): Promise<XdsClient> {
    const proc = spawn(process.execPath, [join(APPS_DIR, "xds-client.mjs")], {
      cwd: tempDir("weft-cwd-"),
      env: cleanEnv({ GRPC_XDS_BOOTSTRAP: bootstrap, TARGET: "echo", ...env }),
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    started.push(proc);
    proc.stderr!.resume();
    const c = new XdsClient(proc);
    await new Promise<void>((resolve, reject) => {
      proc.stdout!.once("data", () => resolve());
      proc.once("exit", (code) => reject(new Error(`xds-client exited ${code}`)));
    });
    return c;
  }

  /** Options as xds-client.mjs reads them: `method` (default Unary), `concurrency` (default 8), `staggerMs` between workers. */
  calls(
    n: number,
    o: {
      metadata?: Record<string, string>;
      method?: string;
      deadlineMs?: number;
      concurrency?: number;
      staggerMs?: number;
    } = {},
  ): Promise<Batch> {
    const id = ++this.seq;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.proc.stdin!.write(`${JSON.stringify({ id, n, ...o })}\n`);
    });
  }

  stop(): void {
    killGroup(this.proc, "SIGKILL");
  }
}

export function stopXdsClients(): void {
  for (const p of started.splice(0)) killGroup(p, "SIGKILL");
}

/** Calls answered. */
export const batchTotal = (b: Batch): number => Object.values(b.counts).reduce((s, n) => s + n, 0);
/** Calls that failed, whatever the status. */
export const batchFailed = (b: Batch): number => Object.values(b.errors).reduce((s, n) => s + n, 0);
