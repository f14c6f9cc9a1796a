/**
 * `weft explain` checked against what real sidecars do with the same
 * request. `api` has replicas a, b (version v1), c (v2) and d (v3, in no
 * subset); an Intention lets `web` in, gives `admin` L7 permissions (GET
 * /public only) and does not name `stranger`; a Resolver and a 50/50 Split
 * spread traffic over subsets v1 and v2. For each case the explanation
 * (the real `weft explain --json`) is compared with a real request through
 * the caller's sidecar: status, 403 body, and which instances answered.
 *
 * Traffic management runs on a second control plane and mesh of its own
 * (`web` calling `api` with replicas v1 and v2, one each), where the
 * Resolver has defaultSubset v1 and fails over to v2: a Route with a header
 * match sends requests to v2 (explain names the route), then v1's app is
 * stopped so its sidecar's health check fails, and explain says api.v1's
 * traffic is served by api.v2 while every real request lands on v2.
 */
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import {
  adminJson,
  applyResources,
  applyRoutes,
  type ClientMesh,
  meshCleanup,
  startApp,
  startClientMesh,
  startProxy,
  waitEndpoints,
  waitFor,
} from "./helpers/mesh.js";
import { runWeft, startWeftServer, type WeftServer } from "./helpers/weft.js";

const REPLICAS = { a: "v1", b: "v1", c: "v2", d: "v3" } as const;
type Replica = keyof typeof REPLICAS;
const CALLERS = ["web", "admin", "stranger"] as const;
type Caller = (typeof CALLERS)[number];

let cp: WeftServer;
/** The local port of each caller's `api` upstream listener. */
const local = {} as Record<Caller, number>;
const adminPorts = {} as Record<Caller, number>;
/** Instance id of each api replica's sidecar. */
const instanceOf = {} as Record<Replica, string>;

beforeAll(async () => {
  cp = await startWeftServer({ store: "memory", dev: true });
  await applyResources(cp.addr, [
    {
      kind: "Intention",
      name: "api",
      sources: [
        { name: "web", action: "allow" },
        {
          name: "admin",
          permissions: [{ action: "allow", http: { pathPrefix: "/public", methods: ["GET"] } }],
        },
      ],
    },
    {
      kind: "Resolver",
      name: "api",
      subsets: { v1: { meta: { version: "v1" } }, v2: { meta: { version: "v2" } } },
    },
    {
      kind: "Split",
      name: "api",
      splits: [
        { weight: 50, subset: "v1" },
        { weight: 50, subset: "v2" },
      ],
    },
  ]);
  await Promise.all([
    ...Object.entries(REPLICAS).map(async ([r, version]) => {
      const app = await startApp("http-app.mjs", { env: { NAME: "api", REPLICA: r } });
      const p = await startProxy({
        service: "api",
        appPort: app.port,
        protocol: "http",
        health: { http: "/healthz" },
        meta: { version },
        server: cp.addr,
      });
      instanceOf[r as Replica] = p.instanceId;
    }),
    ...CALLERS.map(async (svc) => {
      local[svc] = await freePort();
      const app = await startApp("http-app.mjs", { env: { NAME: svc, REPLICA: "0" } });
      const p = await startProxy({
        service: svc,
        appPort: app.port,
        protocol: "http",
        health: { http: "/healthz" },
        upstreams: { api: local[svc] },
        server: cp.addr,
      });
      adminPorts[svc] = p.adminPort;
    }),
  ]);
  // Every caller's sidecar has both subsets' endpoints (the api replicas passed their checks).
  await Promise.all(
    CALLERS.map((svc) =>
      waitFor(
        async () => {
          const s = (await adminJson(adminPorts[svc], "/config")).snapshot;
          return (
            s?.clusters?.["api.v1"]?.endpoints?.length === 2 &&
            s?.clusters?.["api.v2"]?.endpoints?.length === 1
          );
        },
        20_000,
        { what: `${svc}'s snapshot with api.v1 x2 and api.v2 x1`, intervalMs: 100 },
      ),
    ),
  );
}, 90_000);

afterAll(meshCleanup);

// biome-ignore lint/suspicious/noExplicitAny: the JSON answer is probed field by field
async function explain(from: Caller, method: string, path: string): Promise<any> {
  const r = await runWeft([
    "explain",
    "--addr",
    cp.addr,
    "--from",
    from,
    "--to",
    "api",
    "--method",
    method,
    "--path",
    path,
    "--json",
  ]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

function call(from: Caller, method: string, path: string) {
  return http(`http://127.0.0.1:${local[from]}`, path, { method, timeoutMs: 5_000 });
}

describe("weft explain agrees with the sidecars", () => {
  it("allowed: explain says allowed by the intention, and the real request gets 200", async () => {
    const e = await explain("web", "GET", "/whoami");
    expect(e.decision).toMatchObject({ allow: true, code: "intention-allow", status: null });
    expect(e.decision.reason).toBe('intention "api": source "web" allows');
    const r = await call("web", "GET", "/whoami");
    expect(r.status).toBe(200);
    expect(r.body.service).toBe("api");
  });

  it("denied: explain names the missing intention, and the real 403 carries the same reason", async () => {
    const e = await explain("stranger", "GET", "/whoami");
    expect(e.decision).toMatchObject({ allow: false, code: "default-deny", status: 403 });
    expect(e.decision.reason).toContain('intention "api" names neither "stranger" nor "*"');
    const r = await call("stranger", "GET", "/whoami");
    expect(r.status).toBe(403);
    expect(r.text).toContain(e.decision.reason);
  });

  it("L7 permissions: GET /public allowed, POST /public denied, as the proxy does", async () => {
    const get = await explain("admin", "GET", "/public");
    expect(get.decision).toMatchObject({ allow: true, code: "permission-allow", rule: { index: 0 } });
    expect((await call("admin", "GET", "/public")).status).toBe(200);

    const post = await explain("admin", "POST", "/public");
    expect(post.decision).toMatchObject({ allow: false, code: "no-permission-matched", status: 403 });
    const r = await call("admin", "POST", "/public");
    expect(r.status).toBe(403);
    expect(r.text).toContain(post.decision.reason);
  });

  it("split: explain lists both subsets with weights and their candidates; 200 real requests land only there", async () => {
    const e = await explain("web", "GET", "/whoami");
    expect(e.listener.split.targets).toEqual([
      { cluster: "api.v1", weight: 50 },
      { cluster: "api.v2", weight: 50 },
    ]);
    const candidates = (name: string): string[] =>
      e.clusters.find((c: { name: string }) => c.name === name).endpoints.map((x: { id: string }) => x.id);
    expect(candidates("api.v1").sort()).toEqual([instanceOf.a, instanceOf.b].sort());
    expect(candidates("api.v2")).toEqual([instanceOf.c]);
    const allowed = new Set([...candidates("api.v1"), ...candidates("api.v2")]);
    expect(allowed.has(instanceOf.d)).toBe(false);

    const landed: Record<string, number> = {};
    for (let i = 0; i < 200; i++) {
      const r = await call("web", "GET", "/whoami");
      expect(r.status).toBe(200);
      const id = instanceOf[r.body.replica as Replica];
      landed[id] = (landed[id] ?? 0) + 1;
    }
    console.log(`explain split 50/50: 200 requests by instance ${JSON.stringify(landed)}`);
    for (const id of Object.keys(landed)) expect(allowed.has(id)).toBe(true);
    // Both subsets got traffic (each has p = 0.5 per request: missing one in 200 is ~1e-60).
    expect(Object.keys(landed)).toContain(instanceOf.c);
    expect(landed[instanceOf.a] ?? 0).toBeGreaterThan(0);
  });
});

describe("weft explain agrees with the sidecars on routes and failover", () => {
  let cp2: WeftServer;
  let mesh: ClientMesh;
  let apiPort: number;

  beforeAll(async () => {
    cp2 = await startWeftServer({ store: "memory", dev: true });
    await applyResources(cp2.addr, [
      { kind: "Intention", name: "api", sources: [{ name: "web", action: "allow" }] },
    ]);
    apiPort = await freePort();
    mesh = await startClientMesh(
      cp2.addr,
      [
        { service: "api", replica: "v1", script: "http-app.mjs", meta: { version: "v1" } },
        { service: "api", replica: "v2", script: "http-app.mjs", meta: { version: "v2" } },
      ],
      { api: apiPort },
    );
    await applyResources(cp2.addr, [
      {
        kind: "Resolver",
        name: "api",
        subsets: { v1: { meta: { version: "v1" } }, v2: { meta: { version: "v2" } } },
        defaultSubset: "v1",
        failover: { targets: [{ subset: "v2" }] },
      },
    ]);
    await waitEndpoints(mesh.web.adminPort, "api.v1", 1);
    await waitEndpoints(mesh.web.adminPort, "api.v2", 1);
  }, 90_000);

  // biome-ignore lint/suspicious/noExplicitAny: the JSON answer is probed field by field
  async function explainApi(path: string, headers: string[] = []): Promise<any> {
    const args = ["explain", "--addr", cp2.addr, "--from", "web", "--to", "api", "--path", path, "--json"];
    for (const h of headers) args.push("--header", h);
    const r = await runWeft(args);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  }

  /** `n` real requests through web's sidecar: the replicas that answered, by count. */
  async function landed(n: number, headers: Record<string, string> = {}): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = await http(`http://127.0.0.1:${apiPort}`, "/whoami", { headers, timeoutMs: 5_000 });
      expect(r.status).toBe(200);
      out[r.body.replica] = (out[r.body.replica] ?? 0) + 1;
    }
    return out;
  }

  // Runs before the failover case, which stops v1's app.
  it("route: with the header explain names the route and api.v2, and real requests land on v2; without it, on v1", async () => {
    await applyRoutes(cp2.addr, mesh.web.adminPort, "api", [
      {
        name: "canary",
        match: { headers: [{ name: "x-canary", exact: "1" }] },
        destination: { subset: "v2" },
      },
    ]);
    const e = await explainApi("/whoami", ["x-canary=1"]);
    expect(e.route.tried).toEqual([
      {
        index: 0,
        name: "canary",
        description: 'route[0] "canary" (header x-canary exact "1")',
        matched: true,
      },
    ]);
    expect(e.route.taken).toMatchObject({ name: "canary", action: { kind: "forward", cluster: "api.v2" } });
    expect(e.clusters.map((c: { name: string }) => c.name)).toEqual(["api.v2"]);
    expect(e.clusters[0].endpoints.map((x: { id: string }) => x.id)).toEqual([
      mesh.sidecars.get("v2")?.instanceId,
    ]);

    const none = await explainApi("/whoami");
    expect(none.route.taken).toBeNull();
    expect(none.clusters.map((c: { name: string }) => c.name)).toEqual(["api.v1", "api.v2"]);
    expect(none.clusters[0].servedBy).toBe("api.v1");

    expect(await landed(20, { "x-canary": "1" })).toEqual({ v2: 20 });
    expect(await landed(20)).toEqual({ v1: 20 });
  }, 60_000);

  it("failover: v1's only instance critical, explain says api.v2 serves api.v1's traffic, and every real request lands on v2", async () => {
    const before = await explainApi("/whoami");
    expect(before.notes.failover).toContain("configured, idle: api.v1 -> api.v2");

    await mesh.apps.get("v1")?.stop();
    // Its sidecar's HTTP check (every 500 ms) fails, the catalog marks it critical, web's snapshot drops it.
    await waitEndpoints(mesh.web.adminPort, "api.v1", 0);

    const e = await explainApi("/whoami");
    const v1 = e.clusters.find((c: { name: string }) => c.name === "api.v1");
    expect(v1).toMatchObject({ endpoints: [], failover: ["api.v2"], servedBy: "api.v2" });
    expect(v1.excluded.map((x: { id: string }) => x.id)).toEqual([mesh.sidecars.get("v1")?.instanceId]);
    expect(e.notes.failover).toBe(
      "cluster api.v1 has no healthy instance: its traffic goes to api.v2 (failover)",
    );
    expect(e.notes.outlier).toContain("not visible here");

    expect(await landed(30)).toEqual({ v2: 30 });
  }, 60_000);
});
