/**
 * Retries across real sidecars (issue #7): `web` calls `flaky` (two
 * replicas of e2e/apps/flaky-app.mjs answering 503 to 30% of requests) and
 * `dead` (one replica answering 503 to all). Counted at the client and at
 * the upstream apps:
 *
 * - flaky without retries: about 70% success; with retries (5xx, 4 retries):
 *   ≥ 99%. A PUT with a body is retried (the body is replayed whole), a POST
 *   is not (not idempotent, `retryNonIdempotent` off).
 * - flaky hanging 20% of requests for 3 s, with a 2 s request timeout: the
 *   per-try timeout (200 ms) retries them, so none ends in 504.
 * - dead with the budget at 20%: at most 1.2× the requests reach it; with the
 *   budget wide open every request is tried 1 + numRetries times and ends
 *   with flag URX.
 */
import { Agent, request as httpRequest } from "node:http";
import type { ProxySnapshot } from "@weft/api";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import {
  type App,
  adminJson,
  allowFrom,
  applyResources,
  meshCleanup,
  metricSum,
  type SidecarProc,
  startClientMesh,
  waitFor,
} from "./helpers/mesh.js";
import { startWeftServer, type WeftServer } from "./helpers/weft.js";

let cp: WeftServer;
let web: SidecarProc;
const local = { flaky: 0, dead: 0 };
const apps: Record<string, App[]> = { flaky: [], dead: [] };
const agent = new Agent({ keepAlive: true, maxSockets: 8 });

beforeAll(async () => {
  cp = await startWeftServer({ store: "memory", dev: true });
  local.flaky = await freePort();
  local.dead = await freePort();
  await applyResources(cp.addr, [
    allowFrom("flaky"),
    allowFrom("dead"),
    { kind: "ServiceDefaults", name: "flaky", protocol: "http" },
    {
      kind: "ServiceDefaults",
      name: "dead",
      protocol: "http",
      retries: {
        numRetries: 2,
        retryOn: ["5xx"],
        backoff: { baseInterval: "1ms", maxInterval: "5ms" },
        budget: { percent: 20, minRetriesPerSecond: 0 },
      },
    },
  ]);
  const replicas: [string, string, number][] = [
    ["flaky", "a", 30],
    ["flaky", "b", 30],
    ["dead", "x", 100],
  ];
  const mesh = await startClientMesh(
    cp.addr,
    replicas.map(([service, replica, fail], i) => ({
      service,
      replica,
      script: "flaky-app.mjs",
      env: { FAIL_PERCENT: String(fail), SEED: String(1000 + i) },
    })),
    local,
  );
  web = mesh.web;
  for (const [service, replica] of replicas) apps[service]?.push(mesh.apps.get(replica) as App);
}, 60_000);

afterAll(async () => {
  agent.destroy();
  await meshCleanup();
});

/** Applies resources and waits until the web sidecar's snapshot satisfies `ready`. */
async function applyAndWait(
  resources: Record<string, unknown>[],
  ready: (s: ProxySnapshot | undefined) => boolean,
  what: string,
): Promise<void> {
  await applyResources(cp.addr, resources);
  await waitFor(async () => ready((await adminJson(web.adminPort, "/config")).snapshot), 10_000, {
    what,
    intervalMs: 50,
  });
}

/** One request through the web sidecar's outbound listener for `service`. */
function call(
  service: keyof typeof local,
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port: local[service],
        method,
        path,
        agent,
        headers: body === undefined ? {} : { "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on("data", (c: Buffer) => parts.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString() }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("client timeout")));
    req.end(body);
  });
}

/** `n` requests, 8 at a time; the statuses seen and how many requests carried their own body back. */
async function load(
  service: keyof typeof local,
  n: number,
  method = "GET",
  withBody = false,
): Promise<{ ok: number; statuses: Record<number, number>; bodiesIntact: number }> {
  const statuses: Record<number, number> = {};
  let ok = 0;
  let bodiesIntact = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const body = withBody ? `payload-${i}-${"x".repeat(i % 500)}` : undefined;
      const r = await call(service, method, `/work/${i}`, body);
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (r.status === 200) {
        ok++;
        if (body !== undefined && JSON.parse(r.text).body === body) bodiesIntact++;
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return { ok, statuses, bodiesIntact };
}

/** Requests the service's apps received since their last reset (summed over replicas). */
async function received(service: string): Promise<number> {
  let sum = 0;
  for (const app of apps[service] ?? []) {
    sum += (await http(`http://127.0.0.1:${app.port}`, "/stats")).body.received as number;
  }
  return sum;
}

async function resetApps(service: string, query = ""): Promise<void> {
  for (const app of apps[service] ?? []) {
    await http(`http://127.0.0.1:${app.port}`, `/reset${query}`, { method: "POST" });
  }
}

async function hungCount(service: string): Promise<number> {
  let sum = 0;
  for (const app of apps[service] ?? []) {
    sum += (await http(`http://127.0.0.1:${app.port}`, "/stats")).body.hung as number;
  }
  return sum;
}

const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(2)}%`;

describe("retries: 30% injected 503s", () => {
  it("without retries, about 30% of requests fail at the client", async () => {
    await resetApps("flaky");
    const N = 300;
    const r = await load("flaky", N);
    const upstream = await received("flaky");
    console.log(
      `flaky, no retries: ${r.ok}/${N} ok (${pct(r.ok, N)}), statuses ${JSON.stringify(r.statuses)}, ${upstream} requests upstream`,
    );
    expect(r.ok).toBeLessThan(N * 0.85);
    expect(upstream).toBe(N);
  }, 60_000);

  it("with retries on 5xx, ≥ 99% succeed; PUT bodies are replayed, POSTs are not retried", async () => {
    await applyAndWait(
      [
        {
          kind: "ServiceDefaults",
          name: "flaky",
          protocol: "http",
          retries: {
            numRetries: 4,
            retryOn: ["5xx"],
            backoff: { baseInterval: "2ms", maxInterval: "20ms" },
            budget: { percent: 50, minRetriesPerSecond: 10 },
          },
        },
      ],
      (s) => s?.clusters.flaky?.retries?.numRetries === 4,
      "retries for flaky in the web sidecar",
    );
    await resetApps("flaky");
    const N = 1000;
    const r = await load("flaky", N);
    const upstream = await received("flaky");
    console.log(
      `flaky, retries on (4 retries, budget 50%): ${r.ok}/${N} ok (${pct(r.ok, N)}), ` +
        `statuses ${JSON.stringify(r.statuses)}, ${upstream} requests upstream (${(upstream / N).toFixed(2)}x)`,
    );
    expect(r.ok).toBeGreaterThanOrEqual(N * 0.99);
    expect(upstream).toBeGreaterThan(N);

    const P = 200;
    const put = await load("flaky", P, "PUT", true);
    console.log(`flaky, PUT with bodies: ${put.ok}/${P} ok, ${put.bodiesIntact} bodies intact`);
    expect(put.ok).toBeGreaterThanOrEqual(P * 0.99);
    expect(put.bodiesIntact).toBe(put.ok);

    const post = await load("flaky", P, "POST", true);
    console.log(`flaky, POST with bodies (not retried): ${post.ok}/${P} ok (${pct(post.ok, P)})`);
    expect(post.ok).toBeLessThan(P * 0.9);
  }, 120_000);
});

describe("retries: per-try timeout", () => {
  it("a try that hangs is abandoned and retried within the request timeout", async () => {
    await applyAndWait(
      [
        {
          kind: "ServiceDefaults",
          name: "flaky",
          protocol: "http",
          timeouts: { request: "2s" },
          retries: {
            numRetries: 4,
            retryOn: ["reset"],
            perTryTimeout: "200ms",
            backoff: { baseInterval: "2ms", maxInterval: "20ms" },
            budget: { percent: 100, minRetriesPerSecond: 100 },
          },
        },
      ],
      (s) => s?.clusters.flaky?.retries?.perTryTimeoutMs === 200,
      "the per-try timeout for flaky in the web sidecar",
    );
    await resetApps("flaky", "?fail=0&hang=20");
    try {
      const N = 100;
      const r = await load("flaky", N);
      const hung = await hungCount("flaky");
      console.log(
        `flaky hanging 20% for 3 s, request timeout 2 s, per-try 200 ms: ${r.ok}/${N} ok, ` +
          `statuses ${JSON.stringify(r.statuses)}, ${hung} tries hung and were retried`,
      );
      expect(hung).toBeGreaterThan(5);
      expect(r.ok).toBeGreaterThanOrEqual(N * 0.99);
    } finally {
      await resetApps("flaky", "?fail=30&hang=0");
    }
  }, 60_000);
});

describe("retries: the budget bounds amplification", () => {
  it("with the budget at 20%, a 100% failing upstream sees at most 1.2× the requests", async () => {
    await resetApps("dead");
    const N = 500;
    const r = await load("dead", N);
    const upstream = await received("dead");
    console.log(
      `dead, budget 20%: ${r.ok}/${N} ok, statuses ${JSON.stringify(r.statuses)}, ` +
        `${upstream} requests upstream (${(upstream / N).toFixed(3)}x)`,
    );
    expect(r.statuses[503]).toBe(N);
    expect(upstream).toBeLessThanOrEqual(N * 1.2);
    // The budget did allow some retries: the 20% were used.
    expect(upstream).toBeGreaterThan(N * 1.1);
  }, 60_000);

  it("with the budget wide open, every request is tried 1 + numRetries times and flagged URX", async () => {
    await applyAndWait(
      [
        {
          kind: "ServiceDefaults",
          name: "dead",
          protocol: "http",
          retries: {
            numRetries: 2,
            retryOn: ["5xx"],
            backoff: { baseInterval: "1ms", maxInterval: "5ms" },
            budget: { percent: 100, minRetriesPerSecond: 1000 },
          },
        },
      ],
      (s) => s?.clusters.dead?.retries?.budget.percent === 100,
      "the open budget for dead in the web sidecar",
    );
    const urx = async () =>
      metricSum(
        await (await fetch(`http://127.0.0.1:${web.adminPort}/metrics`)).text(),
        "weft_proxy_requests_total",
        {
          direction: "outbound",
          destination_service: "dead",
          response_flags: "URX",
        },
      );
    const urxBefore = await urx();
    await resetApps("dead");
    const N = 100;
    const r = await load("dead", N);
    const upstream = await received("dead");
    const flagged = (await urx()) - urxBefore;
    console.log(
      `dead, budget 100%: statuses ${JSON.stringify(r.statuses)}, ${upstream} requests upstream ` +
        `(${(upstream / N).toFixed(2)}x), ${flagged} flagged URX`,
    );
    expect(r.statuses[503]).toBe(N);
    expect(upstream).toBe(N * 3);
    expect(flagged).toBe(N);
  }, 60_000);
});
