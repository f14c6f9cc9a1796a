/**
 * Circuit breaking and outlier detection across real sidecars (issue #7):
 * `web` calls `slow` (one replica of e2e/apps/flaky-app.mjs answering every
 * request after 1 s) and `api` (three replicas, one answering 503 to all).
 *
 * - slow with maxRequests 5: 20 concurrent requests → 5 × 200 and 15 fast
 *   503s with flag UO (refused without waiting for the app), counted by
 *   weft_proxy_circuit_breaker_overflows_total{limit="requests"}.
 * - api with consecutive5xx 3, baseEjectionTime 2s, maxEjectionPercent 50:
 *   the failing replica gets a handful of the 300 requests, then none; after
 *   the ejection time it is tried again and ejected again.
 */
import { Agent, request as httpRequest } from "node:http";
import { performance } from "node:perf_hooks";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import {
  type App,
  allowFrom,
  applyResources,
  meshCleanup,
  metricSum,
  type SidecarProc,
  startClientMesh,
} from "./helpers/mesh.js";
import { startWeftServer, type WeftServer } from "./helpers/weft.js";

let cp: WeftServer;
let web: SidecarProc;
const local = { slow: 0, api: 0, conn: 0 };
const apps: Record<string, App[]> = { slow: [], api: [], conn: [] };
/** Apps by replica name (from startClientMesh). */
let byReplica: Map<string, App>;
const agent = new Agent({ keepAlive: true, maxSockets: 32 });

beforeAll(async () => {
  cp = await startWeftServer({ store: "memory", dev: true });
  local.slow = await freePort();
  local.api = await freePort();
  local.conn = await freePort();
  await applyResources(cp.addr, [
    allowFrom("slow"),
    allowFrom("api"),
    allowFrom("conn"),
    { kind: "ServiceDefaults", name: "slow", protocol: "http", circuitBreaker: { maxRequests: 5 } },
    { kind: "ServiceDefaults", name: "conn", protocol: "http", circuitBreaker: { maxConnections: 1 } },
    {
      kind: "ServiceDefaults",
      name: "api",
      protocol: "http",
      outlierDetection: {
        consecutive5xx: 3,
        interval: "10s",
        baseEjectionTime: "2s",
        maxEjectionTime: "30s",
        maxEjectionPercent: 50,
      },
    },
  ]);
  // [service, replica, env]: "x" is the broken api replica.
  const replicas: [string, string, Record<string, string>][] = [
    ["slow", "s", { FAIL_PERCENT: "0", HANG_PERCENT: "100", HANG_MS: "1000" }],
    ["api", "x", { FAIL_PERCENT: "100" }],
    ["api", "y", { FAIL_PERCENT: "0" }],
    ["api", "z", { FAIL_PERCENT: "0" }],
    ["conn", "c1", { FAIL_PERCENT: "0" }],
    ["conn", "c2", { FAIL_PERCENT: "0" }],
  ];
  const mesh = await startClientMesh(
    cp.addr,
    replicas.map(([service, replica, env]) => ({
      service,
      replica,
      script: "flaky-app.mjs",
      env: { SEED: "7", ...env },
    })),
    local,
  );
  web = mesh.web;
  byReplica = mesh.apps;
  for (const [service, replica] of replicas) apps[service]?.push(mesh.apps.get(replica) as App);
}, 60_000);

afterAll(async () => {
  agent.destroy();
  await meshCleanup();
});

interface Answer {
  status: number;
  flags: string | undefined;
  ms: number;
}

function call(service: keyof typeof local, path: string): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port: local[service], path, agent }, (res) => {
      res.resume();
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          flags: res.headers["x-weft-response-flags"] as string | undefined,
          ms: performance.now() - started,
        }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("client timeout")));
    req.end();
  });
}

const metrics = async (): Promise<string> =>
  (await fetch(`http://127.0.0.1:${web.adminPort}/metrics`)).text();

async function stats(app: App): Promise<{ received: number; failed: number }> {
  return (await http(`http://127.0.0.1:${app.port}`, "/stats")).body as { received: number; failed: number };
}

const replica = (name: string): App => {
  const app = byReplica.get(name);
  if (!app) throw new Error(`no api replica ${name}`);
  return app;
};

describe("circuit breaking", () => {
  it("maxRequests 5: of 20 concurrent requests 5 reach the app, 15 get a fast 503 UO", async () => {
    const overflowsBefore = metricSum(await metrics(), "weft_proxy_circuit_breaker_overflows_total", {
      destination_service: "slow",
      limit: "requests",
    });
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => call("slow", `/r${i}`)));
    const ok = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status === 503);
    const overflows =
      metricSum(await metrics(), "weft_proxy_circuit_breaker_overflows_total", {
        destination_service: "slow",
        limit: "requests",
      }) - overflowsBefore;
    const slowest = Math.max(...refused.map((a) => a.ms));
    console.log(
      `slow, maxRequests 5, 20 concurrent: ${ok.length} × 200 (min ${Math.round(Math.min(...ok.map((a) => a.ms)))} ms), ` +
        `${refused.length} × 503 (slowest ${Math.round(slowest)} ms, flags ${[...new Set(refused.map((a) => a.flags))].join("|")}), ` +
        `overflow metric +${overflows}`,
    );
    expect(ok).toHaveLength(5);
    expect(refused).toHaveLength(15);
    for (const a of refused) expect(a.flags).toBe("UO");
    // Refused without waiting for the app (which takes 1 s): the breaker answers at once.
    for (const a of refused) expect(a.ms).toBeLessThan(500);
    for (const a of ok) expect(a.ms).toBeGreaterThanOrEqual(900);
    expect(overflows).toBe(15);
    // The leases were given back: the next request goes through.
    expect((await call("slow", "/after")).status).toBe(200);
  });
});

describe("circuit breaking: connections", () => {
  it("maxConnections 1 over two replicas: requests for the second replica get a fast 503 UO until the first connection closes", async () => {
    const before = metricSum(await metrics(), "weft_proxy_circuit_breaker_overflows_total", {
      destination_service: "conn",
      limit: "connections",
    });
    // Round robin alternates between the replicas; the sidecar keeps one multiplexed session per peer.
    const answers: Answer[] = [];
    for (let i = 0; i < 10; i++) answers.push(await call("conn", `/c${i}`));
    const ok = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status === 503);
    const overflows =
      metricSum(await metrics(), "weft_proxy_circuit_breaker_overflows_total", {
        destination_service: "conn",
        limit: "connections",
      }) - before;
    console.log(
      `conn, maxConnections 1, 10 sequential requests over 2 replicas: ${ok.length} × 200, ${refused.length} × 503 UO`,
    );
    expect(ok).toHaveLength(5);
    expect(refused).toHaveLength(5);
    for (const a of refused) expect(a.flags).toBe("UO");
    expect(overflows).toBe(5);
    // Both replicas' apps together saw exactly the 5 that went through: one replica only.
    const seen = await Promise.all((apps.conn as App[]).map((a) => stats(a)));
    expect(seen.map((x) => x.received).sort()).toEqual([0, 5]);
  });
});

describe("outlier detection", () => {
  it("ejects the failing replica after 3 consecutive 5xx, then tries it again after the ejection time", async () => {
    for (const app of apps.api ?? [])
      await http(`http://127.0.0.1:${app.port}`, "/reset", { method: "POST" });
    const ejections = async (): Promise<number> =>
      metricSum(await metrics(), "weft_proxy_outlier_ejections_total", { destination_service: "api" });
    const ejectedBefore = await ejections();
    const statuses: Record<number, number> = {};
    const N = 300;
    const t0 = performance.now();
    for (let i = 0; i < N; i += 4) {
      const batch = await Promise.all(Array.from({ length: Math.min(4, N - i) }, () => call("api", "/work")));
      for (const a of batch) statuses[a.status] = (statuses[a.status] ?? 0) + 1;
    }
    const phaseMs = performance.now() - t0;
    const x1 = (await stats(replica("x"))).received;
    const y1 = (await stats(replica("y"))).received;
    const z1 = (await stats(replica("z"))).received;
    console.log(
      `api, 300 requests in ${Math.round(phaseMs)} ms: statuses ${JSON.stringify(statuses)}; ` +
        `received x=${x1} (always 503) y=${y1} z=${z1}; ejections +${(await ejections()) - ejectedBefore}`,
    );
    expect(x1).toBeGreaterThanOrEqual(3);
    // A few failures per ejection; the phase may outlast one 2 s ejection, so allow a second round.
    expect(x1).toBeLessThanOrEqual(phaseMs < 2_000 ? 6 : 9);
    expect(statuses[503] ?? 0).toBe(x1);
    expect(y1 + z1).toBe(N - x1);

    // After the ejection time, x is tried again, fails, and is ejected again (for longer).
    const ejectedMid = await ejections();
    const deadline = performance.now() + 15_000;
    let x2 = x1;
    let sent = 0;
    while (performance.now() < deadline && x2 < x1 + 3) {
      await call("api", "/again");
      sent++;
      x2 = (await stats(replica("x"))).received;
      await new Promise((r) => setTimeout(r, 20));
    }
    const ejectedAgain = (await ejections()) - ejectedMid;
    // Then it gets nothing for a while: 60 more requests all go to y and z.
    for (let i = 0; i < 60; i++) expect((await call("api", "/after")).status).toBe(200);
    const x3 = (await stats(replica("x"))).received;
    console.log(
      `api, after the ejection: ${sent} requests until x got 3 more (x=${x2}), ejections +${ejectedAgain}, ` +
        `then 60 requests: x received ${x3 - x2}`,
    );
    expect(x2).toBe(x1 + 3);
    expect(ejectedAgain).toBeGreaterThanOrEqual(1);
    expect(x3).toBe(x2);
  }, 40_000);
});
