/**
 * The e2e/apps/xds-client.mjs process (a real @grpc/grpc-js-xds client):
 * one JSON command line in, one JSON result line out. Processes started
 * here are killed by `stopXdsClients()` (call it in afterAll).
 * (The same driver as in e2e/xds-proxyless.test.ts, shared for new tests.)
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { APPS_DIR } from "./mesh.js";
import { cleanEnv, killGroup, tempDir } from "./weft.js";

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

  calls(
    n: number,
    o: { metadata?: Record<string, string>; deadlineMs?: number; concurrency?: number } = {},
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

export const batchTotal = (b: Batch): number => Object.values(b.counts).reduce((s, n) => s + n, 0);
