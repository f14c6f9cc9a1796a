/**
 * The HTTP API over real loopback HTTP, against startServer with a MemoryStore.
 */
import { request as httpRequest } from "node:http";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningServer, startServer } from "../server.js";
import { MemoryStore } from "../store/memory.js";

const silent = pino({ level: "silent" });

// biome-ignore lint/suspicious/noExplicitAny: JSON bodies are probed field by field in assertions.
type Json = any;

interface Res {
  status: number;
  body: Json;
  headers: Headers;
}

let srv: RunningServer;
let root: string;

async function call(
  method: string,
  path: string,
  opts: {
    token?: string | undefined;
    body?: unknown;
    raw?: string;
    headers?: Record<string, string>;
    signal?: AbortSignal;
  } = {},
): Promise<Res> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined && !("content-type" in headers)) headers["content-type"] = "application/json";
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = body;
  if (opts.signal) init.signal = opts.signal;
  const res = await fetch(srv.url + path, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

async function mkToken(policies: string[]): Promise<string> {
  const r = await call("POST", "/v1/acl/tokens", {
    token: root,
    body: { policies, description: policies.join(",") },
  });
  expect(r.status).toBe(200);
  return r.body.secretId as string;
}

const instance = (id: string, service: string, extra: Record<string, unknown> = {}) => ({
  id,
  service,
  address: "10.0.0.1",
  port: 8080,
  checks: [{ ttl: "30s" }],
  ...extra,
});

beforeAll(async () => {
  srv = await startServer({ listen: "127.0.0.1:0", store: new MemoryStore(), logger: silent });
  root = srv.bootstrapToken as string;
});
afterAll(async () => {
  await srv.close();
});

describe("status and bootstrap", () => {
  it("answers /v1/status without a token", async () => {
    const r = await call("GET", "/v1/status");
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ version: expect.any(String), backend: "memory", dev: false });
    expect(Number(r.headers.get("x-weft-index"))).toBe(r.body.revision);
  });

  it("bootstraps one operator token, shown once", async () => {
    expect(root).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const self = await call("GET", "/v1/acl/token/self", { token: root });
    expect(self.body.policies).toEqual(["operator"]);
    const list = await call("GET", "/v1/acl/tokens", { token: root });
    expect(JSON.stringify(list.body)).not.toContain(root);
    expect(JSON.stringify(list.body)).not.toMatch(/secret/i);
  });

  it("also accepts X-Weft-Token", async () => {
    const r = await call("GET", "/v1/acl/token/self", { headers: { "x-weft-token": root } });
    expect(r.status).toBe(200);
  });
});

describe("catalog over HTTP", () => {
  it("registers with a TTL check, heartbeats, lists and filters discovery", async () => {
    const a = await call("PUT", "/v1/catalog/instances", { token: root, body: instance("cat-1", "cat") });
    expect(a.status).toBe(201);
    expect(a.body).toMatchObject({ id: "cat-1", status: "critical" });
    expect(Number(a.headers.get("x-weft-index"))).toBe(a.body.modifyIndex);
    const again = await call("PUT", "/v1/catalog/instances", { token: root, body: instance("cat-1", "cat") });
    expect(again.status).toBe(200);
    await call("PUT", "/v1/catalog/instances", { token: root, body: instance("cat-2", "cat") });
    const gen = await call("PUT", "/v1/catalog/instances", {
      token: root,
      body: { service: "cat", address: "10.0.0.9", port: 1, checks: [] },
    });
    expect(gen.status).toBe(201);
    expect(gen.body.id).toMatch(/^[0-9a-f-]{36}$/);

    let d = await call("GET", "/v1/health/service/cat", { token: root });
    expect(d.body.instances.map((i: { id: string }) => i.id)).toEqual([gen.body.id]);
    const hb = await call("PUT", "/v1/catalog/instances/cat-1/checks/ttl", {
      token: root,
      body: { status: "passing", output: "ok" },
    });
    expect(hb.status).toBe(200);
    expect(hb.body).toMatchObject({ id: "ttl", status: "passing", output: "ok" });
    await call("PUT", "/v1/catalog/instances/cat-2/checks/ttl", { token: root, body: { status: "warning" } });

    d = await call("GET", "/v1/health/service/cat", { token: root });
    expect(d.body.instances.map((i: { id: string }) => i.id).sort()).toEqual(["cat-1", gen.body.id].sort());
    expect(d.body.index).toBe(Number(d.headers.get("x-weft-index")));
    d = await call("GET", "/v1/health/service/cat?status=warning", { token: root });
    expect(d.body.instances).toHaveLength(3);
    d = await call("GET", "/v1/health/service/cat?status=any", { token: root });
    expect(d.body.instances).toHaveLength(3);

    const svcs = await call("GET", "/v1/catalog/services", { token: root });
    expect(svcs.body.find((s: { name: string }) => s.name === "cat")).toMatchObject({
      instances: 3,
      passing: 2,
      warning: 1,
      critical: 0,
    });
    const one = await call("GET", "/v1/catalog/instances/cat-2", { token: root });
    expect(one.body).toMatchObject({ id: "cat-2", status: "warning" });
    const del = await call("DELETE", "/v1/catalog/instances/cat-2", { token: root });
    expect(del).toMatchObject({ status: 200, body: { deleted: true } });
    expect((await call("DELETE", "/v1/catalog/instances/cat-2", { token: root })).status).toBe(404);
    expect((await call("GET", "/v1/catalog/instances/cat-2", { token: root })).body.error.code).toBe(
      "WEFT_ERR_NOT_FOUND",
    );
  });
});

describe("deregistering a service", () => {
  it("removes all its instances at once, only with write on that service", async () => {
    for (const id of ["sv-1", "sv-2"])
      await call("PUT", "/v1/catalog/instances", { token: root, body: instance(id, "gone") });
    await call("PUT", "/v1/catalog/instances", { token: root, body: instance("sv-3", "stays") });
    const other = await call("DELETE", "/v1/catalog/services/gone", {
      token: await mkToken(["service:stays:write"]),
    });
    expect(other.status).toBe(403);
    expect(other.body.error.code).toBe("WEFT_ERR_PERMISSION_DENIED");
    const goneWriter = await mkToken(["service:gone:write"]);
    const revBefore = (await call("GET", "/v1/status")).body.revision;
    const del = await call("DELETE", "/v1/catalog/services/gone", { token: goneWriter });
    expect(del).toMatchObject({ status: 200, body: { deleted: 2 } });
    expect((await call("GET", "/v1/status")).body.revision).toBe(revBefore + 1); // one transaction
    const d = await call("GET", "/v1/health/service/gone?status=any", { token: root });
    expect(d.body.instances).toEqual([]);
    expect((await call("GET", "/v1/catalog/instances/sv-1", { token: root })).status).toBe(404);
    const services = (await call("GET", "/v1/catalog/services", { token: root })).body.map(
      (s: { name: string }) => s.name,
    );
    expect(services).toContain("stays");
    expect(services).not.toContain("gone");
    const again = await call("DELETE", "/v1/catalog/services/gone", { token: root });
    expect(again.status).toBe(404);
    expect(again.body.error.code).toBe("WEFT_ERR_NOT_FOUND");
    expect((await call("DELETE", "/v1/catalog/services/Bad_Name", { token: root })).status).toBe(400);
  });
});

describe("blocking queries", () => {
  it("answers within 100 ms of a change", async () => {
    await call("PUT", "/v1/catalog/instances", { token: root, body: instance("blk-1", "blk") });
    const first = await call("GET", "/v1/health/service/blk", { token: root });
    const index = first.body.index as number;
    expect(first.body.instances).toEqual([]);
    const t0 = performance.now();
    const pending = call("GET", `/v1/health/service/blk?index=${index}&wait=10s`, { token: root }).then(
      (r) => ({
        r,
        at: performance.now(),
      }),
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(srv.blockingQueries()).toBe(1);
    const changeAt = performance.now();
    await call("PUT", "/v1/catalog/instances/blk-1/checks/ttl", { token: root, body: { status: "passing" } });
    const { r, at } = await pending;
    const latency = at - changeAt;
    console.log(
      `blocking query answered ${latency.toFixed(1)} ms after the change (held ${(changeAt - t0).toFixed(0)} ms)`,
    );
    expect(latency).toBeLessThan(100);
    expect(r.body.index).toBeGreaterThan(index);
    expect(r.body.instances.map((i: { id: string }) => i.id)).toEqual(["blk-1"]);
    expect(srv.blockingQueries()).toBe(0);
  });

  it("times out with the same index when nothing changes", async () => {
    const first = await call("GET", "/v1/catalog/services", { token: root });
    const index = Number(first.headers.get("x-weft-index"));
    const t0 = performance.now();
    const r = await call("GET", `/v1/catalog/services?index=${index}&wait=300ms`, { token: root });
    const took = performance.now() - t0;
    expect(r.status).toBe(200);
    expect(Number(r.headers.get("x-weft-index"))).toBe(index);
    expect(took).toBeGreaterThanOrEqual(280);
    expect(took).toBeLessThan(2_000);
  });

  it("returns at once when the index is from another store (ahead of ours)", async () => {
    const t0 = performance.now();
    const r = await call("GET", "/v1/catalog/services?index=99999999&wait=5s", { token: root });
    expect(r.status).toBe(200);
    expect(Number(r.headers.get("x-weft-index"))).toBeLessThan(99999999);
    expect(performance.now() - t0).toBeLessThan(1_000);
  });

  it("returns at once when the index is already past", async () => {
    const t0 = performance.now();
    const r = await call("GET", "/v1/catalog/services?index=0&wait=5s", { token: root });
    expect(r.status).toBe(200);
    expect(performance.now() - t0).toBeLessThan(1_000);
  });

  it("a closed client connection releases its waiter", async () => {
    const ac = new AbortController();
    const index = (await call("GET", "/v1/health/service/nobody", { token: root })).body.index;
    const p = call("GET", `/v1/health/service/nobody?index=${index}&wait=1m`, {
      token: root,
      signal: ac.signal,
    }).catch(() => "aborted");
    await new Promise((r) => setTimeout(r, 50));
    expect(srv.blockingQueries()).toBe(1);
    ac.abort();
    expect(await p).toBe("aborted");
    for (let i = 0; i < 50 && srv.blockingQueries() > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(srv.blockingQueries()).toBe(0);
  });

  it("config lists block too", async () => {
    const first = await call("GET", "/v1/config/servicedefaults", { token: root });
    const index = Number(first.headers.get("x-weft-index"));
    const pending = call("GET", `/v1/config/ServiceDefaults?index=${index}&wait=10s`, { token: root });
    await new Promise((r) => setTimeout(r, 50));
    const t0 = performance.now();
    await call("POST", "/v1/config/apply", {
      token: root,
      body: { resources: [{ kind: "ServiceDefaults", name: "blk", protocol: "http" }] },
    });
    const r = await pending;
    expect(performance.now() - t0).toBeLessThan(500);
    expect(r.body.map((x: { name: string }) => x.name)).toContain("blk");
  });
});

describe("config over HTTP", () => {
  it("applies (created/updated/unchanged), gets as applied, lists, deletes", async () => {
    const sd = { kind: "ServiceDefaults", name: "cfg", protocol: "http" };
    let r = await call("POST", "/v1/config/apply", { token: root, body: { resources: [sd] } });
    expect(r.status).toBe(200);
    expect(r.body.applied).toEqual([{ kind: "ServiceDefaults", name: "cfg", action: "created" }]);
    r = await call("POST", "/v1/config/apply", {
      token: root,
      body: { resources: [{ protocol: "http", name: "cfg", kind: "ServiceDefaults" }] },
    });
    expect(r.body.applied[0].action).toBe("unchanged");
    r = await call("POST", "/v1/config/apply", {
      token: root,
      body: { resources: [{ ...sd, protocol: "grpc" }] },
    });
    expect(r.body.applied[0].action).toBe("updated");
    r = await call("GET", "/v1/config/service-defaults/cfg", { token: root });
    expect(r.body).toEqual({ kind: "ServiceDefaults", name: "cfg", protocol: "grpc" }); // as sent, no defaults
    r = await call("GET", "/v1/config/ServiceDefaults", { token: root });
    expect(r.body.map((x: { name: string }) => x.name)).toContain("cfg");
    r = await call("POST", "/v1/config/validate", { token: root, body: { resources: [sd] } });
    expect(r.body).toEqual({ valid: true });
    r = await call("DELETE", "/v1/config/servicedefaults/cfg", { token: root });
    expect(r.body).toEqual({ deleted: true });
    expect((await call("GET", "/v1/config/servicedefaults/cfg", { token: root })).status).toBe(404);
  });

  it("is all or nothing: one bad resource writes none", async () => {
    const rev = (await call("GET", "/v1/status")).body.revision;
    const r = await call("POST", "/v1/config/apply", {
      token: root,
      body: {
        resources: [
          { kind: "ServiceDefaults", name: "good" },
          { kind: "ServiceDefaults", name: "bad", protocol: "smtp" },
        ],
      },
    });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe("WEFT_ERR_VALIDATION");
    expect(r.body.error.message).toContain("resources[1].protocol");
    expect((await call("GET", "/v1/status")).body.revision).toBe(rev);
  });
});

describe("ACL", () => {
  type Cls = { name: string; run: (token: string | undefined) => Promise<Res> };
  const classes: Cls[] = [
    { name: "list services", run: (t) => call("GET", "/v1/catalog/services", { token: t }) },
    { name: "discover api", run: (t) => call("GET", "/v1/health/service/api", { token: t }) },
    { name: "discover web", run: (t) => call("GET", "/v1/health/service/web", { token: t }) },
    { name: "read api instance", run: (t) => call("GET", "/v1/catalog/instances/acl-api", { token: t }) },
    {
      name: "register api",
      run: (t) => call("PUT", "/v1/catalog/instances", { token: t, body: instance("acl-api", "api") }),
    },
    {
      name: "register web",
      run: (t) => call("PUT", "/v1/catalog/instances", { token: t, body: instance("acl-web", "web") }),
    },
    {
      name: "heartbeat api",
      run: (t) =>
        call("PUT", "/v1/catalog/instances/acl-api/checks/ttl", { token: t, body: { status: "passing" } }),
    },
    { name: "read config", run: (t) => call("GET", "/v1/config/mesh", { token: t }) },
    {
      name: "validate config",
      run: (t) => call("POST", "/v1/config/validate", { token: t, body: { resources: [] } }),
    },
    {
      name: "apply config",
      run: (t) => call("POST", "/v1/config/apply", { token: t, body: { resources: [] } }),
    },
    { name: "list tokens", run: (t) => call("GET", "/v1/acl/tokens", { token: t }) },
    {
      name: "create token",
      run: (t) => call("POST", "/v1/acl/tokens", { token: t, body: { policies: ["read"] } }),
    },
    { name: "token self", run: (t) => call("GET", "/v1/acl/token/self", { token: t }) },
  ];
  // Rows: policy; columns in the order of `classes`. 2 = 2xx.
  const table: [string, number[]][] = [
    ["operator", [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]],
    ["read", [2, 2, 2, 2, 403, 403, 403, 2, 2, 403, 403, 403, 2]],
    ["service:api:write", [2, 2, 2, 2, 2, 403, 2, 2, 2, 403, 403, 403, 2]],
    ["service:web:write", [2, 2, 2, 2, 403, 2, 403, 2, 2, 403, 403, 403, 2]],
    ["service:api:read", [403, 2, 403, 2, 403, 403, 403, 403, 403, 403, 403, 403, 2]],
    ["(no token)", [401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401]],
    ["(unknown token)", [401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401]],
  ];

  it("each policy x each endpoint class", async () => {
    await call("PUT", "/v1/catalog/instances", { token: root, body: instance("acl-api", "api") });
    const failures: string[] = [];
    for (const [policy, expected] of table) {
      const token =
        policy === "(no token)"
          ? undefined
          : policy === "(unknown token)"
            ? "x".repeat(43)
            : await mkToken([policy]);
      for (const [i, cls] of classes.entries()) {
        const r = await cls.run(token);
        const got = r.status >= 200 && r.status < 300 ? 2 : r.status;
        if (got !== expected[i])
          failures.push(
            `${policy} / ${cls.name}: expected ${expected[i]}, got ${r.status} ${JSON.stringify(r.body)}`,
          );
        if (r.status === 403) expect(r.body.error.code).toBe("WEFT_ERR_PERMISSION_DENIED");
        if (r.status === 401) expect(r.body.error.code).toBe("WEFT_ERR_UNAUTHENTICATED");
      }
    }
    expect(failures).toEqual([]);
  });

  it("403 names the permission; a revoked token is 401", async () => {
    const t = await mkToken(["service:web:write"]);
    const r = await call("PUT", "/v1/catalog/instances", { token: t, body: instance("x-api", "api") });
    expect(r.body.error.message).toContain("service:api:write");
    const self = await call("GET", "/v1/acl/token/self", { token: t });
    expect((await call("DELETE", `/v1/acl/tokens/${self.body.accessorId}`, { token: root })).status).toBe(
      200,
    );
    expect((await call("GET", "/v1/acl/token/self", { token: t })).status).toBe(401);
  });
});

/** A request with a body streamed in chunks, no Content-Length (chunked). */
function chunked(path: string, token: string, total: number): Promise<{ status: number; body: Json }> {
  return new Promise((resolve, reject) => {
    const u = new URL(srv.url + path);
    const req = httpRequest(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: "PUT",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      },
      (res) => {
        let text = "";
        res.on("data", (c) => {
          text += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on("error", reject);
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once("drain", pump);
      }
      req.end();
    };
    pump();
  });
}

describe("bad input", () => {
  const big = JSON.stringify({ service: "api", address: "x".repeat(2 * 1024 * 1024), port: 1 });
  const cases: {
    name: string;
    run: (readToken: string) => Promise<Res>;
    status: number;
    code: string;
    says?: RegExp;
  }[] = [
    {
      name: "malformed JSON",
      run: () => call("PUT", "/v1/catalog/instances", { token: root, raw: '{"service": "api",}' }),
      status: 400,
      code: "WEFT_ERR_INVALID_JSON",
      says: /position|column/,
    },
    {
      name: "truncated JSON",
      run: () => call("PUT", "/v1/catalog/instances", { token: root, raw: '{"service": ' }),
      status: 400,
      code: "WEFT_ERR_INVALID_JSON",
    },
    {
      name: "empty body",
      run: () => call("POST", "/v1/acl/tokens", { token: root, raw: "" }),
      status: 400,
      code: "WEFT_ERR_VALIDATION",
    },
    {
      name: "wrong type",
      run: () =>
        call("PUT", "/v1/catalog/instances", { token: root, body: instance("b", "api", { port: "80" }) }),
      status: 400,
      code: "WEFT_ERR_VALIDATION",
      says: /port/,
    },
    {
      name: "unknown field",
      run: () =>
        call("PUT", "/v1/catalog/instances", { token: root, body: instance("b", "api", { bogus: 1 }) }),
      status: 400,
      code: "WEFT_ERR_VALIDATION",
      says: /bogus/,
    },
    {
      name: "bad duration",
      run: () =>
        call("PUT", "/v1/catalog/instances", {
          token: root,
          body: instance("b", "api", { checks: [{ ttl: "soon" }] }),
        }),
      status: 400,
      code: "WEFT_ERR_VALIDATION",
      says: /checks\[0\]\.ttl/,
    },
    {
      name: "bad service name",
      run: () => call("PUT", "/v1/catalog/instances", { token: root, body: instance("b", "API_") }),
      status: 400,
      code: "WEFT_ERR_VALIDATION",
      says: /service/,
    },
    {
      name: "unknown kind (body)",
      run: () =>
        call("POST", "/v1/config/apply", { token: root, body: { resources: [{ kind: "Nope", name: "x" }] } }),
      status: 400,
      code: "WEFT_ERR_UNKNOWN_KIND",
      says: /Nope/,
    },
    {
      name: "unknown kind (path)",
      run: () => call("GET", "/v1/config/nope", { token: root }),
      status: 400,
      code: "WEFT_ERR_UNKNOWN_KIND",
    },
    {
      name: "resource unknown field",
      run: () =>
        call("POST", "/v1/config/apply", {
          token: root,
          body: { resources: [{ kind: "ServiceDefaults", name: "a", colour: "red" }] },
        }),
      status: 400,
      code: "WEFT_ERR_VALIDATION",
      says: /colour/,
    },
    {
      name: "apply body not an object",
      run: () => call("POST", "/v1/config/apply", { token: root, body: [1, 2] }),
      status: 400,
      code: "WEFT_ERR_VALIDATION",
    },
    {
      name: "oversized body (2 MiB)",
      run: () => call("PUT", "/v1/catalog/instances", { token: root, raw: big }),
      status: 413,
      code: "WEFT_ERR_BODY_TOO_LARGE",
    },
    {
      name: "oversized chunked body",
      run: () => chunked("/v1/catalog/instances", root, 2 * 1024 * 1024) as Promise<Res>,
      status: 413,
      code: "WEFT_ERR_BODY_TOO_LARGE",
    },
    {
      name: "wrong content-type",
      run: () =>
        call("PUT", "/v1/catalog/instances", {
          token: root,
          raw: "service=api",
          headers: { "content-type": "application/x-www-form-urlencoded" },
        }),
      status: 415,
      code: "WEFT_ERR_UNSUPPORTED_MEDIA_TYPE",
    },
    {
      name: "missing token",
      run: () => call("PUT", "/v1/catalog/instances", { body: instance("b", "api") }),
      status: 401,
      code: "WEFT_ERR_UNAUTHENTICATED",
    },
    {
      name: "wrong token",
      run: () => call("PUT", "/v1/catalog/instances", { token: "nope", body: instance("b", "api") }),
      status: 401,
      code: "WEFT_ERR_UNAUTHENTICATED",
    },
    {
      name: "malformed Authorization",
      run: () => call("GET", "/v1/catalog/services", { headers: { authorization: "Basic abc" } }),
      status: 401,
      code: "WEFT_ERR_UNAUTHENTICATED",
    },
    {
      name: "insufficient policy",
      run: (rt) => call("PUT", "/v1/catalog/instances", { token: rt, body: instance("b", "api") }),
      status: 403,
      code: "WEFT_ERR_PERMISSION_DENIED",
    },
    {
      name: "bad instance id (..%2F)",
      run: () => call("GET", "/v1/catalog/instances/..%2Fetc", { token: root }),
      status: 400,
      code: "WEFT_ERR_BAD_PATH",
    },
    {
      name: "bad service name (path)",
      run: () => call("GET", "/v1/health/service/Not_A_Name", { token: root }),
      status: 400,
      code: "WEFT_ERR_BAD_PATH",
    },
    {
      name: "bad check id",
      run: () =>
        call("PUT", "/v1/catalog/instances/x/checks/%00", { token: root, body: { status: "passing" } }),
      status: 400,
      code: "WEFT_ERR_BAD_PATH",
    },
    {
      name: "bad accessor id",
      run: () => call("DELETE", "/v1/acl/tokens/not-a-uuid", { token: root }),
      status: 400,
      code: "WEFT_ERR_BAD_PATH",
    },
    {
      name: "bad percent-encoding",
      run: () => call("GET", "/v1/catalog/instances/%E0%A4%A", { token: root }),
      status: 400,
      code: "WEFT_ERR_BAD_PATH",
    },
    {
      name: "unknown route",
      run: () => call("GET", "/v1/nothing", { token: root }),
      status: 404,
      code: "WEFT_ERR_ROUTE_NOT_FOUND",
    },
    {
      name: "double slash",
      run: () => call("GET", "/v1//status"),
      status: 404,
      code: "WEFT_ERR_ROUTE_NOT_FOUND",
    },
    {
      name: "wrong method",
      run: () => call("DELETE", "/v1/status"),
      status: 405,
      code: "WEFT_ERR_METHOD_NOT_ALLOWED",
    },
    {
      name: "bad index",
      run: () => call("GET", "/v1/catalog/services?index=abc", { token: root }),
      status: 400,
      code: "WEFT_ERR_BAD_QUERY",
    },
    {
      name: "bad wait",
      run: () => call("GET", "/v1/catalog/services?index=1&wait=forever", { token: root }),
      status: 400,
      code: "WEFT_ERR_BAD_QUERY",
    },
    {
      name: "bad status filter",
      run: () => call("GET", "/v1/health/service/api?status=bogus", { token: root }),
      status: 400,
      code: "WEFT_ERR_BAD_QUERY",
    },
    {
      name: "bad heartbeat status",
      run: () =>
        call("PUT", "/v1/catalog/instances/bad-1/checks/ttl", { token: root, body: { status: "fine" } }),
      status: 400,
      code: "WEFT_ERR_VALIDATION",
      says: /status/,
    },
    {
      name: "invalid policy",
      run: () => call("POST", "/v1/acl/tokens", { token: root, body: { policies: ["service:API:write"] } }),
      status: 400,
      code: "WEFT_ERR_VALIDATION",
      says: /policies\[0\]/,
    },
    {
      name: "heartbeat unknown instance",
      run: () =>
        call("PUT", "/v1/catalog/instances/ghost/checks/ttl", { token: root, body: { status: "passing" } }),
      status: 404,
      code: "WEFT_ERR_NOT_FOUND",
    },
  ];

  it("each hostile input gets its 4xx and code; the store is unchanged and the server answers", async () => {
    const readToken = await mkToken(["read"]);
    await call("PUT", "/v1/catalog/instances", { token: root, body: instance("bad-1", "api") });
    const before = (await call("GET", "/v1/status")).body.revision;
    const failures: string[] = [];
    for (const c of cases) {
      let r: Res;
      try {
        r = await c.run(readToken);
      } catch (e) {
        failures.push(`${c.name}: request failed: ${String(e)}`);
        continue;
      }
      if (
        r.status !== c.status ||
        r.body?.error?.code !== c.code ||
        (c.says && !c.says.test(r.body.error.message))
      ) {
        failures.push(`${c.name}: expected ${c.status} ${c.code}, got ${r.status} ${JSON.stringify(r.body)}`);
      }
      if (r.body?.error && typeof r.body.error.message !== "string") failures.push(`${c.name}: no message`);
    }
    expect(failures).toEqual([]);
    const after = await call("GET", "/v1/status");
    expect(after.status).toBe(200);
    expect(after.body.revision).toBe(before);
    console.log(`bad input: ${cases.length} hostile inputs, 0 5xx, store revision unchanged (${before})`);
  });

  it("405 carries an Allow header", async () => {
    const r = await call("POST", "/v1/catalog/services", { token: root, body: {} });
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")).toBe("GET");
  });
});
