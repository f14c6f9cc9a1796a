/**
 * Bad input end to end: every malformed, mistyped, oversized, unauthenticated
 * or unauthorised request gets a 4xx with a catalogued code and a message
 * naming the problem; afterwards the server is still up and the store
 * revision has not moved (nothing was written).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken, type HttpOptions, http } from "./helpers/http.js";
import { cleanup, startWeftServer, type WeftServer } from "./helpers/weft.js";

let server: WeftServer;
let op: string;
let webToken: string;
let revisionBefore: number;

beforeAll(async () => {
  server = await startWeftServer();
  op = server.token!;
  webToken = (await createToken(server.url, op, ["service:web:write"], "web sidecar")).secretId;
  // Every write happens before this point.
  const s = await http(server.url, "/v1/status");
  expect(s.status).toBe(200);
  revisionBefore = s.body.revision;
});

afterAll(cleanup);

const goodInstance = { service: "api", address: "127.0.0.1", port: 9001 };

interface Case {
  name: string;
  path: string;
  opts: () => HttpOptions;
  status: number;
  code: string | string[];
  /** The message must name the problem. */
  message: RegExp;
}

const cases: Case[] = [
  {
    name: "malformed JSON",
    path: "/v1/config/apply",
    opts: () => ({ token: op, method: "POST", body: '{"resources": [{"kind": "Intention",' }),
    status: 400,
    code: "WEFT_ERR_INVALID_JSON",
    message: /JSON/i,
  },
  {
    name: "wrong type (port as a string)",
    path: "/v1/catalog/instances",
    opts: () => ({ token: op, method: "PUT", body: { ...goodInstance, port: "eighty" } }),
    status: 400,
    code: "WEFT_ERR_VALIDATION",
    message: /port/,
  },
  {
    name: "wrong type (resources not an array)",
    path: "/v1/config/apply",
    opts: () => ({ token: op, method: "POST", body: { resources: "Intention/api" } }),
    status: 400,
    code: ["WEFT_ERR_VALIDATION", "WEFT_ERR_CONFIG_INVALID"],
    message: /resources/,
  },
  {
    name: "unknown kind in apply",
    path: "/v1/config/apply",
    opts: () => ({ token: op, method: "POST", body: { resources: [{ kind: "Widget", name: "w" }] } }),
    status: 400,
    code: ["WEFT_ERR_UNKNOWN_KIND", "WEFT_ERR_VALIDATION", "WEFT_ERR_CONFIG_INVALID"],
    message: /Widget/,
  },
  {
    name: "unknown kind in a path",
    path: "/v1/config/widget",
    opts: () => ({ token: op }),
    status: 400,
    code: "WEFT_ERR_UNKNOWN_KIND",
    message: /widget/i,
  },
  {
    name: "unknown field in an instance",
    path: "/v1/catalog/instances",
    opts: () => ({ token: op, method: "PUT", body: { ...goodInstance, colour: "blue" } }),
    status: 400,
    code: "WEFT_ERR_VALIDATION",
    message: /colour/,
  },
  {
    name: "unknown field in a resource",
    path: "/v1/config/apply",
    opts: () => ({
      token: op,
      method: "POST",
      body: {
        resources: [
          { kind: "Intention", name: "api", sources: [{ name: "web", action: "allow" }], extra: 1 },
        ],
      },
    }),
    status: 400,
    code: ["WEFT_ERR_VALIDATION", "WEFT_ERR_CONFIG_INVALID"],
    message: /extra/,
  },
  {
    name: "oversized body (2 MiB)",
    path: "/v1/config/apply",
    opts: () => ({
      token: op,
      method: "POST",
      body: JSON.stringify({
        resources: [{ kind: "Intention", name: "api", pad: "x".repeat(2 * 1024 * 1024) }],
      }),
    }),
    status: 413,
    code: "WEFT_ERR_BODY_TOO_LARGE",
    message: /1048576|limit/,
  },
  {
    name: "wrong content-type",
    path: "/v1/config/apply",
    opts: () => ({
      token: op,
      method: "POST",
      contentType: "text/plain",
      body: JSON.stringify({ resources: [] }),
    }),
    status: 415,
    code: "WEFT_ERR_UNSUPPORTED_MEDIA_TYPE",
    message: /text\/plain/,
  },
  {
    name: "missing token",
    path: "/v1/catalog/services",
    opts: () => ({}),
    status: 401,
    code: "WEFT_ERR_UNAUTHENTICATED",
    message: /token/i,
  },
  {
    name: "missing token on a write",
    path: "/v1/catalog/instances",
    opts: () => ({ method: "PUT", body: goodInstance }),
    status: 401,
    code: "WEFT_ERR_UNAUTHENTICATED",
    message: /token/i,
  },
  {
    name: "wrong token",
    path: "/v1/catalog/services",
    opts: () => ({ token: "not-a-real-secret" }),
    status: 401,
    code: "WEFT_ERR_UNAUTHENTICATED",
    message: /token/i,
  },
  {
    name: "a web token registering api",
    path: "/v1/catalog/instances",
    opts: () => ({ token: webToken, method: "PUT", body: goodInstance }),
    status: 403,
    code: "WEFT_ERR_PERMISSION_DENIED",
    message: /service:api:write/,
  },
  {
    name: "a web token applying config",
    path: "/v1/config/apply",
    opts: () => ({
      token: webToken,
      method: "POST",
      body: { resources: [{ kind: "Intention", name: "web", sources: [{ name: "*", action: "allow" }] }] },
    }),
    status: 403,
    code: "WEFT_ERR_PERMISSION_DENIED",
    message: /operator/,
  },
  {
    name: "a bad blocking index",
    path: "/v1/health/service/api?index=abc",
    opts: () => ({ token: op }),
    status: 400,
    code: "WEFT_ERR_BAD_QUERY",
    message: /index/,
  },
  {
    name: "an unknown route",
    path: "/v1/nothing/here",
    opts: () => ({ token: op }),
    status: 404,
    code: "WEFT_ERR_ROUTE_NOT_FOUND",
    message: /\/v1\/nothing\/here/,
  },
  {
    name: "deleting an absent resource",
    path: "/v1/config/intention/ghost",
    opts: () => ({ token: op, method: "DELETE" }),
    status: 404,
    code: "WEFT_ERR_NOT_FOUND",
    message: /ghost/,
  },
];

describe("bad input (real process)", () => {
  it.each(cases)("$name -> $status $code", async (c) => {
    const r = await http(server.url, c.path, c.opts());
    expect(r.status, r.text).toBe(c.status);
    expect(r.headers["content-type"]).toMatch(/application\/json/);
    const codes = Array.isArray(c.code) ? c.code : [c.code];
    expect(codes, r.text).toContain(r.body?.error?.code);
    expect(r.body.error.message, r.text).toMatch(c.message);
    // No stack trace ever reaches a client.
    expect(r.text).not.toMatch(/\n\s+at |\.ts:\d+|\.js:\d+/);
  });

  it("afterwards the server is still running and the store revision is unchanged", async () => {
    expect(server.proc.exitCode).toBeNull();
    const s = await http(server.url, "/v1/status");
    expect(s.status).toBe(200);
    expect(s.body.revision).toBe(revisionBefore);
    // And it still serves authenticated reads.
    const svc = await http(server.url, "/v1/catalog/services", { token: op });
    expect(svc.status).toBe(200);
    expect(svc.body).toEqual([]);
  });
});
