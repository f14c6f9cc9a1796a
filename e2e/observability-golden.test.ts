/**
 * Golden metrics and live views over real sidecars: `web` calls `api` (an
 * app failing a seeded share of its requests with 503) and `slow` (an app
 * answering after 30 ms) through its sidecar. Each sidecar pushes per-edge
 * deltas to the control plane every 2 s; the control plane's figures must
 * agree with what the test sent: counts and successes exact (checked
 * against the app's own counters), latencies within the histogram's
 * resolution (the bucket of the true latency). Then the CLI's `weft stat`,
 * `weft top --once` and `weft tap` against the same mesh.
 */
import { GOLDEN_BUCKETS_MS, quantileFromBuckets, WeftClient } from "@weft/api/client";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import {
  type App,
  allowFrom,
  applyResources,
  meshCleanup,
  type SidecarProc,
  spawnUntil,
  startClientMesh,
  waitFor,
} from "./helpers/mesh.js";
import { runWeft, startWeftServer, WEFT_BIN, type WeftServer } from "./helpers/weft.js";

let cp: WeftServer;
let client: WeftClient;
let web: SidecarProc;
let apiSidecar: SidecarProc;
let slowSidecar: SidecarProc;
let apiApp: App;
let apiLocal: number;
let slowLocal: number;
/** What the test sent to api, by the status it got. */
const sent = { total: 0, ok: 0, failed: 0 };
const SLOW_N = 20;

beforeAll(async () => {
  cp = await startWeftServer({ store: "memory", dev: true });
  client = new WeftClient({ addr: cp.addr });
  apiLocal = await freePort();
  slowLocal = await freePort();
  await applyResources(cp.addr, [allowFrom("api"), allowFrom("slow")]);
  const mesh = await startClientMesh(
    cp.addr,
    [
      { service: "api", replica: "a", script: "flaky-app.mjs", env: { FAIL_PERCENT: "20", SEED: "7" } },
      { service: "slow", replica: "s", script: "http-app.mjs" },
    ],
    { api: apiLocal, slow: slowLocal },
  );
  web = mesh.web;
  apiSidecar = mesh.sidecars.get("a") as SidecarProc;
  apiApp = mesh.apps.get("a") as App;
  slowSidecar = mesh.sidecars.get("s") as SidecarProc;
}, 90_000);

afterAll(meshCleanup);

/** Per-bucket counts (GOLDEN_BUCKETS_MS + overflow) of the sidecar's duration histogram for `labels`. */
function sidecarBuckets(text: string, labels: Record<string, string>): number[] {
  const cumulative = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("weft_proxy_request_duration_seconds_bucket{")) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1] as string;
    cumulative.set(le, Number(line.slice(line.lastIndexOf(" ") + 1)));
  }
  const les = [...GOLDEN_BUCKETS_MS.map((ms) => String(ms / 1000)), "+Inf"];
  const counts: number[] = [];
  let prev = 0;
  for (const le of les) {
    const c = cumulative.get(le);
    if (c === undefined) throw new Error(`no bucket le="${le}" in the sidecar's histogram`);
    counts.push(c - prev);
    prev = c;
  }
  return counts;
}

async function send(port: number, path: string, n: number): Promise<number[]> {
  const statuses: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < n) {
        next++;
        const r = await http(`http://127.0.0.1:${port}`, path, { timeoutMs: 5_000 });
        statuses.push(r.status);
      }
    }),
  );
  return statuses;
}

describe("golden metrics in the control plane", () => {
  it("request and success counts per service and per edge are exact", async () => {
    const statuses = await send(apiLocal, "/work", 100);
    sent.total += statuses.length;
    sent.ok += statuses.filter((s) => s === 200).length;
    sent.failed += statuses.filter((s) => s === 503).length;
    expect(sent.ok + sent.failed).toBe(100);
    expect(sent.failed).toBeGreaterThan(0);
    // The app saw exactly what was sent (no retries) and failed what the test saw fail.
    const appStats = (await http(`http://127.0.0.1:${apiApp.port}`, "/stats")).body;
    expect(appStats).toMatchObject({ received: 100, failed: sent.failed });

    const api = await waitFor(
      async () => {
        const r = await client.metricsService("api");
        return r.service.requests === 100 && r.inbound[0]?.requests === 100 ? r : undefined;
      },
      15_000,
      { what: "100 api requests in the control plane's golden metrics", intervalMs: 200 },
    );
    expect(api.service).toMatchObject({ service: "api", requests: 100, success: sent.ok });
    expect(api.service.successRate).toBeCloseTo(sent.ok / 100, 9);
    expect(api.service.rps).toBeGreaterThan(0);
    expect(api.inbound).toHaveLength(1);
    expect(api.inbound[0]).toMatchObject({
      source: "web",
      destination: "api",
      requests: 100,
      success: sent.ok,
    });
    expect(api.outbound).toEqual([]);

    const services = await client.metricsServices();
    expect(services.services.map((s) => s.service)).toEqual(["api", "slow", "web"]);
    expect(services.services.find((s) => s.service === "web")).toMatchObject({ requests: 0 });
  });

  it("latency percentiles are those of the sidecar's own histogram, and no lower than the app's 30 ms allows", async () => {
    const statuses = await send(slowLocal, "/slow/30", SLOW_N);
    expect(statuses.every((s) => s === 200)).toBe(true);
    const slow = await waitFor(
      async () => {
        const r = await client.metricsService("slow");
        return r.service.requests === SLOW_N && r.inbound[0]?.requests === SLOW_N ? r : undefined;
      },
      15_000,
      { what: `${SLOW_N} slow requests in the golden metrics`, intervalMs: 200 },
    );
    // The slow sidecar's own Prometheus histogram holds the same requests in the same buckets: the
    // control plane's percentiles must be what those counts give (no timing bound is asserted).
    const text = (await http(`http://127.0.0.1:${slowSidecar.adminPort}`, "/metrics")).text;
    const own = sidecarBuckets(text, {
      direction: "inbound",
      source_service: "web",
      destination_service: "slow",
    });
    expect(own.reduce((a, b) => a + b, 0)).toBe(SLOW_N);
    const round = (v: number | null) => (v === null ? null : Math.round(v * 1000) / 1000);
    expect(slow.service.latencyMs).toEqual({
      p50: round(quantileFromBuckets(own, 0.5)),
      p95: round(quantileFromBuckets(own, 0.95)),
      p99: round(quantileFromBuckets(own, 0.99)),
    });
    for (const view of [slow.service, slow.inbound[0]]) {
      expect(view?.successRate).toBe(1);
      const { p50, p95, p99 } = view?.latencyMs ?? {};
      // Every request took at least the app's 30 ms: the bucket holding p50 starts at 25 ms or later.
      expect(p50).toBeGreaterThan(25);
      expect(p95).toBeGreaterThanOrEqual(p50 as number);
      expect(p99).toBeGreaterThanOrEqual(p95 as number);
    }
    const edges = (await client.metricsEdges()).edges;
    expect(edges.map((e) => [e.source, e.destination, e.requests])).toEqual([
      ["web", "api", 100],
      ["web", "slow", SLOW_N],
    ]);
  });
});

describe("CLI views", () => {
  it("weft stat and weft top --once show the same figures", async () => {
    const stat = await runWeft(["stat", "api", "--json", "--addr", cp.addr]);
    expect(stat.code).toBe(0);
    expect(JSON.parse(stat.stdout).service).toMatchObject({ requests: 100, success: sent.ok });
    const text = await runWeft(["stat", "api", "--addr", cp.addr]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/\napi\s+\S+\s+\d+\.\d\d%.*\s100\n/);
    expect(text.stdout).toMatch(/inbound \(callers of api\):\nSOURCE[^\n]*\nweb\s+api\s.*\s100\n/);
    const top = await runWeft(["top", "--once", "--addr", cp.addr]);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/^SERVICE\s+RPS/);
    expect(top.stdout).toMatch(/\napi\s.*\s100\n/);
    expect(top.stdout).toMatch(new RegExp(`\\nslow\\s+\\S+\\s+100\\.00%.*\\s${SLOW_N}\\n`));
    const edges = await runWeft(["top", "--edges", "--once", "--addr", cp.addr]);
    expect(edges.stdout).toMatch(/\nweb\s+api\s.*\s100\n/);
  });

  it("weft tap streams the requests passing a service's sidecars (inbound and outbound), without query strings", async () => {
    for (const [service, direction] of [
      ["api", "inbound"],
      ["web", "outbound"],
    ] as const) {
      const tap = runWeft(["tap", service, "--json", "--limit", "5", "--addr", cp.addr], {
        timeoutMs: 20_000,
      });
      let done = false;
      void tap.finally(() => {
        done = true;
      });
      // Traffic until the tap has its five records (it connects asynchronously).
      while (!done) {
        await http(`http://127.0.0.1:${apiLocal}`, "/item/7?secret=hunter2", { timeoutMs: 5_000 });
        await new Promise((r) => setTimeout(r, 50));
      }
      const r = await tap;
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`tapping 1 of 1 sidecars of ${service}`);
      const lines = r.stdout.trimEnd().split("\n");
      expect(lines).toHaveLength(5);
      for (const line of lines) {
        expect(line).not.toContain("hunter2");
        const rec = JSON.parse(line);
        expect(rec).toMatchObject({ direction, source: "web", destination: "api" });
        expect([200, 503]).toContain(rec.status);
        expect(rec.latencyMs).toBeGreaterThanOrEqual(0);
        expect(Number.isNaN(Date.parse(rec.time))).toBe(false);
        // Method and path are shown once the sidecar's request events carry them.
        if (rec.path !== undefined) expect(rec.path).toBe("/item/7");
        if (direction === "outbound") expect(rec.endpoint).toBe(apiSidecar.instanceId);
      }
    }
    // The tap streams ended with the CLI: the web sidecar still serves.
    expect((await http(`http://127.0.0.1:${web.adminPort}`, "/ready")).status).toBe(200);
  });

  it("weft top refreshes until Ctrl-C, and weft tap streams until Ctrl-C; both exit 0", async () => {
    const top = await spawnUntil([WEFT_BIN, "top", "--interval", "300ms", "--addr", cp.addr], {
      ready: /services \(inbound\)[\s\S]*\n\nSERVICE[\s\S]*services \(inbound\)/,
      what: "weft top (two frames)",
    });
    top.proc.kill("SIGINT");
    expect(await top.exited()).toEqual({ code: 0, signal: null });

    let tapped = false;
    const tapping = spawnUntil([WEFT_BIN, "tap", "api", "--addr", cp.addr], {
      ready: /in +web -> api +\S+ \S+ +(200|503) +\d/,
      what: "weft tap (one line)",
    });
    const settle = () => {
      tapped = true;
    };
    tapping.then(settle, settle);
    while (!tapped) {
      await http(`http://127.0.0.1:${apiLocal}`, "/item/8", { timeoutMs: 5_000 });
      await new Promise((r) => setTimeout(r, 50));
    }
    const tap = await tapping;
    tap.proc.kill("SIGINT");
    expect(await tap.exited()).toEqual({ code: 0, signal: null });
  });
});
