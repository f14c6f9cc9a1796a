/**
 * Load balancing across real sidecars: three `api` replicas (each app answers
 * /whoami with its replica name; their sidecars register weights 1, 2 and 7)
 * behind one `web` sidecar. Each policy is set with `weft apply` of the
 * api ServiceDefaults and checked by the distribution of 300-500 requests.
 * Then failures under a steady request loop: one replica's app is killed
 * (its sidecar answers for it until health checking removes it), restarted
 * on the same port (it gets traffic again), and one replica's sidecar is
 * killed (connect failures are retried on another endpoint).
 */
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import {
  type App,
  adminJson,
  applyResources,
  meshCleanup,
  type SidecarProc,
  startApp,
  startProxy,
  waitEndpoints,
  waitFor,
} from "./helpers/mesh.js";
import { startWeftServer, type WeftServer } from "./helpers/weft.js";

const REPLICAS = ["a", "b", "c"] as const;
const WEIGHTS = { a: 1, b: 2, c: 7 } as const;

let cp: WeftServer;
let web: SidecarProc;
let apiLocal: number;
const apps = new Map<string, App>();
const sidecars = new Map<string, SidecarProc>();

beforeAll(async () => {
  cp = await startWeftServer({ store: "memory", dev: true });
  apiLocal = await freePort();
  await applyResources(cp.addr, [
    { kind: "Intention", name: "api", sources: [{ name: "web", action: "allow" }] },
  ]);
  const started = await Promise.all(
    REPLICAS.map((r) => startApp("http-app.mjs", { env: { NAME: "api", REPLICA: r } })),
  );
  REPLICAS.forEach((r, i) => {
    apps.set(r, started[i] as App);
  });
  const webApp = await startApp("http-app.mjs", { env: { NAME: "web", REPLICA: "w" } });
  const proxies = await Promise.all([
    ...REPLICAS.map((r) =>
      startProxy({
        service: "api",
        appPort: apps.get(r)!.port,
        protocol: "http",
        health: { http: "/healthz" },
        meta: { weight: String(WEIGHTS[r]) },
        args: ["--instance-id", `api-${r}`],
        server: cp.addr,
      }),
    ),
    startProxy({
      service: "web",
      appPort: webApp.port,
      protocol: "http",
      health: { http: "/healthz" },
      upstreams: { api: apiLocal },
      server: cp.addr,
    }),
  ]);
  REPLICAS.forEach((r, i) => {
    sidecars.set(r, proxies[i] as SidecarProc);
  });
  web = proxies[3] as SidecarProc;
  await waitEndpoints(web.adminPort, "api", 3);
}, 60_000);

afterAll(meshCleanup);

/** One request through the web sidecar: the replica that answered, or what went wrong. */
async function whoami(headers: Record<string, string> = {}): Promise<{ ok: boolean; replica: string }> {
  try {
    const r = await http(`http://127.0.0.1:${apiLocal}`, "/whoami", { headers, timeoutMs: 5_000 });
    if (r.status === 200) return { ok: true, replica: String(r.body?.replica) };
    return { ok: false, replica: `${r.status} ${r.text.trim().slice(0, 200)}` };
  } catch (e) {
    return { ok: false, replica: (e as Error).message };
  }
}

/** `n` requests, `concurrency` at a time; counts answers by replica (failures are keyed by their error). */
async function distribution(n: number, concurrency = 1): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        const r = await whoami();
        counts[r.replica] = (counts[r.replica] ?? 0) + 1;
      }
    }),
  );
  return counts;
}

async function setPolicy(loadBalancer: Record<string, unknown>): Promise<void> {
  await applyResources(cp.addr, [{ kind: "ServiceDefaults", name: "api", loadBalancer }]);
  await waitFor(
    async () =>
      (await adminJson(web.adminPort, "/config")).snapshot?.clusters?.api?.lb?.policy === loadBalancer.policy,
    10_000,
    { what: `policy ${loadBalancer.policy} in the web sidecar's snapshot`, intervalMs: 50 },
  );
}

interface Sample {
  at: number;
  ok: boolean;
  replica: string;
}

/** Sends a request every `intervalMs` (one at a time) until stopped; keeps every result. */
function requestLoop(intervalMs = 20): { results: Sample[]; stop(): Promise<void> } {
  const results: Sample[] = [];
  let stopped = false;
  const run = (async () => {
    while (!stopped) {
      const t = Date.now();
      const r = await whoami();
      results.push({ at: t, ...r });
      const wait = intervalMs - (Date.now() - t);
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
    }
  })();
  return {
    results,
    async stop() {
      stopped = true;
      await run;
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("load-balancing policies", () => {
  it("round_robin (the default): 300 requests, 100 each", async () => {
    const c = await distribution(300);
    console.log(`round_robin over 300 requests: ${JSON.stringify(c)}`);
    for (const r of REPLICAS) {
      expect(c[r] ?? 0).toBeGreaterThanOrEqual(95);
      expect(c[r] ?? 0).toBeLessThanOrEqual(105);
    }
  }, 60_000);

  it("weighted 1/2/7: 500 requests in those proportions", async () => {
    await setPolicy({ policy: "weighted" });
    const n = 500;
    const c = await distribution(n);
    console.log(
      `weighted 1/2/7 over ${n} requests: ${JSON.stringify(c)} ` +
        `(${REPLICAS.map((r) => `${r} ${(((c[r] ?? 0) / n) * 100).toFixed(1)}%`).join(", ")}; expected 10/20/70%)`,
    );
    for (const r of REPLICAS) {
      const share = (c[r] ?? 0) / n;
      expect(Math.abs(share - WEIGHTS[r] / 10)).toBeLessThan(0.03);
    }
  }, 60_000);

  it("ring_hash on x-user: a user always reaches the same replica; users are spread", async () => {
    await setPolicy({ policy: "ring_hash", hashOn: [{ header: "x-user" }] });
    const users = Array.from({ length: 100 }, (_, i) => `user-${i}`);
    const seen = new Map<string, Set<string>>();
    for (let round = 0; round < 3; round++) {
      for (const u of users) {
        const r = await whoami({ "x-user": u });
        expect(r.ok, r.replica).toBe(true);
        if (!seen.has(u)) seen.set(u, new Set());
        seen.get(u)!.add(r.replica);
      }
    }
    const inconsistent = [...seen.entries()].filter(([, s]) => s.size !== 1).map(([u]) => u);
    const perReplica: Record<string, number> = {};
    for (const s of seen.values()) for (const r of s) perReplica[r] = (perReplica[r] ?? 0) + 1;
    console.log(
      `ring_hash on x-user: 100 users x 3 requests; users per replica ${JSON.stringify(perReplica)}; ` +
        `${inconsistent.length} users saw more than one replica`,
    );
    expect(inconsistent).toEqual([]);
    expect(Object.keys(perReplica).sort()).toEqual([...REPLICAS]);
  }, 60_000);

  it("least_request: every replica is used", async () => {
    await setPolicy({ policy: "least_request" });
    const c = await distribution(300, 6);
    console.log(`least_request over 300 requests, 6 at a time: ${JSON.stringify(c)}`);
    for (const r of REPLICAS) expect(c[r] ?? 0).toBeGreaterThan(0);
    expect(Object.keys(c).sort()).toEqual([...REPLICAS]);
  }, 60_000);
});

describe("failures under a request loop (round_robin)", () => {
  beforeAll(() => setPolicy({ policy: "round_robin" }), 30_000);

  it("an app killed with SIGKILL costs at most a couple of requests; restarted, it gets traffic again", async () => {
    await waitEndpoints(web.adminPort, "api", 3);
    const loop = requestLoop(20);
    await sleep(1_000);
    const appA = apps.get("a")!;
    const killedAt = Date.now();
    await appA.kill9();
    await sleep(5_000);
    await loop.stop();
    const after = loop.results.filter((s) => s.at >= killedAt);
    const failures = after.filter((s) => !s.ok);
    const lastFailure = failures.at(-1)?.at;
    const tail = after.filter((s) => s.at >= killedAt + 3_500);
    console.log(
      `app of replica a killed: ${failures.length} failed of ${after.length} requests in the 5 s after ` +
        `(last failure ${lastFailure === undefined ? "-" : `${lastFailure - killedAt} ms`} after the kill); ` +
        `failures: ${JSON.stringify([...new Set(failures.map((f) => f.replica))].slice(0, 3))}`,
    );

    // Back on the same port (before any assertion, so the next test starts with three replicas):
    // its sidecar's health check passes again and web sends it traffic.
    const restartedAt = Date.now();
    const again = await startApp("http-app.mjs", { port: appA.port, env: { NAME: "api", REPLICA: "a" } });
    apps.set("a", again);
    let served = 0;
    await waitFor(
      async () => {
        const r = await whoami();
        if (r.ok && r.replica === "a") served++;
        return served > 0;
      },
      15_000,
      { intervalMs: 20, what: "a request served by the restarted replica a" },
    );
    console.log(
      `app of replica a restarted: first request served by it ${Date.now() - restartedAt} ms later`,
    );

    expect(loop.results.filter((s) => s.at < killedAt && !s.ok)).toEqual([]);
    expect(tail.length).toBeGreaterThan(10);
    expect(tail.every((s) => s.ok && (s.replica === "b" || s.replica === "c"))).toBe(true);
    expect(failures.length).toBeLessThanOrEqual(3);
  }, 60_000);

  it("a sidecar killed with SIGKILL: connect failures are retried on another replica", async () => {
    await waitEndpoints(web.adminPort, "api", 3);
    const loop = requestLoop(20);
    await sleep(1_000);
    const killedAt = Date.now();
    await sidecars.get("b")!.kill9();
    await sleep(4_000);
    await loop.stop();
    const after = loop.results.filter((s) => s.at >= killedAt);
    const failures = after.filter((s) => !s.ok);
    const byReplica: Record<string, number> = {};
    for (const s of after) if (s.ok) byReplica[s.replica] = (byReplica[s.replica] ?? 0) + 1;
    console.log(
      `sidecar of replica b killed: ${failures.length} failed of ${after.length} requests in the 4 s after; ` +
        `served ${JSON.stringify(byReplica)}; failures: ${JSON.stringify(failures.slice(0, 3).map((f) => f.replica))}`,
    );
    expect(loop.results.filter((s) => s.at < killedAt && !s.ok)).toEqual([]);
    expect(after.filter((s) => s.at >= killedAt + 500).every((s) => s.replica !== "b")).toBe(true);
    expect(failures.length).toBeLessThanOrEqual(2);
    expect(byReplica.a ?? 0).toBeGreaterThan(0);
    expect(byReplica.c ?? 0).toBeGreaterThan(0);
  }, 60_000);
});
