/**
 * Resolver failover across real sidecars. `api` has three instances:
 * a (subset v1, dc1), b (subset v2, dc1) and c (subset v1, but in dc2: its
 * sidecar registers with --datacenter dc2). The Resolver's default subset is
 * v1 and its failover targets are [subset v2, datacenter dc2]. The `web`
 * sidecar (dc1) therefore sends everything to a; when a's app dies its
 * sidecar's health check fails, the instance goes critical and traffic moves
 * to b; when b dies too, to c in dc2; a new v1 instance in dc1 takes the
 * traffic back. Each step counts where 100 requests landed, and measures how
 * long the move took from the kill.
 */
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import {
  type App,
  adminJson,
  allowFrom,
  applyResources,
  meshCleanup,
  type SidecarProc,
  startApp,
  startClientMesh,
  startProxy,
  waitFor,
} from "./helpers/mesh.js";
import { startWeftServer, type WeftServer } from "./helpers/weft.js";

let cp: WeftServer;
let web: SidecarProc;
let apiLocal: number;
let apps: Map<string, App>;

beforeAll(async () => {
  cp = await startWeftServer({ store: "memory", dev: true });
  apiLocal = await freePort();
  await applyResources(cp.addr, [allowFrom("api")]);
  const mesh = await startClientMesh(
    cp.addr,
    [
      { service: "api", replica: "a", script: "http-app.mjs", meta: { version: "v1" } },
      { service: "api", replica: "b", script: "http-app.mjs", meta: { version: "v2" } },
    ],
    { api: apiLocal },
  );
  web = mesh.web;
  apps = mesh.apps;
  // The Resolver after the mesh is up: startClientMesh waits for the plain "api" cluster.
  await applyResources(cp.addr, [
    {
      kind: "Resolver",
      name: "api",
      subsets: { v1: { meta: { version: "v1" } }, v2: { meta: { version: "v2" } } },
      defaultSubset: "v1",
      failover: { targets: [{ subset: "v2" }, { datacenter: "dc2" }] },
    },
  ]);
  // c: a v1 instance in another datacenter.
  const appC = await startApp("http-app.mjs", { env: { NAME: "api", REPLICA: "c" } });
  apps.set("c", appC);
  await startProxy({
    service: "api",
    appPort: appC.port,
    protocol: "http",
    health: { http: "/healthz" },
    meta: { version: "v1" },
    args: ["--datacenter", "dc2"],
    server: cp.addr,
  });
  await waitFor(async () => (await clusterEndpoints("api.v1@dc2")) === 1, 10_000, {
    what: "the dc2 failover cluster",
  });
}, 60_000);

afterAll(meshCleanup);

async function clusterEndpoints(name: string): Promise<number | undefined> {
  const snap = (await adminJson(web.adminPort, "/config")).snapshot;
  return snap?.clusters?.[name]?.endpoints?.length;
}

/** `n` requests, 4 at a time: answers by replica (or "status N"). */
async function where(n = 100): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < n) {
        next++;
        const r = await http(`http://127.0.0.1:${apiLocal}`, "/whoami", { timeoutMs: 5_000 });
        const key = r.status === 200 ? String(r.body?.replica) : `status ${r.status}`;
        counts[key] = (counts[key] ?? 0) + 1;
      }
    }),
  );
  return counts;
}

/** Kills `replica`'s app, then polls until requests land on `to`; returns the time that took and the errors seen meanwhile. */
async function killAndWaitFor(replica: string, to: string): Promise<{ ms: number; failed: number }> {
  const app = apps.get(replica) as App;
  const t0 = performance.now();
  await app.kill9();
  let failed = 0;
  await waitFor(
    async () => {
      const r = await http(`http://127.0.0.1:${apiLocal}`, "/whoami", { timeoutMs: 5_000 });
      if (r.status !== 200) failed++;
      return r.status === 200 && r.body?.replica === to;
    },
    15_000,
    { what: `traffic on ${to} after ${replica} died`, intervalMs: 20 },
  );
  return { ms: Math.round(performance.now() - t0), failed };
}

describe("Resolver failover", () => {
  it("sends everything to the default subset while it is healthy", async () => {
    expect(await where()).toEqual({ a: 100 });
  });

  it("moves to the v2 subset when v1 has no healthy instance left", async () => {
    const moved = await killAndWaitFor("a", "b");
    console.log(
      `v1 -> v2 failover: ${moved.ms} ms after the kill, ${moved.failed} failed requests meanwhile`,
    );
    expect(await where()).toEqual({ b: 100 });
    // Traffic may move before the control plane has marked a critical (in-request failover on a
    // refused connect): the snapshot catches up once its health check fails.
    const snap = await waitFor(
      async () => {
        const s = (await adminJson(web.adminPort, "/config")).snapshot;
        return s.clusters["api.v1"].endpoints.length === 0 ? s : undefined;
      },
      15_000,
      { what: "api.v1 without endpoints in the web sidecar's snapshot" },
    );
    expect(snap.clusters["api.v1"].endpoints).toEqual([]);
    expect(snap.clusters["api.v1"].failover).toEqual(["api.v2", "api.v1@dc2"]);
  });

  it("moves to the other datacenter when v2 is gone too", async () => {
    const moved = await killAndWaitFor("b", "c");
    console.log(
      `v2 -> dc2 failover: ${moved.ms} ms after the kill, ${moved.failed} failed requests meanwhile`,
    );
    expect(await where()).toEqual({ c: 100 });
  });

  it("comes back to the primary when a v1 instance in dc1 is healthy again", async () => {
    const appD = await startApp("http-app.mjs", { env: { NAME: "api", REPLICA: "d" } });
    const t0 = performance.now();
    await startProxy({
      service: "api",
      appPort: appD.port,
      protocol: "http",
      health: { http: "/healthz" },
      meta: { version: "v1" },
      server: cp.addr,
    });
    await waitFor(
      async () => {
        const r = await http(`http://127.0.0.1:${apiLocal}`, "/whoami", { timeoutMs: 5_000 });
        return r.status === 200 && r.body?.replica === "d";
      },
      15_000,
      { what: "traffic back on v1 in dc1", intervalMs: 20 },
    );
    console.log(
      `back to the primary ${Math.round(performance.now() - t0)} ms after the new instance started`,
    );
    expect(await where()).toEqual({ d: 100 });
  });
});

describe("Resolver locality failover", () => {
  let geoLocal: number;
  const geoApps = new Map<string, App>();

  beforeAll(async () => {
    geoLocal = await freePort();
    await applyResources(cp.addr, [
      allowFrom("geo", "web2"),
      {
        kind: "Resolver",
        name: "geo",
        failover: { targets: [{ locality: { region: "eu" } }, { locality: { region: "us" } }] },
      },
    ]);
    for (const [replica, locality] of [
      ["g1", "eu/a"],
      ["g2", "eu/b"],
      ["g3", "us/x"],
    ] as const) {
      const app = await startApp("http-app.mjs", { env: { NAME: "geo", REPLICA: replica } });
      geoApps.set(replica, app);
      await startProxy({
        service: "geo",
        appPort: app.port,
        protocol: "http",
        health: { http: "/healthz" },
        args: ["--locality", locality],
        server: cp.addr,
      });
    }
    const webApp = await startApp("http-app.mjs", { env: { NAME: "web2", REPLICA: "w2" } });
    const web2 = await startProxy({
      service: "web2",
      appPort: webApp.port,
      protocol: "http",
      health: { http: "/healthz" },
      upstreams: { geo: geoLocal },
      args: ["--locality", "eu/a"],
      server: cp.addr,
    });
    await waitFor(
      async () => {
        const snap = (await adminJson(web2.adminPort, "/config")).snapshot;
        return snap?.clusters?.["geo~us"]?.endpoints?.length === 1;
      },
      15_000,
      { what: "web2's locality clusters" },
    );
  }, 60_000);

  async function geoReplicas(n = 50): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = await http(`http://127.0.0.1:${geoLocal}`, "/whoami", { timeoutMs: 5_000 });
      // A failure says what the proxy flagged (x-weft-flags, e.g. UF, URX) and why, so a rare one explains itself.
      const key =
        r.status === 200
          ? String(r.body?.replica)
          : `status ${r.status} ${String(r.headers["x-weft-flags"] ?? "-")} ${String(r.text ?? "").slice(0, 120)}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return counts;
  }

  it("prefers the caller's own zone, then its region, then the next region", async () => {
    expect(await geoReplicas()).toEqual({ g1: 50 });
    await (geoApps.get("g1") as App).kill9();
    await waitFor(async () => (await geoReplicas(5)).g2 === 5, 15_000, { what: "traffic on eu/b" });
    expect(await geoReplicas()).toEqual({ g2: 50 });
    await (geoApps.get("g2") as App).kill9();
    await waitFor(async () => (await geoReplicas(5)).g3 === 5, 15_000, { what: "traffic on us" });
    expect(await geoReplicas()).toEqual({ g3: 50 });
  });
});
