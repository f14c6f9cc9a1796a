/**
 * Golden metrics from proxyless gRPC clients, end to end: `weft server
 * --xds-listen`, two echo servers (e2e/apps/grpc-app.mjs) registered
 * directly in the catalog (no sidecar, no xDS stream of their own), `weft
 * bootstrap grpc` for the client, and the real @grpc/grpc-js-xds client
 * (e2e/apps/xds-client.mjs) on `xds:///echo`. The control plane's Clusters
 * name `lrs_server: self`, so the client opens LRS on the xDS port and
 * reports its calls every 2 s; /v1/metrics/edges and `weft stat echo
 * --json` must show exactly the calls made (Unary succeeds, Fail answers
 * NOT_FOUND), with rate and success rate and no latency percentiles.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { type EdgeGolden, WeftClient } from "@weft/api/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  APPS_DIR,
  type App,
  meshCleanup,
  type Spawned,
  spawnUntil,
  startApp,
  waitFor,
} from "./helpers/mesh.js";
import { cleanEnv, killGroup, runWeft, tempDir, WEFT_BIN } from "./helpers/weft.js";

interface Batch {
  counts: Record<string, number>;
  errors: Record<string, number>;
  details: string[];
}

/** The xds-client.mjs process: one JSON command line in, one JSON result line out. */
class XdsClient {
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

  static async start(bootstrap: string): Promise<XdsClient> {
    const proc = spawn(process.execPath, [join(APPS_DIR, "xds-client.mjs")], {
      cwd: tempDir("weft-cwd-"),
      env: cleanEnv({ GRPC_XDS_BOOTSTRAP: bootstrap, TARGET: "echo" }),
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    procs.push(proc);
    proc.stderr!.resume();
    const c = new XdsClient(proc);
    await new Promise<void>((resolve, reject) => {
      proc.stdout!.once("data", () => resolve());
      proc.once("exit", (code) => reject(new Error(`xds-client exited ${code}`)));
    });
    return c;
  }

  calls(n: number, o: { method?: string; concurrency?: number } = {}): Promise<Batch> {
    const id = ++this.seq;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.proc.stdin!.write(`${JSON.stringify({ id, n, ...o })}\n`);
    });
  }
}

const procs: ChildProcess[] = [];
const apps: App[] = [];
let cp: Spawned;
let api: WeftClient;
let cpAddr = "";
let mgmtToken = "";
let client: XdsClient;

const ok = (b: Batch) => Object.values(b.counts).reduce((s, n) => s + n, 0);
const failed = (b: Batch) => Object.values(b.errors).reduce((s, n) => s + n, 0);

async function edge(): Promise<EdgeGolden | undefined> {
  return (await api.metricsEdges()).edges.find((e) => e.source === "client" && e.destination === "echo");
}

beforeAll(async () => {
  cp = await spawnUntil(
    [WEFT_BIN, "server", "--listen", "127.0.0.1:0", "--store", "memory", "--xds-listen", "127.0.0.1:0"],
    {
      ready:
        /weft server listening on (\S+)\nweft xds listening on port (\d+)\nbootstrap management token: (\S+)/,
      what: "weft server --xds-listen",
    },
  );
  cpAddr = new URL(cp.ready[1] as string).host;
  mgmtToken = cp.ready[3] as string;
  const xdsPort = Number(cp.ready[2]);
  api = new WeftClient({ addr: cpAddr, token: mgmtToken });
  for (const replica of ["a", "b"]) {
    const app = await startApp("grpc-app.mjs", { env: { REPLICA: replica } });
    apps.push(app);
    await api.registerInstance({
      id: `echo-${replica}`,
      service: "echo",
      address: "127.0.0.1",
      port: app.port,
      tags: ["proxyless"],
      proxy: { protocol: "grpc" },
    });
  }
  const tok = await api.createToken({
    policies: ["service:client:write"],
    description: "xds metrics client",
  });
  const bootstrapFile = join(tempDir(), "client-xds.json");
  const r = await runWeft([
    "bootstrap",
    "grpc",
    "--service",
    "client",
    "--id",
    "client-1",
    "--port",
    "50051",
    "--upstream",
    "echo",
    "--out",
    bootstrapFile,
    "--xds-server",
    `127.0.0.1:${xdsPort}`,
    "--addr",
    cpAddr,
    "--token",
    tok.secretId,
  ]);
  expect(r.code, r.stderr).toBe(0);
  client = await XdsClient.start(bootstrapFile);
}, 60_000);

afterAll(async () => {
  for (const p of procs) killGroup(p, "SIGKILL");
  await meshCleanup();
});

describe("golden metrics from proxyless gRPC clients (LRS)", () => {
  it("shows exactly the calls a grpc-js-xds client made on the client -> echo edge", async () => {
    // Until the client has its config, calls fail before any balancer pick and are not reported.
    await waitFor(async () => ok(await client.calls(1)) === 1, 20_000, {
      what: "a first call reaching echo",
    });
    // The warm-up calls (reported or still to be) are the baseline: wait until it stops moving
    // (over two report intervals), then everything after it is the test's.
    let baseline: EdgeGolden | undefined;
    await waitFor(
      async () => {
        const before = await edge();
        await new Promise((r) => setTimeout(r, 4_500));
        const after = await edge();
        baseline = after;
        return before !== undefined && after !== undefined && before.requests === after.requests;
      },
      30_000,
      { what: "the warm-up calls all reported" },
    );
    const base = baseline as EdgeGolden;
    expect(base.latencyMs).toEqual({ p50: null, p95: null, p99: null });

    const good = await client.calls(120);
    const bad = await client.calls(30, { method: "Fail" });
    const done = Date.now();
    expect(ok(good)).toBe(120);
    expect(bad.errors).toEqual({ 5: 30 });
    expect(Object.keys(good.counts).sort()).toEqual(["a", "b"]);
    const n = ok(good) + failed(bad);

    // One report period is 2 s: the next report carries every call above (allow a second one for scheduling).
    const seen = await waitFor(
      async () => {
        const e = await edge();
        return e !== undefined && e.requests >= base.requests + n ? e : undefined;
      },
      6_000,
      { what: `${n} more requests on client -> echo` },
    );
    console.log(
      `LRS: ${n} calls (${ok(good)} ok, ${failed(bad)} NOT_FOUND) on client -> echo in /v1/metrics/edges after ${Date.now() - done} ms: ${JSON.stringify(seen)}`,
    );
    expect(seen.requests).toBe(base.requests + n);
    expect(seen.success).toBe(base.success + ok(good));
    expect(seen.proxylessRequests).toBe(seen.requests);
    expect(seen.successRate).toBeCloseTo(seen.success / seen.requests, 9);
    expect(seen.rps).toBeGreaterThan(0);
    expect(seen.latencyMs).toEqual({ p50: null, p95: null, p99: null });

    // No report counts twice: two more intervals later the figures have not moved.
    await new Promise((r) => setTimeout(r, 4_500));
    expect((await edge())?.requests).toBe(seen.requests);

    const stat = await runWeft(["stat", "echo", "--json", "--addr", cpAddr, "--token", mgmtToken]);
    expect(stat.code, stat.stderr).toBe(0);
    const body = JSON.parse(stat.stdout);
    // echo has no sidecar: its own figures are its proxyless callers' reports.
    expect(body.service).toMatchObject({
      service: "echo",
      requests: seen.requests,
      success: seen.success,
      proxylessRequests: seen.requests,
      latencyMs: { p50: null, p95: null, p99: null },
    });
    expect(body.inbound).toEqual([expect.objectContaining({ source: "client", requests: seen.requests })]);
    const text = await runWeft(["stat", "echo", "--addr", cpAddr, "--token", mgmtToken]);
    expect(text.code, text.stderr).toBe(0);
    // Latency columns show "-", not 0.
    expect(text.stdout).toMatch(
      new RegExp(`\\nclient\\s+echo\\s+\\S+\\s+\\d+\\.\\d\\d%\\s+-\\s+-\\s+-\\s+${seen.requests}\\n`),
    );
  }, 90_000);
});
