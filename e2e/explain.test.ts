/**
 * `weft explain` checked against what real sidecars do with the same
 * request. `api` has replicas a, b (version v1), c (v2) and d (v3, in no
 * subset); an Intention lets `web` in, gives `admin` L7 permissions (GET
 * /public only) and does not name `stranger`; a Resolver and a 50/50 Split
 * spread traffic over subsets v1 and v2. For each case the explanation
 * (the real `weft explain --json`) is compared with a real request through
 * the caller's sidecar: status, 403 body, and which instances answered.
 */
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import { adminJson, applyResources, meshCleanup, startApp, startProxy, waitFor } from "./helpers/mesh.js";
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
