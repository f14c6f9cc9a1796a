/**
 * HTTP routes across real sidecars (issue #7): `web` calls `api` (replica a
 * in subset v1, replica b in subset v2, told apart by the `version` meta
 * their sidecars register) and, only through a route, `other`. Each test
 * applies a Route for `api` with `weft apply`, waits until the web sidecar's
 * snapshot carries it, then counts what the client got and what the apps
 * saw (e2e/apps/http-app.mjs: /inspect echoes method, url, Host, headers and
 * body; /_log counts the requests an app received).
 */
import { Agent } from "node:http";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { HttpOptions, HttpResult } from "./helpers/http.js";
import {
  type App,
  allowFrom,
  appLog,
  applyResources,
  applyRoutes,
  concurrently,
  httpOn,
  meshCleanup,
  metricSum,
  proxyMetrics,
  resetAppLog,
  type SidecarProc,
  startApp,
  startClientMesh,
  startProxy,
} from "./helpers/mesh.js";
import { startWeftServer, type WeftServer } from "./helpers/weft.js";

const FLAGS = "x-weft-response-flags";

let cp: WeftServer;
let web: SidecarProc;
let apiLocal: number;
const apps: Record<"a" | "b" | "o", App> = {} as Record<"a" | "b" | "o", App>;

beforeAll(async () => {
  cp = await startWeftServer({ store: "memory", dev: true });
  apiLocal = await freePort();
  await applyResources(cp.addr, [
    allowFrom("api"),
    allowFrom("other"),
    { kind: "ServiceDefaults", name: "api", protocol: "http" },
    { kind: "ServiceDefaults", name: "other", protocol: "http" },
    {
      kind: "Resolver",
      name: "api",
      subsets: { v1: { meta: { version: "v1" } }, v2: { meta: { version: "v2" } } },
    },
  ]);
  // `other` is no upstream of web: only a route's destination.service reaches it.
  const otherApp = await startApp("http-app.mjs", { env: { NAME: "other", REPLICA: "o" } });
  const [mesh] = await Promise.all([
    startClientMesh(
      cp.addr,
      [
        { service: "api", replica: "a", script: "http-app.mjs", meta: { version: "v1" }, env: { SEED: "7" } },
        { service: "api", replica: "b", script: "http-app.mjs", meta: { version: "v2" }, env: { SEED: "8" } },
      ],
      { api: apiLocal },
    ),
    startProxy({
      service: "other",
      appPort: otherApp.port,
      protocol: "http",
      health: { http: "/healthz" },
      server: cp.addr,
    }),
  ]);
  web = mesh.web;
  apps.a = mesh.apps.get("a") as App;
  apps.b = mesh.apps.get("b") as App;
  apps.o = otherApp;
}, 60_000);

afterAll(async () => {
  agent.destroy();
  await meshCleanup();
});

beforeEach(async () => {
  await Promise.all(Object.values(apps).map(resetAppLog));
});

/** Routes for calls to `api`, applied and seen by the web sidecar. */
const setRoutes = (routes: Record<string, unknown>[]) => applyRoutes(cp.addr, web.adminPort, "api", routes);

/** Keep-alive, 8 sockets: the loops below run 8 requests at a time. */
const agent = new Agent({ keepAlive: true, maxSockets: 8 });

/** One request to `api` through the web sidecar. */
const call = (path: string, opts: HttpOptions = {}): Promise<HttpResult> =>
  httpOn(agent, apiLocal, path, { timeoutMs: 10_000, ...opts });

/** Counts of `key(result)` over results. */
function tally<T>(results: T[], key: (r: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) {
    const k = key(r);
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

const replicaOf = (r: HttpResult): string =>
  r.status === 200 ? String(r.body?.replica) : `status ${r.status}`;

const seenBy = async (...names: ("a" | "b" | "o")[]): Promise<number> => {
  let n = 0;
  for (const name of names) n += (await appLog(apps[name])).seen;
  return n;
};

describe("route matches", () => {
  it("a header match sends to subset v2, every other request to v1 (200 requests each way)", async () => {
    await setRoutes([
      {
        name: "canary-header",
        match: { headers: [{ name: "x-canary", exact: "1" }] },
        destination: { subset: "v2" },
      },
      { name: "stable", destination: { subset: "v1" } },
    ]);
    const N = 200;
    const withHeader = await concurrently(N, () => call("/whoami", { headers: { "x-canary": "1" } }));
    const wrongValue = await concurrently(N / 2, () => call("/whoami", { headers: { "x-canary": "2" } }));
    const without = await concurrently(N / 2, () => call("/whoami"));
    const counts = {
      withHeader: tally(withHeader, replicaOf),
      wrongValue: tally(wrongValue, replicaOf),
      without: tally(without, replicaOf),
    };
    console.log(`header match: ${JSON.stringify(counts)}`);
    expect(counts).toEqual({ withHeader: { b: N }, wrongValue: { a: N / 2 }, without: { a: N / 2 } });
    expect(await seenBy("b")).toBe(N);
    expect(await seenBy("a")).toBe(N);
  }, 60_000);

  it("query parameter, method, path regex and header prefix/regex/present/invert matches pick their route", async () => {
    await setRoutes([
      { name: "beta-query", match: { query: [{ name: "beta", exact: "1" }] }, destination: { subset: "v2" } },
      { name: "deletes", match: { methods: ["DELETE"] }, destination: { subset: "v2" } },
      { name: "items", match: { pathRegex: "/inspect/items/[0-9]+" }, destination: { subset: "v2" } },
      {
        name: "header-kinds",
        match: {
          headers: [
            { name: "x-tenant", prefix: "gold-" },
            { name: "x-build", regex: "[0-9]+\\.[0-9]+" },
            { name: "x-trace", present: true },
            { name: "x-block", present: true, invert: true },
          ],
        },
        destination: { subset: "v2" },
      },
      { name: "rest", destination: { subset: "v1" } },
    ]);
    const gold = { "x-tenant": "gold-7", "x-build": "2.14", "x-trace": "t1" };
    const cases: [string, string, string, Record<string, string>?][] = [
      ["GET", "/inspect/q?beta=1", "b"],
      ["GET", "/inspect/q?x=y&beta=1", "b"],
      ["GET", "/inspect/q?beta=2", "a"],
      ["GET", "/inspect/q?betax=1", "a"],
      ["DELETE", "/inspect/d", "b"],
      ["POST", "/inspect/d", "a"],
      ["GET", "/inspect/d", "a"],
      ["GET", "/inspect/items/42", "b"],
      // A path regex matches the whole path.
      ["GET", "/inspect/items/42x", "a"],
      ["GET", "/inspect/h", "b", gold],
      ["GET", "/inspect/h", "a", { ...gold, "x-tenant": "silver-7" }],
      ["GET", "/inspect/h", "a", { ...gold, "x-build": "2.x" }],
      ["GET", "/inspect/h", "a", { "x-tenant": "gold-7", "x-build": "2.14" }],
      ["GET", "/inspect/h", "a", { ...gold, "x-block": "1" }],
    ];
    const per = 20;
    const key = ([m, p, want, h]: (typeof cases)[number]) =>
      `${m} ${p} ${JSON.stringify(h ?? {})} -> ${want}`;
    const results = await concurrently(cases.length * per, async (i) => {
      const c = cases[i % cases.length] as (typeof cases)[number];
      const r = await call(c[1], { method: c[0], headers: c[3] ?? {} });
      return replicaOf(r) === c[2] ? key(c) : `${key(c)} but got ${replicaOf(r)}`;
    });
    const counts = tally(results, (r) => r);
    console.log(`matches: ${JSON.stringify(counts)}`);
    expect(counts).toEqual(Object.fromEntries(cases.map((c) => [key(c), per])));
  }, 60_000);
});

describe("route actions", () => {
  it("a prefix rewrite keeps the query; a host rewrite changes the Host the app sees", async () => {
    await setRoutes([
      { name: "old-api", match: { pathPrefix: "/old/" }, destination: { rewrite: { prefix: "/inspect/" } } },
      {
        name: "host",
        match: { pathPrefix: "/inspect/host" },
        destination: { rewrite: { host: "api.internal.example" } },
      },
    ]);
    const N = 40;
    const rewritten = await concurrently(N, (i) => call(`/old/books/${i}?x=1&y=two%20words`));
    const hosted = await concurrently(N, () => call("/inspect/host/h?k=v"));
    const plain = await concurrently(N, () => call("/inspect/plain"));
    const urls = tally(rewritten, (r) => `${r.status} ${String(r.body?.url).replace(/\/\d+\?/, "/N?")}`);
    const hosts = tally(hosted, (r) => `${r.status} ${r.body?.host} ${r.body?.url}`);
    const plainHosts = tally(plain, (r) => `${r.status} ${r.body?.host}`);
    console.log(`rewrites: ${JSON.stringify({ urls, hosts, plainHosts })}`);
    expect(urls).toEqual({ "200 /inspect/books/N?x=1&y=two%20words": N });
    expect(rewritten.every((r, i) => r.body.url === `/inspect/books/${i}?x=1&y=two%20words`)).toBe(true);
    expect(hosts).toEqual({ "200 api.internal.example /inspect/host/h?k=v": N });
    // Without the host rewrite the app sees the Host the client sent.
    expect(plainHosts).toEqual({ [`200 127.0.0.1:${apiLocal}`]: N });
  }, 60_000);

  it("request header add/set/remove reach the app; response header set/remove reach the client", async () => {
    await setRoutes([
      {
        name: "headers",
        match: { pathPrefix: "/inspect/h" },
        destination: {
          requestHeaders: {
            add: { "x-added": "by-route", "x-new": "fresh" },
            set: { "x-set": "route-value" },
            remove: ["x-drop"],
          },
          responseHeaders: {
            set: { "x-served-by": "route", "cache-control": "no-store" },
            remove: ["content-type"],
          },
        },
      },
    ]);
    const N = 50;
    const sent = { "x-added": "client", "x-set": "client-value", "x-drop": "secret", "x-keep": "kept" };
    const routed = await concurrently(N, () => call("/inspect/h", { headers: sent }));
    const other = await concurrently(N, () => call("/inspect/other", { headers: sent }));
    const seen = tally(routed, (r) => {
      const h = r.body?.headers ?? {};
      return JSON.stringify({
        status: r.status,
        app: [h["x-added"], h["x-new"], h["x-set"], h["x-drop"] ?? "-", h["x-keep"]],
        client: [r.headers["x-served-by"], r.headers["cache-control"], r.headers["content-type"] ?? "-"],
      });
    });
    console.log(`header ops: ${JSON.stringify(seen)}`);
    expect(seen).toEqual({
      [JSON.stringify({
        status: 200,
        app: ["client, by-route", "fresh", "route-value", "-", "kept"],
        client: ["route", "no-store", "-"],
      })]: N,
    });
    // Requests taking no route are left alone.
    const untouched = tally(other, (r) =>
      JSON.stringify([
        r.status,
        r.body?.headers?.["x-drop"],
        r.body?.headers?.["x-set"],
        r.headers["x-served-by"] ?? "-",
        r.headers["content-type"],
      ]),
    );
    expect(untouched).toEqual({
      [JSON.stringify([200, "secret", "client-value", "-", "application/json"])]: N,
    });
  }, 60_000);

  it("a redirect answers its status and Location without reaching the app", async () => {
    await setRoutes([
      {
        name: "moved-page",
        match: { pathExact: "/old-page" },
        redirect: { path: "/new-page", statusCode: 301 },
      },
      {
        name: "moved-tree",
        match: { pathPrefix: "/legacy/" },
        redirect: { host: "new.example", prefixRewrite: "/modern/", statusCode: 308 },
      },
    ]);
    const N = 40;
    const page = await concurrently(N, () => call("/old-page?x=1", { headers: { host: "api" } }));
    const tree = await concurrently(N, (i) => call(`/legacy/a/${i}?q=2`, { headers: { host: "api:8080" } }));
    const pageCounts = tally(page, (r) => `${r.status} ${r.headers.location}`);
    console.log(
      `redirects: ${JSON.stringify(pageCounts)}, tree[0] ${tree[0]?.status} ${tree[0]?.headers.location}`,
    );
    expect(pageCounts).toEqual({ "301 http://api/new-page?x=1": N });
    expect(
      tree.every((r, i) => r.status === 308 && r.headers.location === `http://new.example/modern/a/${i}?q=2`),
    ).toBe(true);
    expect(await seenBy("a", "b")).toBe(0);
  }, 60_000);

  it("a direct response returns its status, body and headers and never reaches the app", async () => {
    await setRoutes([
      {
        name: "maintenance",
        match: { pathPrefix: "/inspect/maint" },
        directResponse: {
          status: 503,
          body: "down for maintenance\n",
          headers: { "retry-after": "120", "x-direct": "yes" },
        },
      },
    ]);
    const N = 100;
    const before = await seenBy("a", "b");
    const r = await concurrently(N, (i) =>
      call(`/inspect/maint/${i}`, { method: i % 2 ? "POST" : "GET", body: i % 2 ? "x" : undefined }),
    );
    const counts = tally(r, (x) =>
      JSON.stringify([
        x.status,
        x.text,
        x.headers["retry-after"],
        x.headers["x-direct"],
        x.headers["content-type"],
      ]),
    );
    console.log(`direct response: ${JSON.stringify(counts)}`);
    expect(counts).toEqual({
      [JSON.stringify([503, "down for maintenance\n", "120", "yes", "text/plain; charset=utf-8"])]: N,
    });
    expect(await seenBy("a", "b")).toBe(before);
    // The rest of the service is still served.
    expect((await call("/inspect/ok")).status).toBe(200);
    expect(await seenBy("a", "b")).toBe(before + 1);
  }, 60_000);

  it("the first matching route wins, in declared order", async () => {
    const general = { name: "general", match: { pathPrefix: "/inspect/" }, destination: { subset: "v2" } };
    const specific = {
      name: "specific",
      match: { pathPrefix: "/inspect/x" },
      directResponse: { status: 418, body: "teapot" },
    };
    const N = 50;
    await setRoutes([general, specific]);
    const generalFirst = tally(await concurrently(N, () => call("/inspect/x/1")), replicaOf);
    await setRoutes([specific, general]);
    const specificFirst = tally(await concurrently(N, () => call("/inspect/x/1")), replicaOf);
    const elsewhere = tally(await concurrently(N, () => call("/inspect/y/1")), replicaOf);
    console.log(`declared order: ${JSON.stringify({ generalFirst, specificFirst, elsewhere })}`);
    expect(generalFirst).toEqual({ b: N });
    expect(specificFirst).toEqual({ "status 418": N });
    expect(elsewhere).toEqual({ b: N });
  }, 60_000);
});

describe("per-route resilience", () => {
  it("a 300 ms route timeout answers 504 (flag UT) while other routes wait for a slow app", async () => {
    await setRoutes([
      { name: "slow-capped", match: { pathPrefix: "/slow" }, destination: { timeout: "300ms" } },
      { name: "rest", destination: { subset: "v1" } },
    ]);
    const ut = async () =>
      metricSum(await proxyMetrics(web.adminPort), "weft_proxy_requests_total", {
        direction: "outbound",
        destination_service: "api",
        response_flags: "UT",
      });
    // The same requests by route and method class, and in the timeouts counter.
    const byRoute = async () =>
      metricSum(await proxyMetrics(web.adminPort), "weft_proxy_requests_total", {
        direction: "outbound",
        route: "slow-capped",
        method_class: "safe",
        response_flags: "UT",
      });
    const timeouts = async () =>
      metricSum(await proxyMetrics(web.adminPort), "weft_proxy_timeouts_total", {
        direction: "outbound",
        destination_service: "api",
      });
    const utBefore = await ut();
    const routeBefore = await byRoute();
    const timeoutsBefore = await timeouts();
    const N = 24;
    const capped = await concurrently(N, async () => {
      const t0 = Date.now();
      const r = await call("/slow?ms=2000");
      return { status: r.status, flags: r.headers[FLAGS], ms: Date.now() - t0 };
    });
    // Not under the route: the app's 700 ms answer arrives.
    const uncapped = await concurrently(8, () => call("/inspect/u?delay=700"));
    const counts = tally(capped, (r) => `${r.status} ${r.flags}`);
    const maxMs = Math.max(...capped.map((r) => r.ms));
    const utCounted = (await ut()) - utBefore;
    console.log(
      `route timeout 300ms on /slow (app 2 s): ${JSON.stringify(counts)}, slowest ${maxMs} ms, ` +
        `UT counted ${utCounted}; other route with 700 ms app: ${JSON.stringify(tally(uncapped, (r) => String(r.status)))}`,
    );
    expect(counts).toEqual({ "504 UT": N });
    expect(maxMs).toBeLessThan(2_000);
    expect(capped.every((r) => r.ms >= 290)).toBe(true);
    expect(utCounted).toBe(N);
    expect((await byRoute()) - routeBefore).toBe(N);
    expect((await timeouts()) - timeoutsBefore).toBe(N);
    expect(tally(uncapped, (r) => String(r.status))).toEqual({ "200": 8 });
  }, 60_000);

  it("a 300 ms route idle timeout cuts a silent response with 504 (flag UT)", async () => {
    await setRoutes([
      { name: "idle-capped", match: { pathPrefix: "/slow" }, destination: { idleTimeout: "300ms" } },
    ]);
    const r = await concurrently(8, async () => {
      const t0 = Date.now();
      const x = await call("/slow?ms=1500");
      return { status: x.status, flags: x.headers[FLAGS], ms: Date.now() - t0 };
    });
    console.log(
      `route idle timeout 300ms, app silent 1.5 s: ${JSON.stringify(tally(r, (x) => `${x.status} ${x.flags}`))}`,
    );
    expect(tally(r, (x) => `${x.status} ${x.flags}`)).toEqual({ "504 UT": 8 });
    expect(Math.max(...r.map((x) => x.ms))).toBeLessThan(1_500);
  }, 60_000);

  it("a route's retry policy on 5xx turns 30% injected 503s into ≥ 99% success", async () => {
    // 5 retries, not 3: with 3, a request fails when 4 tries in a row do
    // (0.3^4 = 0.81%), so "≥ 99% of 300" would miss about one run in four by
    // chance alone; with 5 (0.3^6 = 0.07%) the bound holds without flaking.
    const retries = {
      numRetries: 5,
      retryOn: ["5xx"],
      backoff: { baseInterval: "1ms", maxInterval: "5ms" },
      budget: { percent: 100, minRetriesPerSecond: 100 },
    };
    await setRoutes([
      {
        name: "flaky-retried",
        match: { pathPrefix: "/inspect/retried" },
        destination: { subset: "v1", retries },
      },
      { name: "flaky-bare", match: { pathPrefix: "/inspect/bare" }, destination: { subset: "v1" } },
    ]);
    const N = 300;
    const bare = await concurrently(N, () => call("/inspect/bare?fail=30"));
    const bareSeen = await seenBy("a");
    await resetAppLog(apps.a);
    const retried = await concurrently(N, () => call("/inspect/retried?fail=30"));
    const retriedSeen = await seenBy("a");
    const bareOk = bare.filter((r) => r.status === 200).length;
    const ok = retried.filter((r) => r.status === 200).length;
    console.log(
      `app failing 30%: without a route retry ${bareOk}/${N} ok (${bareSeen} upstream); ` +
        `with retries ${ok}/${N} ok, statuses ${JSON.stringify(tally(retried, (r) => String(r.status)))}, ` +
        `${retriedSeen} requests upstream`,
    );
    expect(bareOk).toBeLessThan(N * 0.85);
    expect(bareSeen).toBe(N);
    expect(ok).toBeGreaterThanOrEqual(N * 0.99);
    expect(retriedSeen).toBeGreaterThan(N * 1.2);
  }, 60_000);
});

describe("routes to another service", () => {
  it("destination.service sends matching requests to `other`, the rest to `api`", async () => {
    await setRoutes([
      { name: "to-other", match: { pathPrefix: "/inspect/other" }, destination: { service: "other" } },
    ]);
    const N = 60;
    const routed = await concurrently(N, () => call("/inspect/other/x"));
    const rest = await concurrently(N, () => call("/inspect/api"));
    const counts = {
      routed: tally(routed, (r) => `${r.status} ${r.body?.service}`),
      rest: tally(rest, (r) => `${r.status} ${r.body?.service}`),
    };
    console.log(`destination.service: ${JSON.stringify(counts)}`);
    expect(counts).toEqual({ routed: { "200 other": N }, rest: { "200 api": N } });
    expect(await seenBy("o")).toBe(N);
    expect(await seenBy("a", "b")).toBe(N);
  }, 60_000);
});
