/**
 * `GET /v1/explain` over real loopback HTTP against startServer (memory
 * store): query validation, the decision and its rule for allowed, denied,
 * L7 and refused-path requests, a split with subsets and a critical
 * instance, and the ACL.
 */
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningServer, startServer } from "../server.js";
import { MemoryStore } from "../store/memory.js";

const silent = pino({ level: "silent" });

// biome-ignore lint/suspicious/noExplicitAny: JSON bodies are probed field by field in assertions.
type Json = any;

let srv: RunningServer;

async function call(
  method: string,
  path: string,
  body?: unknown,
  token?: string,
  base = srv.url,
): Promise<{ status: number; body: Json }> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(base + path, {
    method,
    headers,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function apply(resources: unknown[]): Promise<void> {
  const r = await call("POST", "/v1/config/apply", { resources });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
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

function explainUrl(params: [string, string][]): string {
  return `/v1/explain?${new URLSearchParams(params)}`;
}

beforeAll(async () => {
  srv = await startServer({ listen: "127.0.0.1:0", storeSpec: "memory", dev: true, logger: silent });
  await register("web-1", "web", {
    proxy: { protocol: "http", upstreams: [{ service: "api", localPort: 9001 }] },
  });
  await register("api-1", "api", { meta: { version: "v1" } });
  await register("api-2", "api", { meta: { version: "v1" } });
  await register("api-3", "api", {
    meta: { version: "v2" },
    checks: [{ ttl: "30s", name: "app", status: "critical" }],
  });
  const hb = await call("PUT", "/v1/catalog/instances/api-3/checks/ttl", {
    status: "critical",
    output: "GET /healthz: connection refused",
  });
  expect(hb.status).toBe(200);
  await register("adm-1", "admin");
  await register("bad-1", "stranger");
});
afterAll(async () => {
  await srv.close();
});

describe("query validation", () => {
  it.each([
    ["missing from", [["to", "api"]], "from", "required"],
    ["missing to", [["from", "web"]], "to", "required"],
    [
      "a bad service name",
      [
        ["from", "Web!"],
        ["to", "api"],
      ],
      "from",
      "not a service name",
    ],
    [
      "an unknown parameter",
      [
        ["from", "web"],
        ["to", "api"],
        ["heder", "x:y"],
      ],
      "heder",
      "unknown parameter",
    ],
    [
      "a repeated from",
      [
        ["from", "web"],
        ["from", "x"],
        ["to", "api"],
      ],
      "from",
      "more than once",
    ],
    [
      "a bad method",
      [
        ["from", "web"],
        ["to", "api"],
        ["method", "GE T"],
      ],
      "method",
      "not an HTTP method",
    ],
    [
      "a header without a colon",
      [
        ["from", "web"],
        ["to", "api"],
        ["header", "x-a"],
      ],
      "header",
      "name:value",
    ],
    [
      "a bad header name",
      [
        ["from", "web"],
        ["to", "api"],
        ["header", "x a:1"],
      ],
      "header",
      "not a header name",
    ],
    [
      "an empty path",
      [
        ["from", "web"],
        ["to", "api"],
        ["path", ""],
      ],
      "path",
      "1-8192",
    ],
  ] as [string, [string, string][], string, string][])(
    "%s is a 400 naming the parameter",
    async (_n, params, param, words) => {
      const r = await call("GET", explainUrl(params));
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe("WEFT_ERR_BAD_QUERY");
      expect(r.body.error.message).toContain(`"${param}"`);
      expect(r.body.error.message).toContain(words);
    },
  );
});

describe("decisions", () => {
  beforeAll(async () => {
    await apply([
      {
        kind: "Intention",
        name: "api",
        sources: [
          { name: "web", action: "allow" },
          {
            name: "admin",
            permissions: [
              { action: "deny", http: { pathPrefix: "/admin", methods: ["DELETE"] } },
              { action: "allow", http: { pathPrefix: "/public", methods: ["GET"] } },
              { action: "allow", http: { pathExact: "/debug", headers: [{ name: "x-debug", exact: "1" }] } },
            ],
          },
        ],
      },
    ]);
  });

  it("an allowed source: the intention's rule, no status", async () => {
    const r = await call(
      "GET",
      explainUrl([
        ["from", "web"],
        ["to", "api"],
        ["path", "/x"],
      ]),
    );
    expect(r.status).toBe(200);
    expect(r.body.decision).toMatchObject({
      allow: true,
      code: "intention-allow",
      reason: 'intention "api": source "web" allows',
      status: null,
      level: "http",
      intention: true,
      rule: { kind: "source-action", source: "web", action: "allow" },
    });
  });

  it("a source no intention names: denied by the default policy, with the 403 reason", async () => {
    const r = await call(
      "GET",
      explainUrl([
        ["from", "stranger"],
        ["to", "api"],
      ]),
    );
    expect(r.body.decision).toMatchObject({ allow: false, code: "default-deny", status: 403 });
    expect(r.body.decision.reason).toContain('names neither "stranger" nor "*"');
    expect(r.body.decision.rule).toEqual({ kind: "default", action: "deny" });
  });

  it("L7 permissions: GET /public allowed by permission[1], POST matches none, each permission tried is listed", async () => {
    const get = await call(
      "GET",
      explainUrl([
        ["from", "admin"],
        ["to", "api"],
        ["path", "/public/a"],
      ]),
    );
    expect(get.body.decision).toMatchObject({
      allow: true,
      code: "permission-allow",
      rule: { kind: "permission", source: "admin", index: 1, action: "allow" },
    });
    expect(get.body.decision.permissions.map((p: Json) => p.matches)).toEqual([false, true, false]);

    const post = await call(
      "GET",
      explainUrl([
        ["from", "admin"],
        ["to", "api"],
        ["path", "/public/a"],
        ["method", "post"],
      ]),
    );
    expect(post.body.request.method).toBe("POST");
    expect(post.body.decision).toMatchObject({
      allow: false,
      code: "no-permission-matched",
      status: 403,
      rule: { kind: "no-permission-matched", source: "admin" },
    });
    expect(post.body.decision.reason).toContain("no permission matches POST /public/a");
  });

  it("headers are matched: x-debug:1 allows /debug, another value does not", async () => {
    const base: [string, string][] = [
      ["from", "admin"],
      ["to", "api"],
      ["path", "/debug"],
    ];
    const yes = await call("GET", explainUrl([...base, ["header", "X-Debug: 1"]]));
    expect(yes.body.request.headers).toEqual({ "x-debug": "1" });
    expect(yes.body.decision.rule).toMatchObject({ kind: "permission", index: 2 });
    const no = await call("GET", explainUrl([...base, ["header", "x-debug:2"]]));
    expect(no.body.decision.allow).toBe(false);
  });

  it("the path is canonicalized first: //x/../admin is /admin; a path above the root is the proxy's 400", async () => {
    const c = await call(
      "GET",
      explainUrl([
        ["from", "admin"],
        ["to", "api"],
        ["path", "//x/../admin?q=1"],
        ["method", "DELETE"],
      ]),
    );
    expect(c.body.path).toEqual({ ok: true, path: "/admin", query: "?q=1", changed: true });
    expect(c.body.decision).toMatchObject({ allow: false, code: "permission-deny", rule: { index: 0 } });
    const bad = await call(
      "GET",
      explainUrl([
        ["from", "web"],
        ["to", "api"],
        ["path", "/../etc"],
      ]),
    );
    expect(bad.body.path.ok).toBe(false);
    expect(bad.body.decision).toMatchObject({ allow: false, code: "bad-path", status: 400 });
  });
});

describe("listener, split and clusters", () => {
  it("a split lists both subsets with weights, their candidates, and the critical instance left out with its check output", async () => {
    await apply([
      {
        kind: "Resolver",
        name: "api",
        subsets: { v1: { meta: { version: "v1" } }, v2: { meta: { version: "v2" } } },
        failover: { targets: [{ subset: "v1" }] },
      },
      {
        kind: "Split",
        name: "api",
        splits: [
          { weight: 90, subset: "v1" },
          { weight: 10, subset: "v2" },
        ],
      },
      { kind: "ServiceDefaults", name: "api", protocol: "http", timeouts: { request: "3s" } },
    ]);
    const r = await call(
      "GET",
      explainUrl([
        ["from", "web"],
        ["to", "api"],
      ]),
    );
    expect(r.status).toBe(200);
    const b = r.body;
    expect(b.listener).toMatchObject({ service: "api", protocol: "http", cluster: "api" });
    expect(b.listener.split).toEqual({
      targets: [
        { cluster: "api.v1", weight: 90 },
        { cluster: "api.v2", weight: 10 },
      ],
      choice: "random per request, by weight",
    });
    expect(b.clusters.map((c: Json) => c.name)).toEqual(["api", "api.v1", "api.v2"]);
    const [all, v1, v2] = b.clusters;
    expect(all.endpoints.map((e: Json) => e.id)).toEqual(["api-1", "api-2"]);
    expect(v1).toMatchObject({ subset: "v1", subsetFilter: { meta: { version: "v1" } }, excluded: [] });
    expect(v1.endpoints.map((e: Json) => e.id)).toEqual(["api-1", "api-2"]);
    expect(v1.requestTimeoutMs).toBe(3000);
    expect(v1.connectTimeoutMs).toBe(5000);
    expect(v2.endpoints).toEqual([]);
    expect(v2.excluded).toHaveLength(1);
    expect(v2.excluded[0]).toMatchObject({ id: "api-3", status: "critical" });
    expect(v2.excluded[0].checks[0]).toMatchObject({
      status: "critical",
      output: "GET /healthz: connection refused",
    });
    expect(v2.notes).toEqual(["no healthy instance: its traffic goes to api.v1 (failover)"]);
    expect(v2).toMatchObject({ failover: ["api.v1"], servedBy: "api.v1" });
    expect(b.route).toBeNull();
    expect(b.notes.routes).toBe('no Route "api": every request goes to the split or the default cluster');
    expect(b.notes.failover).toBe(
      "cluster api.v2 has no healthy instance: its traffic goes to api.v1 (failover)",
    );
    expect(b.notes.source).toContain('1 of 1 registered "web" instances declare "api"');
  });

  it("a source with no registered instance is still explained, and says so", async () => {
    const r = await call(
      "GET",
      explainUrl([
        ["from", "ghost"],
        ["to", "api"],
      ]),
    );
    expect(r.status).toBe(200);
    expect(r.body.notes.source).toContain('no instance of "ghost" is registered');
  });
});

describe("ACL", () => {
  let secured: RunningServer;
  beforeAll(async () => {
    secured = await startServer({ listen: "127.0.0.1:0", store: new MemoryStore(), logger: silent });
  });
  afterAll(async () => {
    await secured.close();
  });

  it("needs service:<to>:read: another service's read token is a 403, the destination's is a 200", async () => {
    const root = secured.bootstrapToken as string;
    const mk = async (policy: string) =>
      (await call("POST", "/v1/acl/tokens", { policies: [policy] }, root, secured.url)).body
        .secretId as string;
    const url = explainUrl([
      ["from", "web"],
      ["to", "api"],
    ]);
    expect((await call("GET", url, undefined, undefined, secured.url)).status).toBe(401);
    const other = await call("GET", url, undefined, await mk("service:web:read"), secured.url);
    expect(other.status).toBe(403);
    expect(other.body.error.code).toBe("WEFT_ERR_PERMISSION_DENIED");
    const own = await call("GET", url, undefined, await mk("service:api:read"), secured.url);
    expect(own.status).toBe(200);
    expect(own.body.decision.code).toBe("default-deny");
  });
});
