/**
 * The CA endpoints over real loopback HTTP, against startServer with a
 * MemoryStore: /v1/ca/roots (blocking), /v1/ca/sign, /v1/ca/rotate, and the
 * certificate shown on instances.
 */
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type RunningServer, startServer } from "../server.js";
import { CA_ROOTS_PREFIX } from "../state/keys.js";
import { MemoryStore } from "../store/memory.js";
import { cert, csrFor, expectVerifies, makeCsr, pemBlocks, spiffeId } from "./ca-fixtures.suite.js";
import * as x509 from "./x509.js";

const silent = pino({ level: "silent" });

// biome-ignore lint/suspicious/noExplicitAny: JSON bodies are probed field by field in assertions.
type Json = any;

interface Res {
  status: number;
  body: Json;
  text: string;
  headers: Headers;
}

let srv: RunningServer;
let store: MemoryStore;
let root: string;
/** Every response this file received (status line aside), to look for key material. */
const received: string[] = [];

async function call(method: string, path: string, token?: string, body?: unknown): Promise<Res> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const init: RequestInit = { method, headers };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(srv.url + path, init);
  const text = await res.text();
  received.push(text, JSON.stringify([...res.headers]));
  return { status: res.status, body: text ? JSON.parse(text) : undefined, text, headers: res.headers };
}

async function mkToken(policies: string[]): Promise<string> {
  const r = await call("POST", "/v1/acl/tokens", root, { policies });
  expect(r.status).toBe(200);
  return r.body.secretId as string;
}

const codeOf = (r: Res) => r.body?.error?.code as string | undefined;
const index = (r: Res) => Number(r.headers.get("x-weft-index"));

beforeEach(async () => {
  store = new MemoryStore();
  srv = await startServer({ listen: "127.0.0.1:0", store, logger: silent });
  root = srv.bootstrapToken as string;
});
afterEach(async () => {
  await srv.close();
  // No response ever carries a private key.
  for (const text of received.splice(0)) expect(text).not.toContain("PRIVATE KEY");
});

describe("GET /v1/ca/roots", () => {
  it("serves the bundle to any token, without key material; 401 without a token", async () => {
    const web = await mkToken(["service:web:write"]);
    for (const token of [root, web, await mkToken(["service:api:read"])]) {
      const r = await call("GET", "/v1/ca/roots", token);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ trustDomain: "weft.local", index: index(r) });
      expect(r.body.roots).toHaveLength(1);
      const [only] = r.body.roots;
      expect(only).toMatchObject({ id: r.body.activeRootId, state: "active", leavesOutstanding: 0 });
      expect(pemBlocks(only.certificatePem)).toEqual([only.certificatePem]);
      expect(r.text).not.toContain("PRIVATE KEY");
      expect(r.text).not.toContain("privateState");
    }
    const anon = await call("GET", "/v1/ca/roots");
    expect(anon.status).toBe(401);
    expect(codeOf(anon)).toBe("WEFT_ERR_UNAUTHENTICATED");
  });

  it("the store holds the root's key, no API response does", async () => {
    const web = await mkToken(["service:web:write"]);
    await call("GET", "/v1/ca/roots", root);
    await call("POST", "/v1/ca/sign", web, { csr: await csrFor("web") });
    await call("POST", "/v1/ca/rotate", root);
    await call("POST", "/v1/ca/sign", web, { csr: await csrFor("web") });
    await call("GET", "/v1/ca/roots", web);
    await call("GET", "/v1/config/Mesh", root);
    const all = (await store.range("")).kvs;
    const withKey = all.filter((kv) => kv.value.includes("PRIVATE KEY")).map((kv) => kv.key);
    expect(withKey.sort()).toEqual((await store.range(CA_ROOTS_PREFIX)).kvs.map((kv) => kv.key).sort());
    expect(withKey).toHaveLength(2);
    expect(received.length).toBeGreaterThan(0);
    for (const text of received) expect(text).not.toContain("PRIVATE KEY");
  });
});

describe("POST /v1/ca/sign", () => {
  it("signs for the token's own service only", async () => {
    const web = await mkToken(["service:web:write"]);
    const ok = await call("POST", "/v1/ca/sign", web, { csr: await csrFor("web") });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ spiffeId: spiffeId("web"), service: "web", trustDomain: "weft.local" });
    const leaf = cert(ok.body.certificatePem);
    const san = leaf.getExtension(x509.SubjectAlternativeNameExtension)?.names.items;
    expect(san?.map((n) => n.value)).toEqual([spiffeId("web")]);
    expect(ok.body.chainPem).toBe(ok.body.certificatePem);
    await expectVerifies({ trusted: ok.body.rootsPem, leaf: ok.body.chainPem, purpose: "sslclient" });

    const api = await call("POST", "/v1/ca/sign", web, { csr: await csrFor("api") });
    expect(api.status).toBe(403);
    expect(codeOf(api)).toBe("WEFT_ERR_IDENTITY_DENIED");

    // A read-only token may not obtain an identity either.
    const reader = await mkToken(["read"]);
    const r = await call("POST", "/v1/ca/sign", reader, { csr: await csrFor("web") });
    expect(r.status).toBe(403);
    expect(codeOf(r)).toBe("WEFT_ERR_IDENTITY_DENIED");

    const anon = await call("POST", "/v1/ca/sign", undefined, { csr: await csrFor("web") });
    expect(anon.status).toBe(401);
  });

  it("refuses a TTL above the mesh maximum (400) and honours one within it", async () => {
    const web = await mkToken(["service:web:write"]);
    const long = await call("POST", "/v1/ca/sign", web, { csr: await csrFor("web"), ttl: "100h" });
    expect(long.status).toBe(400);
    expect(codeOf(long)).toBe("WEFT_ERR_CERT_TTL_TOO_LONG");
    const short = await call("POST", "/v1/ca/sign", web, { csr: await csrFor("web"), ttl: "2h" });
    expect(short.status).toBe(200);
    const c = cert(short.body.certificatePem);
    expect(Date.parse(short.body.notAfter) - Date.now()).toBeGreaterThan(2 * 3_600_000 - 60_000);
    expect(c.notAfter.getTime()).toBeLessThanOrEqual(Date.now() + 2 * 3_600_000);
  });

  it("answers a bad CSR with 400 WEFT_ERR_CSR_INVALID, never 500", async () => {
    const web = await mkToken(["service:web:write"]);
    const bad = [
      "not a csr",
      (await csrFor("web")) + (await csrFor("web")),
      await makeCsr({ ca: true }),
      await makeCsr({
        sans: null,
        extensions: [new x509.Extension("2.5.29.17", false, new Uint8Array([0x30, 0x05]))],
      }),
    ];
    for (const csr of bad) {
      const r = await call("POST", "/v1/ca/sign", web, { csr });
      expect(r.status).toBe(400);
      expect(codeOf(r)).toBe("WEFT_ERR_CSR_INVALID");
    }
    // Unknown fields and oversized CSRs are refused by the body schema.
    const extra = await call("POST", "/v1/ca/sign", web, { csr: await csrFor("web"), isCa: true });
    expect(extra.status).toBe(400);
    expect(codeOf(extra)).toBe("WEFT_ERR_VALIDATION");
    const huge = await call("POST", "/v1/ca/sign", web, { csr: "A".repeat(17 * 1024) });
    expect(huge.status).toBe(400);
    expect(codeOf(huge)).toBe("WEFT_ERR_VALIDATION");
  });

  it("shows the certificate on the instance it was signed for", async () => {
    const web = await mkToken(["service:web:write"]);
    const reg = await call("PUT", "/v1/catalog/instances", web, {
      id: "web-1",
      service: "web",
      address: "10.0.0.1",
      port: 8080,
      checks: [],
    });
    expect(reg.status).toBe(201);
    let h = await call("GET", "/v1/health/service/web?status=any", web);
    expect(h.body.instances[0].certificate).toBeUndefined();

    const s = await call("POST", "/v1/ca/sign", web, { csr: await csrFor("web"), instanceId: "web-1" });
    expect(s.status).toBe(200);
    h = await call("GET", "/v1/health/service/web?status=any", web);
    expect(h.body.instances).toHaveLength(1);
    expect(h.body.instances[0].certificate).toEqual({
      serialNumber: s.body.serialNumber,
      rootId: s.body.rootId,
      notAfter: s.body.notAfter,
    });
    const one = await call("GET", "/v1/catalog/instances/web-1", web);
    expect(one.body.certificate?.serialNumber).toBe(s.body.serialNumber);

    // A renewal replaces it.
    const again = await call("POST", "/v1/ca/sign", web, { csr: await csrFor("web"), instanceId: "web-1" });
    h = await call("GET", "/v1/health/service/web?status=any", web);
    expect(h.body.instances[0].certificate.serialNumber).toBe(again.body.serialNumber);
  });
});

describe("POST /v1/ca/rotate", () => {
  it("needs ca:write; a blocking read of the roots returns promptly after it with a higher index", async () => {
    const web = await mkToken(["service:web:write"]);
    const first = await call("GET", "/v1/ca/roots", web);
    const n = index(first);
    const t0 = performance.now();
    const held = call("GET", `/v1/ca/roots?index=${n}&wait=5s`, web);
    await new Promise((r) => setTimeout(r, 50));
    expect(srv.blockingQueries()).toBe(1);

    const denied = await call("POST", "/v1/ca/rotate", web);
    expect(denied.status).toBe(403);
    expect(codeOf(denied)).toBe("WEFT_ERR_PERMISSION_DENIED");
    // Signing a leaf does not change the bundle: the read stays held.
    expect((await call("POST", "/v1/ca/sign", web, { csr: await csrFor("web") })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 50));
    expect(srv.blockingQueries()).toBe(1);

    const rotated = await call("POST", "/v1/ca/rotate", root);
    expect(rotated.status).toBe(200);
    expect(rotated.body.previousRootId).toBe(first.body.activeRootId);
    const r = await held;
    expect(performance.now() - t0).toBeLessThan(3_000);
    expect(r.status).toBe(200);
    expect(index(r)).toBeGreaterThan(n);
    expect(r.body.activeRootId).toBe(rotated.body.activeRootId);
    expect(r.body.roots.map((x: Json) => x.state)).toEqual(["active", "retiring"]);

    // New leaves chain through the cross-signed root to the old one.
    const s = await call("POST", "/v1/ca/sign", web, { csr: await csrFor("web") });
    const [leaf, ...rest] = pemBlocks(s.body.chainPem);
    expect(rest).toHaveLength(1);
    await expectVerifies({ trusted: [first.body.roots[0].certificatePem], untrusted: rest, leaf: leaf! });

    const again = await call("POST", "/v1/ca/rotate", root);
    expect(again.status).toBe(409);
    expect(codeOf(again)).toBe("WEFT_ERR_CA_ROTATION_PENDING");
  });
});

describe("the Mesh trust domain", () => {
  it("decides which SPIFFE IDs are signed", async () => {
    const web = await mkToken(["service:web:write"]);
    expect((await call("POST", "/v1/ca/sign", web, { csr: await csrFor("web") })).status).toBe(200);
    const applied = await call("POST", "/v1/config/apply", root, {
      resources: [{ kind: "Mesh", name: "mesh", trustDomain: "corp.example" }],
    });
    expect(applied.status).toBe(200);

    const old = await call("POST", "/v1/ca/sign", web, { csr: await csrFor("web", "weft.local") });
    expect(old.status).toBe(400);
    expect(codeOf(old)).toBe("WEFT_ERR_CSR_INVALID");
    const s = await call("POST", "/v1/ca/sign", web, { csr: await csrFor("web", "corp.example") });
    expect(s.status).toBe(200);
    expect(s.body).toMatchObject({ trustDomain: "corp.example", spiffeId: spiffeId("web", "corp.example") });
    expect((await call("GET", "/v1/ca/roots", web)).body.trustDomain).toBe("corp.example");
  });
});
