/**
 * `GET /v1/explain` for traffic management, over real loopback HTTP against
 * startServer (memory store): the destination's routes tried in order (a
 * header match with a prefix rewrite, a redirect, a direct response, no
 * match, a path refused before routing), Resolver failover idle and active
 * as an instance's TTL check turns critical and back, and a Resolver
 * redirect (authorized by the service the calls really reach).
 */
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningServer, startServer } from "../server.js";

const silent = pino({ level: "silent" });

// biome-ignore lint/suspicious/noExplicitAny: JSON bodies are probed field by field in assertions.
type Json = any;

let srv: RunningServer;

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const res = await fetch(srv.url + path, {
    method,
    ...(body !== undefined
      ? { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }
      : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function register(id: string, service: string, extra: Record<string, unknown> = {}): Promise<void> {
  const r = await call("PUT", "/v1/catalog/instances", {
    id,
    service,
    address: "127.0.0.1",
    port: 20000 + Number(id.replace(/\D/g, "") || 0),
    proxy: { protocol: "http", upstreams: [] },
    ...extra,
  });
  expect(r.status, JSON.stringify(r.body)).toBeLessThan(300);
}

async function ttl(id: string, status: "passing" | "critical"): Promise<void> {
  const r = await call("PUT", `/v1/catalog/instances/${id}/checks/ttl`, {
    status,
    output: status === "critical" ? "GET /healthz: connection refused" : "ok",
  });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
}

async function explain(to: string, path = "/", headers: string[] = []): Promise<Json> {
  const params = new URLSearchParams([
    ["from", "web"],
    ["to", to],
    ["path", path],
    ...headers.map((h): [string, string] => ["header", h]),
  ]);
  const r = await call("GET", `/v1/explain?${params}`);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body;
}

const names = (b: Json): string[] => b.clusters.map((c: Json) => c.name);
const cluster = (b: Json, name: string): Json => b.clusters.find((c: Json) => c.name === name);

beforeAll(async () => {
  srv = await startServer({ listen: "127.0.0.1:0", storeSpec: "memory", dev: true, logger: silent });
  await register("web-1", "web", {
    proxy: { protocol: "http", upstreams: [{ service: "api", localPort: 9001 }] },
  });
  const check = { ttl: "30s", name: "app", status: "passing" };
  await register("api-1", "api", { meta: { version: "v1" }, checks: [check] });
  await register("api-2", "api", { meta: { version: "v2" }, checks: [check] });
  await ttl("api-1", "passing");
  await ttl("api-2", "passing");
  const r = await call("POST", "/v1/config/apply", {
    resources: [
      { kind: "Intention", name: "api", sources: [{ name: "web", action: "allow" }] },
      {
        kind: "Resolver",
        name: "api",
        subsets: { v1: { meta: { version: "v1" } }, v2: { meta: { version: "v2" } } },
        defaultSubset: "v1",
        failover: { targets: [{ subset: "v2" }] },
      },
      { kind: "Resolver", name: "legacy", redirect: { service: "api", subset: "v2" } },
      {
        kind: "Route",
        name: "api",
        routes: [
          {
            name: "canary",
            match: { pathPrefix: "/api/", headers: [{ name: "x-canary", exact: "1" }] },
            destination: { subset: "v2", rewrite: { prefix: "/v2/" }, timeout: "2s" },
          },
          { name: "old", match: { pathExact: "/old" }, redirect: { path: "/new", statusCode: 301 } },
          { match: { pathPrefix: "/teapot" }, directResponse: { status: 418, body: "short and stout" } },
        ],
      },
    ],
  });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
});
afterAll(async () => {
  await srv.close();
});

describe("routes", () => {
  it("a header match takes the first route: forward to api.v2 with the prefix rewritten and the route's timeout", async () => {
    const b = await explain("api", "/api/users?id=7", ["X-Canary: 1"]);
    expect(b.route.count).toBe(3);
    expect(b.route.tried).toEqual([
      {
        index: 0,
        name: "canary",
        description: 'route[0] "canary" (pathPrefix /api/, header x-canary exact "1")',
        matched: true,
      },
    ]);
    expect(b.route.taken).toMatchObject({
      index: 0,
      name: "canary",
      action: {
        kind: "forward",
        cluster: "api.v2",
        splits: null,
        path: "/v2/users?id=7",
        hostRewrite: null,
        timeoutMs: 2000,
        retries: null,
        fault: null,
        mirror: null,
      },
    });
    expect(names(b)).toEqual(["api.v2"]);
    expect(b.destination).toBe("api");
    expect(b.notes.routes).toBe(
      'route[0] "canary" (pathPrefix /api/, header x-canary exact "1") matched (first match wins): forwards to api.v2',
    );
  });

  it("without the header no route matches: each is listed as tried, the default cluster and its failover are listed", async () => {
    const b = await explain("api", "/api/users", ["x-canary: 2"]);
    expect(b.route.tried.map((t: Json) => [t.index, t.name, t.matched])).toEqual([
      [0, "canary", false],
      [1, "old", false],
      [2, null, false],
    ]);
    expect(b.route.taken).toBeNull();
    expect(b.listener.cluster).toBe("api.v1");
    expect(names(b)).toEqual(["api.v1", "api.v2"]);
    expect(b.notes.routes).toBe(
      "none of the 3 routes matched: the split or the default cluster takes the request",
    );
  });

  it("a redirect route: the Location is built from the request's Host, else the service name; no cluster is reached", async () => {
    const b = await explain("api", "/old?x=1");
    expect(b.route.tried.map((t: Json) => t.matched)).toEqual([false, true]);
    expect(b.route.taken).toMatchObject({
      index: 1,
      name: "old",
      action: { kind: "redirect", status: 301, location: "http://api/new?x=1" },
    });
    expect(b.clusters).toEqual([]);
    expect(b.notes.routes).toContain("the calling sidecar answers 301 with Location http://api/new?x=1");
    const withHost = await explain("api", "/old", ["host: api.internal:8080"]);
    expect(withHost.route.taken.action.location).toBe("http://api.internal:8080/new");
  });

  it("a direct response route, unnamed: the sidecar's status", async () => {
    const b = await explain("api", "/teapot/pot");
    expect(b.route.taken).toMatchObject({
      index: 2,
      name: null,
      description: "route[2] (pathPrefix /teapot)",
      action: { kind: "directResponse", status: 418 },
    });
    expect(b.notes.routes).toContain("answers 418 itself");
  });

  it("a path the sidecar refuses is not routed: no route tried, no cluster", async () => {
    const b = await explain("api", "/../etc");
    expect(b.route).toEqual({ count: 3, tried: [], taken: null });
    expect(b.clusters).toEqual([]);
    expect(b.decision).toMatchObject({ allow: false, code: "bad-path", status: 400 });
  });
});

describe("failover", () => {
  it("idle while api.v1 has a healthy instance; active while it has none; idle again when it recovers", async () => {
    const idle = await explain("api", "/x");
    expect(cluster(idle, "api.v1")).toMatchObject({ failover: ["api.v2"], servedBy: "api.v1", notes: [] });
    expect(cluster(idle, "api.v2")).toMatchObject({ failover: [], servedBy: "api.v2" });
    expect(idle.notes.failover).toBe(
      "configured, idle: api.v1 -> api.v2 (each has a healthy instance; traffic moves while it has none, and returns when it recovers)",
    );
    expect(idle.notes.outlier).toBe(
      "health here is the catalog's; outlier ejections, kept by each proxy, are not visible here (none configured for these clusters)",
    );

    await ttl("api-1", "critical");
    try {
      const active = await explain("api", "/x");
      const v1 = cluster(active, "api.v1");
      expect(v1).toMatchObject({ endpoints: [], servedBy: "api.v2" });
      expect(v1.excluded.map((x: Json) => x.id)).toEqual(["api-1"]);
      expect(v1.notes).toEqual(["no healthy instance: its traffic goes to api.v2 (failover)"]);
      expect(active.notes.failover).toBe(
        "cluster api.v1 has no healthy instance: its traffic goes to api.v2 (failover)",
      );
      expect(active.destination).toBe("api");

      await ttl("api-2", "critical");
      const dead = await explain("api", "/x");
      expect(cluster(dead, "api.v1").servedBy).toBe("api.v1");
      expect(cluster(dead, "api.v1").notes[0]).toBe(
        "no healthy instance, nor in its failover clusters (api.v2): the proxy answers 503 (UH)",
      );
      expect(dead.notes.failover).toContain(
        "api.v1 and all their failover clusters have no healthy instance: 503",
      );
    } finally {
      await ttl("api-1", "passing");
      await ttl("api-2", "passing");
    }
    const back = await explain("api", "/x");
    expect(cluster(back, "api.v1").servedBy).toBe("api.v1");
  });
});

describe("Resolver redirect", () => {
  it("calls to legacy go to api.v2, and are authorized by api's intention", async () => {
    const b = await explain("legacy", "/x");
    expect(b.listener).toMatchObject({ service: "legacy", cluster: "api.v2" });
    expect(b.route).toBeNull();
    expect(names(b)).toEqual(["api.v2"]);
    expect(b.destination).toBe("api");
    expect(b.decision).toMatchObject({ allow: true, code: "intention-allow" });
    expect(b.decision.reason).toBe('intention "api": source "web" allows');
    expect(b.notes.redirect).toBe("calls to legacy go to api.v2 (Resolver redirect)");
    expect(b.notes.authz).toBe('the request reaches "api": its sidecars authorize it by Intention "api"');
    expect(b.notes.routes).toBe('no Route "legacy": every request goes to the split or the default cluster');
  });
});

describe("locality failover", () => {
  it("is explained as the caller's registered instance sees it: its own zone first, then the next", async () => {
    await register("edge-1", "edge", {
      locality: { region: "r1", zone: "a" },
      proxy: { protocol: "http", upstreams: [{ service: "geo", localPort: 9002 }] },
    });
    await register("geo-1", "geo", { locality: { region: "r1", zone: "a" } });
    await register("geo-2", "geo", { locality: { region: "r1", zone: "b" } });
    const r = await call("POST", "/v1/config/apply", {
      resources: [
        { kind: "Intention", name: "geo", sources: [{ name: "edge", action: "allow" }] },
        { kind: "Resolver", name: "geo", failover: { targets: [{ locality: { region: "r1", zone: "b" } }] } },
      ],
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const q = new URLSearchParams([
      ["from", "edge"],
      ["to", "geo"],
    ]);
    const b = (await call("GET", `/v1/explain?${q}`)).body;
    expect(names(b)).toEqual(["geo~r1/a", "geo~r1/b"]);
    expect(cluster(b, "geo~r1/a")).toMatchObject({ failover: ["geo~r1/b"], servedBy: "geo~r1/a" });
    expect(cluster(b, "geo~r1/a").endpoints.map((e: Json) => e.id)).toEqual(["geo-1"]);
    expect(cluster(b, "geo~r1/b").endpoints.map((e: Json) => e.id)).toEqual(["geo-2"]);
  });
});

describe("outlier detection", () => {
  // Last: it changes api's ServiceDefaults.
  it("when configured, the note says its ejections are not visible here and fail over too", async () => {
    const r = await call("POST", "/v1/config/apply", {
      resources: [{ kind: "ServiceDefaults", name: "api", protocol: "http", outlierDetection: {} }],
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const b = await explain("api", "/x");
    expect(b.notes.outlier).toBe(
      "health here is the catalog's: outlier detection (api.v1, api.v2) ejects instances inside each proxy, which is not visible here; a cluster whose instances are all ejected fails over too",
    );
  });
});
