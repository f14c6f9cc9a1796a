/**
 * The CA's listener routes against hostile input (HARDENING.md: "a CSR with
 * more than one URI SAN, or an identity the caller may not claim, is
 * refused"), over real HTTP (the raw helper, not the client) to one real
 * `weft server` process on a SQLite data dir.
 *
 * POST /v1/ca/sign gets a hand table (bodies that are not JSON, wrong types,
 * huge csr strings and bodies, unknown fields, ttl and instanceId garbage,
 * PEM armour around junk and DER bombs, CSRs with the wrong SANs, cA=true,
 * weak or odd keys, other trust domains and namespaces, malformed SPIFFE
 * IDs, a signature by another key, identities the token may not act as,
 * missing / unknown / revoked tokens), a sweep of single-bit flips over the
 * DER outside the signed part (where a lenient parser would let them
 * through), and fast-check properties with a fixed seed: random bodies,
 * mutated valid CSRs (bit flips, truncation, trailing / inserted / deleted
 * bytes), corrupted SPIFFE IDs and services the token may not act as.
 * GET /v1/ca/roots and POST /v1/ca/rotate get bad tokens, bad blocking
 * parameters and wrong methods.
 *
 * Every case must be refused: a 4xx with exactly `{error: {code, message}}`
 * and no stack trace, the pinned status/code where the case pins one, the
 * server still alive, and the store untouched (the /v1/status revision and
 * every root's `leavesOutstanding` as before). Controls first show that the
 * same generators, unmutated, are signed (so refusals are not an artefact
 * of broken test CSRs), and that what a CSR asks for beyond its key and its
 * SPIFFE ID (cA, keyCertSign, other EKUs) does not reach the leaf.
 */
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken, type HttpResult, http } from "./helpers/http.js";
import { NEWKEY_P256, opensslCsr } from "./helpers/openssl.js";
import { RssSampler } from "./helpers/proc.js";
import { cleanup, startWeftServer, tempDir, type WeftServer } from "./helpers/weft.js";

const crypto = webcrypto;
const TD = "weft.local";
const KiB = 1024;
const MiB = 1024 * KiB;
const SEED = 20_240_611;

// --- the server and its tokens ---------------------------------------------

let server: WeftServer;
type Who = "op" | "web" | "reader" | "apiReader" | "revoked" | "unknown" | "none";
const tokens: Partial<Record<Who, string>> = {};
let rootPem = "";

// --- figures for the summary line ------------------------------------------

let signCases = 0;
let otherCases = 0;
let bypasses = 0;
let fiveXX = 0;
let rssStart = 0;
/** The server's RSS, sampled every 100 ms from the end of the controls. */
const rss = new RssSampler(() => server.pid);
const bypassed: string[] = [];
/** Cases per kind (hand table, bit-flip sweep, fast-check), for the summary. */
const byGroup = new Map<string, number>();
let group = "hand table";

const alive = () => server.proc.exitCode === null && server.proc.signalCode === null;

// --- the store as it must stay ---------------------------------------------

let baseline: { revision: number; leaves: Record<string, number> };

async function storeState(): Promise<{ revision: number; leaves: Record<string, number> }> {
  const s = await http(server.url, "/v1/status", { timeoutMs: 5_000 });
  expect(s.status, s.text).toBe(200);
  const r = await http(server.url, "/v1/ca/roots", { token: tokens.op, timeoutMs: 5_000 });
  expect(r.status, r.text).toBe(200);
  const leaves: Record<string, number> = {};
  for (const root of r.body.roots as { id: string; leavesOutstanding: number }[]) {
    leaves[root.id] = root.leavesOutstanding;
  }
  return { revision: s.body.revision, leaves };
}

async function expectStoreUnchanged(what: string): Promise<void> {
  expect(await storeState(), `the store moved after: ${what}`).toEqual(baseline);
}

// --- CSRs --------------------------------------------------------------------

type KeyKind = "p256" | "p384" | "p521" | "rsa1024" | "rsa2048";
interface Keys {
  keys: webcrypto.CryptoKeyPair;
  alg: webcrypto.Algorithm | webcrypto.EcdsaParams;
}

const rsaParams = (bits: number): webcrypto.RsaHashedKeyGenParams => ({
  name: "RSASSA-PKCS1-v1_5",
  modulusLength: bits,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: "SHA-256",
});
const KEY_PARAMS: Record<
  KeyKind,
  { gen: webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams; alg: Keys["alg"] }
> = {
  p256: { gen: { name: "ECDSA", namedCurve: "P-256" }, alg: { name: "ECDSA", hash: "SHA-256" } },
  p384: { gen: { name: "ECDSA", namedCurve: "P-384" }, alg: { name: "ECDSA", hash: "SHA-384" } },
  p521: { gen: { name: "ECDSA", namedCurve: "P-521" }, alg: { name: "ECDSA", hash: "SHA-512" } },
  rsa1024: { gen: rsaParams(1024), alg: { name: "RSASSA-PKCS1-v1_5" } },
  rsa2048: { gen: rsaParams(2048), alg: { name: "RSASSA-PKCS1-v1_5" } },
};
const keyCache = new Map<KeyKind, Promise<Keys>>();
function keysOf(kind: KeyKind = "p256"): Promise<Keys> {
  let k = keyCache.get(kind);
  if (!k) {
    const p = KEY_PARAMS[kind];
    k = (crypto.subtle.generateKey(p.gen, true, ["sign", "verify"]) as Promise<webcrypto.CryptoKeyPair>).then(
      (keys) => ({ keys, alg: p.alg }),
    );
    keyCache.set(kind, k);
  }
  return k;
}

const spiffe = (service: string, td = TD, ns = "default") => `spiffe://${td}/ns/${ns}/svc/${service}`;

interface CsrSpec {
  key?: KeyKind | Keys;
  /** SAN entries; null: no SAN extension. Default: one URI, `uri`. */
  sans?: x509.JsonGeneralName[] | null;
  /** The one URI SAN when `sans` is not given. Default: web's SPIFFE ID. */
  uri?: string;
  /** More extensions, appended. */
  extensions?: x509.Extension[];
  /** Replaces the extensionRequest attribute entirely. */
  attributes?: x509.Attribute[];
  cn?: string;
}

async function csrDer(spec: CsrSpec = {}): Promise<Buffer> {
  const k = typeof spec.key === "object" ? spec.key : await keysOf(spec.key);
  const sans =
    spec.sans === undefined ? [{ type: "url" as const, value: spec.uri ?? spiffe("web") }] : spec.sans;
  const extensions: x509.Extension[] = [];
  if (sans !== null) extensions.push(new x509.SubjectAlternativeNameExtension(sans, false));
  extensions.push(...(spec.extensions ?? []));
  const params: x509.Pkcs10CertificateRequestCreateParams = {
    name: `CN=${spec.cn ?? "test"}`,
    keys: k.keys,
    signingAlgorithm: k.alg,
  };
  if (spec.attributes) params.attributes = spec.attributes;
  else params.extensions = extensions;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(params, crypto);
  return Buffer.from(csr.rawData);
}

function armour(der: Uint8Array | string, label = "CERTIFICATE REQUEST"): string {
  const b64 = typeof der === "string" ? der : Buffer.from(der).toString("base64");
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, "$&\n")}-----END ${label}-----\n`;
}

const csrPem = async (spec: CsrSpec = {}) => armour(await csrDer(spec));

/** A DER TLV: tag, header + content (length bytes minimal). */
function tlv(tag: number, content: Uint8Array): Buffer {
  const n = content.length;
  const len =
    n < 0x80
      ? [n]
      : n < 0x100
        ? [0x81, n]
        : n < 0x10000
          ? [0x82, n >> 8, n & 0xff]
          : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), content]);
}

/** `depth` SEQUENCEs inside each other. */
function nestedSequences(depth: number): Buffer {
  let inner: Buffer = Buffer.alloc(0);
  for (let i = 0; i < depth; i++) inner = tlv(0x30, inner);
  return inner;
}

/** Offset and length of the header of the DER element at `at`. */
function header(der: Uint8Array, at: number): { len: number; headerLen: number } {
  const first = der[at + 1] as number;
  if (first < 0x80) return { len: first, headerLen: 2 };
  const n = first & 0x7f;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + (der[at + 2 + i] as number);
  return { len, headerLen: 2 + n };
}

/** Where the signed CertificationRequestInfo ends: the signature algorithm and the signature follow. */
function signedEnd(der: Uint8Array): number {
  const outer = header(der, 0);
  const info = header(der, outer.headerLen);
  return outer.headerLen + info.headerLen + info.len;
}

// --- one hostile request -----------------------------------------------------

interface Send {
  who?: Who;
  method?: string;
  path?: string;
  body?: unknown;
  contentType?: string;
  headers?: Record<string, string>;
}

async function send(s: Send): Promise<HttpResult> {
  const token = s.who === undefined ? tokens.op : tokens[s.who];
  const opts: Parameters<typeof http>[2] = { method: s.method ?? "POST", timeoutMs: 10_000 };
  if (token !== undefined) opts.token = token;
  if (s.body !== undefined) opts.body = s.body;
  if (s.contentType !== undefined) opts.contentType = s.contentType;
  if (s.headers !== undefined) opts.headers = s.headers;
  return http(server.url, s.path ?? "/v1/ca/sign", opts);
}

/** The error shape of docs/api.md, and nothing a client should never see. */
function expectErrorShape(r: HttpResult, what: string): void {
  const e = r.body?.error;
  expect(typeof e?.code, `${what}: ${r.text.slice(0, 300)}`).toBe("string");
  expect(e.code as string).toMatch(/^WEFT_ERR_[A-Z_]+$/);
  expect(typeof e.message).toBe("string");
  expect(Object.keys(r.body), r.text.slice(0, 300)).toEqual(["error"]);
  expect(Object.keys(e).sort(), r.text.slice(0, 300)).toEqual(["code", "message"]);
  expect(r.text, "a stack trace reached the client").not.toMatch(/\n {4}at |\\n {4}at | {4}at \S+ \(/);
  expect(r.text).not.toMatch(/node_modules|file:\/\/|\.ts:\d+|\.js:\d+/);
  expect(r.text).not.toContain("PRIVATE KEY");
  expect(String(r.headers["content-type"])).toMatch(/^application\/json/);
}

interface Pin {
  status?: number;
  code?: string;
  /** Check the store after this case (default true; batches check once at their end: the revision never goes back). */
  checkStore?: boolean;
}

/** Asserts a refusal; counts the figures first so that they are right even when an assertion fails. */
async function expectRefused(r: HttpResult, what: string, pin: Pin = {}): Promise<void> {
  if (r.status >= 500) fiveXX++;
  if (r.status >= 200 && r.status < 300) {
    bypasses++;
    bypassed.push(`${what} -> ${r.status}`);
  }
  const shown = `${what} -> ${r.status} ${r.text.slice(0, 300)}`;
  expect(r.status, shown).toBeGreaterThanOrEqual(400);
  expect(r.status, shown).toBeLessThan(500);
  expectErrorShape(r, what);
  if (pin.status !== undefined) expect(r.status, shown).toBe(pin.status);
  if (pin.code !== undefined) expect(r.body.error.code, shown).toBe(pin.code);
  expect(alive(), `the server died after: ${what}`).toBe(true);
  if (pin.checkStore ?? true) await expectStoreUnchanged(what);
}

async function hostileSign(what: string, s: Send, pin: Pin = {}): Promise<HttpResult> {
  signCases++;
  byGroup.set(group, (byGroup.get(group) ?? 0) + 1);
  const r = await send(s);
  await expectRefused(r, what, pin);
  return r;
}

// --- setup ------------------------------------------------------------------

beforeAll(async () => {
  server = await startWeftServer();
  tokens.op = server.token!;
  tokens.web = (await createToken(server.url, tokens.op, ["service:web:write"], "web")).secretId;
  tokens.reader = (await createToken(server.url, tokens.op, ["read"], "reader")).secretId;
  tokens.apiReader = (await createToken(server.url, tokens.op, ["service:api:read"], "api reader")).secretId;
  const revoked = await createToken(server.url, tokens.op, ["operator"], "revoked");
  const del = await http(server.url, `/v1/acl/tokens/${revoked.accessorId}`, {
    method: "DELETE",
    token: tokens.op,
  });
  expect(del.status, del.text).toBe(200);
  tokens.revoked = revoked.secretId;
  tokens.unknown = "Zm9vYmFyYmF6cXV1eC1ub3QtYS10b2tlbi1hdC1hbGw";
  const roots = await http(server.url, "/v1/ca/roots", { token: tokens.op });
  expect(roots.status, roots.text).toBe(200);
  rootPem = roots.body.roots[0].certificatePem;
  await Promise.all((["p256", "p384", "p521", "rsa1024", "rsa2048"] as const).map((k) => keysOf(k)));
}, 30_000);

afterAll(async () => {
  rss.stop();
  if (server) {
    const crashed = alive() ? 0 : 1;
    const rssEnd = rss.sample();
    console.log(
      `${signCases} hostile inputs on /v1/ca/sign: ${bypasses} bypasses (certificates issued for a forbidden identity), ` +
        `${crashed} crashes, ${fiveXX} 5xx, RSS ${rssStart.toFixed(0)} MB before / ${rssEnd.toFixed(0)} MB after ` +
        `(peak ${rss.peak.toFixed(0)} MB); plus ${otherCases} on /v1/ca/roots and /v1/ca/rotate`,
    );
    console.log(`  (${[...byGroup].map(([g, n]) => `${n} ${g}`).join(", ")})`);
    if (bypassed.length > 0) console.log(`bypasses:\n  ${bypassed.join("\n  ")}`);
  }
  await cleanup();
});

// --- controls ----------------------------------------------------------------

describe("controls (the generators, unmutated, are signed)", () => {
  it("web's CSRs (P-256, P-384, RSA-2048; openssl EC, RSA, Ed25519) are signed; the leaf carries only what the CA sets", async () => {
    for (const key of ["p256", "p384", "rsa2048"] as const) {
      const r = await send({
        who: "web",
        body: { csr: await csrPem({ key }), ttl: "1h", instanceId: "web-1" },
      });
      expect(r.status, r.text).toBe(200);
      expect(r.body).toMatchObject({ spiffeId: spiffe("web"), service: "web", trustDomain: TD });
    }
    // What the CSR asks for beyond its key and SPIFFE ID does not reach the leaf.
    const greedy = await send({
      body: {
        csr: await csrPem({
          cn: "Weft Root CA",
          extensions: [
            new x509.BasicConstraintsExtension(false, 5, true),
            new x509.KeyUsagesExtension(
              x509.KeyUsageFlags.keyCertSign |
                x509.KeyUsageFlags.cRLSign |
                x509.KeyUsageFlags.digitalSignature,
              true,
            ),
            new x509.ExtendedKeyUsageExtension(["1.3.6.1.5.5.7.3.3", "2.5.29.37.0"], false),
          ],
        }),
      },
    });
    expect(greedy.status, greedy.text).toBe(200);
    const leaf = new x509.X509Certificate(greedy.body.certificatePem);
    expect(leaf.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(false);
    expect(leaf.getExtension(x509.KeyUsagesExtension)?.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(leaf.getExtension(x509.ExtendedKeyUsageExtension)?.usages.sort()).toEqual([
      "1.3.6.1.5.5.7.3.1",
      "1.3.6.1.5.5.7.3.2",
    ]);
    expect(leaf.subject).toBe("CN=web");
    expect(leaf.getExtension(x509.SubjectAlternativeNameExtension)?.names.items.map((n) => n.value)).toEqual([
      spiffe("web"),
    ]);
    // CSRs from the openssl binary are signed too (EC, RSA with NULL parameters, Ed25519).
    const dir = tempDir("weft-ca-hostile-");
    for (const [name, newkey] of [
      ["ec", NEWKEY_P256],
      ["rsa", ["rsa:2048"]],
      ["ed25519", ["ed25519"]],
    ] as const) {
      const { csrPem } = opensslCsr(dir, name, { cn: "web", san: `URI:${spiffe("web")}`, newkey });
      const o = await send({ who: "web", body: { csr: csrPem } });
      expect(o.status, `${name}: ${o.text}`).toBe(200);
    }

    baseline = await storeState();
    expect(Object.values(baseline.leaves).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    rssStart = rss.start(100);
  });
});

// --- the hand table ------------------------------------------------------------

interface Case {
  name: string;
  who?: Who;
  body: () => unknown;
  contentType?: string;
  headers?: Record<string, string>;
  status: number;
  code: string;
}

const V = "WEFT_ERR_VALIDATION";
const CSR = "WEFT_ERR_CSR_INVALID";
const web = () => csrPem();

const bodyCases: Case[] = [
  { name: "not JSON", body: () => "csr=hello", status: 400, code: "WEFT_ERR_INVALID_JSON" },
  { name: "truncated JSON", body: () => '{"csr": "-----BEGIN', status: 400, code: "WEFT_ERR_INVALID_JSON" },
  {
    name: "JSON with a trailing comma",
    body: () => '{"csr": "x",}',
    status: 400,
    code: "WEFT_ERR_INVALID_JSON",
  },
  {
    name: "invalid UTF-8",
    body: () => Buffer.from([0x7b, 0x22, 0x63, 0xff, 0xfe, 0x22, 0x7d]),
    status: 400,
    code: "WEFT_ERR_INVALID_JSON",
  },
  { name: "whitespace only", body: () => "  \n\t ", status: 400, code: "WEFT_ERR_INVALID_JSON" },
  { name: "empty body", body: () => "", status: 400, code: V },
  {
    name: "text/plain",
    body: async () => JSON.stringify({ csr: await web() }),
    contentType: "text/plain",
    status: 415,
    code: "WEFT_ERR_UNSUPPORTED_MEDIA_TYPE",
  },
  {
    name: "form-encoded",
    body: () => "csr=abc",
    contentType: "application/x-www-form-urlencoded",
    status: 415,
    code: "WEFT_ERR_UNSUPPORTED_MEDIA_TYPE",
  },
  { name: "null", body: () => "null", status: 400, code: V },
  { name: "an array", body: async () => [{ csr: await web() }], status: 400, code: V },
  { name: "a string", body: async () => JSON.stringify(await web()), status: 400, code: V },
  { name: "a number", body: () => "42", status: 400, code: V },
  { name: "{}", body: () => ({}), status: 400, code: V },
  { name: "csr: number", body: () => ({ csr: 42 }), status: 400, code: V },
  { name: "csr: null", body: () => ({ csr: null }), status: 400, code: V },
  { name: "csr: true", body: () => ({ csr: true }), status: 400, code: V },
  { name: "csr: array of PEM", body: async () => ({ csr: [await web()] }), status: 400, code: V },
  { name: "csr: object", body: async () => ({ csr: { pem: await web() } }), status: 400, code: V },
  { name: "csr: empty string", body: () => ({ csr: "" }), status: 400, code: V },
  { name: "csr: 16 KiB + 1", body: () => ({ csr: "A".repeat(16 * KiB + 1) }), status: 400, code: V },
  {
    name: "csr: a valid CSR padded past 16 KiB",
    body: async () => ({ csr: `${await web()}${" ".repeat(16 * KiB)}` }),
    status: 400,
    code: V,
  },
  { name: "csr: 1,000,000 chars", body: () => ({ csr: "B".repeat(1_000_000) }), status: 400, code: V },
  {
    name: "csr: 6,000 euro signs (18 KB of UTF-8, under the 16 Ki-char bound), not PEM",
    body: () => ({ csr: "\u20ac".repeat(6_000) }),
    status: 400,
    code: CSR,
  },
  {
    name: "2 MiB body",
    body: async () => JSON.stringify({ csr: await web(), pad: "x".repeat(2 * MiB) }),
    status: 413,
    code: "WEFT_ERR_BODY_TOO_LARGE",
  },
  {
    name: "JSON nested 100,000 deep",
    body: () => `{"csr": ${"[".repeat(100_000)}${"]".repeat(100_000)}}`,
    status: 400,
    code: V,
  },
  { name: "unknown field", body: async () => ({ csr: await web(), extra: 1 }), status: 400, code: V },
  {
    name: "unknown field spiffeId (asks for another identity)",
    who: "web",
    body: async () => ({ csr: await web(), spiffeId: spiffe("api") }),
    status: 400,
    code: V,
  },
  {
    name: "unknown field service",
    who: "web",
    body: async () => ({ csr: await web(), service: "api" }),
    status: 400,
    code: V,
  },
  {
    name: "unknown field isCA",
    body: async () => ({ csr: await web(), isCA: true }),
    status: 400,
    code: V,
  },
  {
    name: "__proto__ key",
    body: async () => `{"csr": ${JSON.stringify(await web())}, "__proto__": {"ttl": "1h"}}`,
    status: 400,
    code: V,
  },
  {
    name: "constructor key",
    body: async () => `{"csr": ${JSON.stringify(await web())}, "constructor": {"prototype": {}}}`,
    status: 400,
    code: V,
  },
  {
    name: "duplicate csr keys (the second one invalid)",
    body: async () => `{"csr": ${JSON.stringify(await web())}, "csr": "junk"}`,
    status: 400,
    code: CSR,
  },
];

const ttlGarbage = [
  "0s",
  "0",
  "999ms",
  "-1s",
  "1e309h",
  "",
  "10y",
  "1d",
  "1w",
  "-1h",
  "+1h",
  " 1h",
  "1h ",
  "1 h",
  "1H",
  "h",
  "1",
  "NaN",
  "Infinity",
  "0x10s",
  "1.5.5s",
  "1e3s",
  "\u0661h",
  "1h\u0000",
  "9".repeat(65),
  `${"9".repeat(60)}h`,
  "87601h",
];
const ttlCases: Case[] = [
  ...ttlGarbage.map(
    (ttl): Case => ({
      name: `ttl ${JSON.stringify(ttl.length > 20 ? `${ttl.slice(0, 20)}...` : ttl)}`,
      who: "web",
      body: async () => ({ csr: await web(), ttl }),
      status: 400,
      code: V,
    }),
  ),
  ...["73h", "72h1ms", "87600h", "1000h"].map(
    (ttl): Case => ({
      name: `ttl ${ttl} (over maxLeafTtl)`,
      who: "web",
      body: async () => ({ csr: await web(), ttl }),
      status: 400,
      code: "WEFT_ERR_CERT_TTL_TOO_LONG",
    }),
  ),
  ...[3600, null, true, ["1h"], { h: 1 }].map(
    (ttl): Case => ({
      name: `ttl ${JSON.stringify(ttl)}`,
      who: "web",
      body: async () => ({ csr: await web(), ttl }),
      status: 400,
      code: V,
    }),
  ),
];

const instanceGarbage: unknown[] = [
  "",
  "-web",
  ".web",
  "a".repeat(129),
  "a/b",
  "../x",
  "web 1",
  "web\u0000",
  "web\n1",
  "w\u00e9b",
  "web%2f1",
  "x".repeat(10_000),
  42,
  null,
  ["web-1"],
  { id: "web-1" },
];
const instanceCases: Case[] = instanceGarbage.map((instanceId) => ({
  name: `instanceId ${JSON.stringify(instanceId)?.slice(0, 24)}`,
  who: "web",
  body: async () => ({ csr: await web(), instanceId }),
  status: 400,
  code: V,
}));

/** A CSR whose public key is `a`'s but signed with `b`'s private key (no proof of possession). */
async function signedByAnotherKey(): Promise<string> {
  const a = await keysOf("p256");
  const b = (await crypto.subtle.generateKey(KEY_PARAMS.p256.gen, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  return csrPem({ key: { keys: { publicKey: a.keys.publicKey, privateKey: b.privateKey }, alg: a.alg } });
}

const pemCases: Case[] = [
  { name: "not PEM", body: () => ({ csr: "hello" }), status: 400, code: CSR },
  { name: "a certificate, not a request", body: () => ({ csr: rootPem }), status: 400, code: CSR },
  {
    name: "PRIVATE KEY armour",
    body: async () => ({ csr: (await web()).replace(/CERTIFICATE REQUEST/g, "PRIVATE KEY") }),
    status: 400,
    code: CSR,
  },
  {
    name: "BEGIN without END",
    body: async () => ({ csr: (await web()).replace(/-----END[^\n]+\n/, "") }),
    status: 400,
    code: CSR,
  },
  {
    name: "two CSR blocks (web, api)",
    body: async () => ({ csr: (await web()) + (await csrPem({ uri: spiffe("api") })) }),
    status: 400,
    code: CSR,
  },
  { name: "empty armour", body: () => ({ csr: armour("") }), status: 400, code: CSR },
  { name: "armour around '!!!!'", body: () => ({ csr: armour("!!!!") }), status: 400, code: CSR },
  {
    name: "armour around base64 with padding in the middle",
    body: () => ({ csr: armour("MIIB==AAAA") }),
    status: 400,
    code: CSR,
  },
  ...[1, 2, 16, 300, 4_000, 11_000].map(
    (n): Case => ({
      name: `armour around ${n} random bytes`,
      body: () => ({ csr: armour(crypto.getRandomValues(new Uint8Array(n))) }),
      status: 400,
      code: CSR,
    }),
  ),
  {
    name: "armour around 30 80 (BER indefinite length)",
    body: () => ({ csr: armour(Buffer.from("308030800000000005000000", "hex")) }),
    status: 400,
    code: CSR,
  },
  {
    name: "armour around 30 84 (4-byte length)",
    body: () => ({ csr: armour(Buffer.from("3084000000040500050000", "hex")) }),
    status: 400,
    code: CSR,
  },
  {
    name: "armour around 3,000 nested SEQUENCEs",
    body: () => ({ csr: armour(nestedSequences(3_000)) }),
    status: 400,
    code: CSR,
  },
  {
    name: "armour around a SEQUENCE of 5,000 NULLs",
    body: () => ({ csr: armour(tlv(0x30, Buffer.from("0500".repeat(5_000), "hex"))) }),
    status: 400,
    code: CSR,
  },
  {
    name: "armour around a SEQUENCE claiming 16 MB",
    body: () => ({ csr: armour(Buffer.from("3083ffffff3000", "hex")) }),
    status: 400,
    code: CSR,
  },
  {
    name: "a valid CSR with 1 trailing DER byte",
    body: async () => ({ csr: armour(Buffer.concat([await csrDer(), Buffer.from([0])])) }),
    status: 400,
    code: CSR,
  },
  {
    name: "a valid CSR followed by a second DER element",
    body: async () => ({
      csr: armour(Buffer.concat([await csrDer(), await csrDer({ uri: spiffe("api") })])),
    }),
    status: 400,
    code: CSR,
  },
  {
    name: "a valid CSR truncated by one byte",
    body: async () => ({ csr: armour((await csrDer()).subarray(0, -1)) }),
    status: 400,
    code: CSR,
  },
  {
    name: "the signature of another CSR",
    body: async () => {
      const a = await csrDer();
      const b = await csrDer({ cn: "other" });
      return { csr: armour(Buffer.concat([a.subarray(0, signedEnd(a)), b.subarray(signedEnd(b))])) };
    },
    status: 400,
    code: CSR,
  },
  {
    name: "signed by a key other than the one it carries (no proof of possession)",
    body: async () => ({ csr: await signedByAnotherKey() }),
    status: 400,
    code: CSR,
  },
  {
    name: "the signature zeroed",
    body: async () => {
      const d = await csrDer({ key: "rsa2048" });
      d.fill(0, d.length - 256);
      return { csr: armour(d) };
    },
    status: 400,
    code: CSR,
  },
];

const urlSan = (value: string): x509.JsonGeneralName => ({ type: "url", value });
const sanCases: Case[] = [
  { name: "no SAN", body: async () => ({ csr: await csrPem({ sans: null }) }), status: 400, code: CSR },
  {
    name: "SPIFFE ID in the CN only",
    body: async () => ({ csr: await csrPem({ sans: null, cn: spiffe("web") }) }),
    status: 400,
    code: CSR,
  },
  { name: "an empty SAN", body: async () => ({ csr: await csrPem({ sans: [] }) }), status: 400, code: CSR },
  {
    name: "two URI SANs (web, api), web token",
    who: "web",
    body: async () => ({ csr: await csrPem({ sans: [urlSan(spiffe("web")), urlSan(spiffe("api"))] }) }),
    status: 400,
    code: CSR,
  },
  {
    name: "two URI SANs (api, web), web token",
    who: "web",
    body: async () => ({ csr: await csrPem({ sans: [urlSan(spiffe("api")), urlSan(spiffe("web"))] }) }),
    status: 400,
    code: CSR,
  },
  {
    name: "the same URI SAN twice",
    body: async () => ({ csr: await csrPem({ sans: [urlSan(spiffe("web")), urlSan(spiffe("web"))] }) }),
    status: 400,
    code: CSR,
  },
  {
    name: "a URI SAN and an https URI",
    body: async () => ({
      csr: await csrPem({ sans: [urlSan(spiffe("web")), urlSan("https://web.weft.local/")] }),
    }),
    status: 400,
    code: CSR,
  },
  {
    name: "URI + DNS SAN",
    body: async () => ({
      csr: await csrPem({ sans: [urlSan(spiffe("web")), { type: "dns", value: "web.weft.local" }] }),
    }),
    status: 400,
    code: CSR,
  },
  {
    name: "URI + IP SAN",
    body: async () => ({
      csr: await csrPem({ sans: [urlSan(spiffe("web")), { type: "ip", value: "10.0.0.1" }] }),
    }),
    status: 400,
    code: CSR,
  },
  {
    name: "URI + email SAN",
    body: async () => ({
      csr: await csrPem({ sans: [urlSan(spiffe("web")), { type: "email", value: "web@weft.local" }] }),
    }),
    status: 400,
    code: CSR,
  },
  {
    name: "DNS SAN only",
    body: async () => ({ csr: await csrPem({ sans: [{ type: "dns", value: "web.weft.local" }] }) }),
    status: 400,
    code: CSR,
  },
  {
    name: "the SPIFFE ID as a DNS SAN",
    body: async () => ({ csr: await csrPem({ sans: [{ type: "dns", value: spiffe("web") }] }) }),
    status: 400,
    code: CSR,
  },
  {
    name: "IP SAN only (::1)",
    body: async () => ({ csr: await csrPem({ sans: [{ type: "ip", value: "::1" }] }) }),
    status: 400,
    code: CSR,
  },
  {
    name: "email SAN only",
    body: async () => ({ csr: await csrPem({ sans: [{ type: "email", value: "web@weft.local" }] }) }),
    status: 400,
    code: CSR,
  },
  {
    name: "a directoryName SAN",
    body: async () => ({
      csr: await csrPem({ sans: [urlSan(spiffe("web")), { type: "dn", value: "CN=api" }] }),
    }),
    status: 400,
    code: CSR,
  },
  {
    name: "two SAN extensions (web, api)",
    body: async () => ({
      csr: await csrPem({ extensions: [new x509.SubjectAlternativeNameExtension([urlSan(spiffe("api"))])] }),
    }),
    status: 400,
    code: CSR,
  },
  {
    name: "two extensionRequest attributes",
    body: async () => ({
      csr: await csrPem({
        attributes: [
          new x509.ExtensionsAttribute([new x509.SubjectAlternativeNameExtension([urlSan(spiffe("web"))])]),
          new x509.ExtensionsAttribute([new x509.SubjectAlternativeNameExtension([urlSan(spiffe("api"))])]),
        ],
      }),
    }),
    status: 400,
    code: CSR,
  },
  {
    name: "a SAN extension whose value is 2,000 nested SEQUENCEs",
    body: async () => ({
      csr: await csrPem({
        sans: null,
        extensions: [new x509.Extension("2.5.29.17", false, nestedSequences(2_000))],
      }),
    }),
    status: 400,
    code: CSR,
  },
  {
    name: "a SAN extension that is not DER",
    body: async () => ({
      csr: await csrPem({
        sans: null,
        extensions: [new x509.Extension("2.5.29.17", false, Buffer.from("a0ff", "hex"))],
      }),
    }),
    status: 400,
    code: CSR,
  },
  {
    name: "cA=true",
    body: async () => ({
      csr: await csrPem({ extensions: [new x509.BasicConstraintsExtension(true, undefined, true)] }),
    }),
    status: 400,
    code: CSR,
  },
  {
    name: "cA=true pathLen=0, not critical",
    body: async () => ({
      csr: await csrPem({ extensions: [new x509.BasicConstraintsExtension(true, 0, false)] }),
    }),
    status: 400,
    code: CSR,
  },
  {
    name: "basicConstraints that is not DER",
    body: async () => ({
      csr: await csrPem({
        extensions: [new x509.Extension("2.5.29.19", true, Buffer.from("3003ff", "hex"))],
      }),
    }),
    status: 400,
    code: CSR,
  },
];

const keyCases: Case[] = [
  { name: "RSA 1024", body: async () => ({ csr: await csrPem({ key: "rsa1024" }) }), status: 400, code: CSR },
  { name: "EC P-521", body: async () => ({ csr: await csrPem({ key: "p521" }) }), status: 400, code: CSR },
];

/** SPIFFE IDs the CA must not sign (sent with the operator token: only the CSR check can refuse). */
const badIds: [string, string][] = [
  ["another trust domain", spiffe("web", "evil.local")],
  ["a trust domain that extends ours", spiffe("web", "weft.local.evil")],
  ["our trust domain as a suffix", spiffe("web", "evil.weft.local")],
  ["trust domain with a trailing dot", spiffe("web", "weft.local.")],
  ["trust domain in uppercase", spiffe("web", "WEFT.LOCAL")],
  ["trust domain with a port", "spiffe://weft.local:8443/ns/default/svc/web"],
  ["trust domain with userinfo", "spiffe://admin@weft.local/ns/default/svc/web"],
  ["trust domain with user:password", "spiffe://a:b@weft.local/ns/default/svc/web"],
  ["empty trust domain", "spiffe:///ns/default/svc/web"],
  ["namespace kube-system", spiffe("web", TD, "kube-system")],
  ["namespace Default", spiffe("web", TD, "Default")],
  ["empty namespace", "spiffe://weft.local/ns//svc/web"],
  ["a query", `${spiffe("web")}?x=1`],
  ["an empty query", `${spiffe("web")}?`],
  ["a fragment", `${spiffe("web")}#frag`],
  ["an empty fragment", `${spiffe("web")}#`],
  ["a dot segment", "spiffe://weft.local/ns/default/svc/./web"],
  ["a dot-dot segment", "spiffe://weft.local/ns/default/svc/api/../web"],
  ["a dot-dot service", "spiffe://weft.local/ns/default/svc/.."],
  ["percent-encoded service", "spiffe://weft.local/ns/default/svc/w%65b"],
  ["percent-encoded slash", "spiffe://weft.local/ns/default/svc%2Fweb"],
  ["percent-encoded NUL", "spiffe://weft.local/ns/default/svc/web%00"],
  ["uppercase scheme", "SPIFFE://weft.local/ns/default/svc/web"],
  ["mixed-case scheme", "Spiffe://weft.local/ns/default/svc/web"],
  ["uppercase service", spiffe("WEB")],
  ["uppercase NS", "spiffe://weft.local/NS/default/svc/web"],
  ["uppercase SVC", "spiffe://weft.local/ns/default/SVC/web"],
  ["a trailing slash", `${spiffe("web")}/`],
  ["a double slash", "spiffe://weft.local/ns/default//svc/web"],
  ["an extra segment", `${spiffe("web")}/admin`],
  ["no path", "spiffe://weft.local"],
  ["root path", "spiffe://weft.local/"],
  ["path without ns", "spiffe://weft.local/svc/web"],
  ["https scheme", "https://weft.local/ns/default/svc/web"],
  ["spiffe:/ (one slash)", "spiffe:/weft.local/ns/default/svc/web"],
  ["leading space", ` ${spiffe("web")}`],
  ["trailing space", `${spiffe("web")} `],
  ["a NUL byte in the service", spiffe("web\u0000api")],
  ["a backslash", "spiffe://weft.local/ns/default/svc\\web"],
  ["a non-ASCII service", spiffe("w\u00e9b")],
  ["a service that is not a DNS label", spiffe("-web")],
  ["a 64-char service", spiffe("a".repeat(64))],
  ["a 3000-byte SPIFFE ID", `${spiffe("web")}/${"a".repeat(3_000 - spiffe("web").length - 1)}`],
  ["a 2049-byte SPIFFE ID", `spiffe://weft.local/${"a/".repeat(1_014)}web`],
];
const idCases: Case[] = badIds.map(([name, uri]) => ({
  name: `SPIFFE ID: ${name}`,
  body: async () => ({ csr: await csrPem({ uri }) }),
  status: 400,
  code: CSR,
}));

const DENIED = "WEFT_ERR_IDENTITY_DENIED";
const UNAUTH = "WEFT_ERR_UNAUTHENTICATED";
/** web's CSR with `who`'s token and `headers`: refused as unauthenticated. */
const unauthenticated = (name: string, who: Who, headers?: Record<string, string>): Case => ({
  name,
  who,
  headers,
  body: async () => ({ csr: await web() }),
  status: 401,
  code: UNAUTH,
});
const identityCases: Case[] = [
  {
    name: "web's token asks for api",
    who: "web",
    body: async () => ({ csr: await csrPem({ uri: spiffe("api") }) }),
    status: 403,
    code: DENIED,
  },
  {
    name: "web's token asks for api with an instanceId of web's",
    who: "web",
    body: async () => ({ csr: await csrPem({ uri: spiffe("api") }), instanceId: "web-1" }),
    status: 403,
    code: DENIED,
  },
  {
    name: "web's token asks for web2",
    who: "web",
    body: async () => ({ csr: await csrPem({ uri: spiffe("web2") }) }),
    status: 403,
    code: DENIED,
  },
  {
    name: "web's token asks for we",
    who: "web",
    body: async () => ({ csr: await csrPem({ uri: spiffe("we") }) }),
    status: 403,
    code: DENIED,
  },
  {
    name: "web's token asks for api with CN=web",
    who: "web",
    body: async () => ({ csr: await csrPem({ uri: spiffe("api"), cn: "web" }) }),
    status: 403,
    code: DENIED,
  },
  {
    name: "a read token asks for web",
    who: "reader",
    body: async () => ({ csr: await web() }),
    status: 403,
    code: DENIED,
  },
  {
    name: "service:api:read asks for api",
    who: "apiReader",
    body: async () => ({ csr: await csrPem({ uri: spiffe("api") }) }),
    status: 403,
    code: DENIED,
  },
  unauthenticated("no token", "none"),
  unauthenticated("revoked token", "revoked"),
  unauthenticated("unknown token", "unknown"),
  // "placeholder" is replaced with the revoked token when the case is sent.
  unauthenticated("revoked token in X-Weft-Token", "none", { "x-weft-token": "placeholder" }),
  unauthenticated("Basic authorization", "none", { authorization: "Basic YWRtaW46YWRtaW4=" }),
  unauthenticated("Bearer with two secrets", "none", { authorization: "Bearer a b" }),
  unauthenticated("an 8 KiB token", "none", { authorization: `Bearer ${"t".repeat(8 * KiB)}` }),
  {
    name: "no token, with a 2 MiB body",
    who: "none",
    body: async () => JSON.stringify({ csr: await web(), pad: "x".repeat(2 * MiB) }),
    status: 401,
    code: UNAUTH,
  },
];

const tables: [string, Case[]][] = [
  ["bodies", bodyCases],
  ["ttl", ttlCases],
  ["instanceId", instanceCases],
  ["PEM and DER", pemCases],
  ["SANs and extensions", sanCases],
  ["keys", keyCases],
  ["SPIFFE IDs", idCases],
  ["identity and tokens", identityCases],
];

describe.each(tables)("POST /v1/ca/sign, hand table: %s", (_, cases) => {
  it.each(cases)("$name -> $status $code", async (c) => {
    let body = await c.body();
    const headers = c.headers ? { ...c.headers } : undefined;
    if (headers?.["x-weft-token"]) headers["x-weft-token"] = tokens.revoked!;
    if (typeof body !== "string" && !Buffer.isBuffer(body)) body = JSON.stringify(body);
    const s: Send = { who: c.who ?? "op", body };
    if (c.contentType !== undefined) s.contentType = c.contentType;
    if (headers) s.headers = headers;
    await hostileSign(c.name, s, { status: c.status, code: c.code });
  });
});

describe("POST /v1/ca/sign, bit flips outside the signed part", () => {
  it("every bit of the signature algorithm and signature, flipped one at a time, is refused (P-256 and RSA-2048)", async () => {
    group = "bit-flip sweep";
    for (const key of ["p256", "rsa2048"] as const) {
      const der = await csrDer({ key });
      const from = signedEnd(der);
      // The outer header too: its tag and length bytes frame the whole request.
      const positions = [0, 1, 2, 3];
      for (let i = from; i < der.length; i++) positions.push(i);
      // RSA signatures are 256 random bytes: their first 16 and last 16 are plenty.
      const chosen =
        key === "rsa2048" ? positions.filter((p) => p < from + 40 || p >= der.length - 16) : positions;
      for (const at of chosen) {
        for (let bit = 0; bit < 8; bit++) {
          const d = Buffer.from(der);
          d[at] = (d[at] as number) ^ (1 << bit);
          await hostileSign(
            `${key}: bit ${bit} of byte ${at}/${der.length}`,
            { body: { csr: armour(d) } },
            { status: 400, code: CSR, checkStore: false },
          );
        }
      }
    }
    await expectStoreUnchanged("bit flips");
  });
});

// --- fast-check ---------------------------------------------------------------

type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "truncate"; keep: number }
  | { kind: "append"; bytes: Uint8Array }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; count: number }
  | { kind: "overwrite"; at: number; bytes: Uint8Array };

function mutate(der: Buffer, m: Mutation): Buffer {
  const at = (n: number) => n % der.length;
  switch (m.kind) {
    case "flip": {
      const d = Buffer.from(der);
      d[at(m.at)] = (d[at(m.at)] as number) ^ (1 << m.bit);
      return d;
    }
    case "truncate":
      return der.subarray(0, m.keep % der.length);
    case "append":
      return Buffer.concat([der, m.bytes]);
    case "insert":
      return Buffer.concat([der.subarray(0, at(m.at)), m.bytes, der.subarray(at(m.at))]);
    case "delete":
      return Buffer.concat([der.subarray(0, at(m.at)), der.subarray(at(m.at) + m.count)]);
    case "overwrite": {
      const d = Buffer.from(der);
      const i = at(m.at);
      let changed = false;
      for (let j = 0; j < m.bytes.length && i + j < d.length; j++) {
        changed ||= d[i + j] !== m.bytes[j];
        d[i + j] = m.bytes[j] as number;
      }
      if (!changed) d[i] = (d[i] as number) ^ 0xff;
      return d;
    }
  }
}

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("truncate" as const), keep: fc.nat() }),
  fc.record({ kind: fc.constant("append" as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), count: fc.integer({ min: 1, max: 16 }) }),
  fc.record({
    kind: fc.constant("overwrite" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
);

/** Corruptions of web's SPIFFE ID; each one alone makes it an ID the CA must refuse. */
const corruption: fc.Arbitrary<(id: string) => string> = fc.oneof(
  fc.string({ maxLength: 8 }).map((q) => (id: string) => `${id}?${q}`),
  fc.string({ maxLength: 8 }).map((f) => (id: string) => `${id}#${f}`),
  fc
    .integer({ min: 0, max: 99_999 })
    .map((p) => (id: string) => id.replace(/^(spiffe:\/\/[^/]*)/i, `$1:${p}`)),
  fc.stringMatching(/^[a-z0-9:]{0,8}$/).map((u) => (id: string) => id.replace(/^([a-z]+:\/\/)/i, `$1${u}@`)),
  fc.tuple(fc.constantFrom(".", ".."), fc.integer({ min: 0, max: 5 })).map(([dot, n]) => (id: string) => {
    const [scheme, rest] = id.split("://") as [string, string];
    const parts = rest.split("/");
    parts.splice(1 + (n % parts.length), 0, dot);
    return `${scheme}://${parts.join("/")}`;
  }),
  fc.nat().map((n) => (id: string) => {
    const start = id.indexOf("/", "spiffe://".length);
    const i = start + 1 + (n % Math.max(1, id.length - start - 1));
    const ch = id.charCodeAt(Math.min(i, id.length - 1));
    return `${id.slice(0, i)}%${ch.toString(16).padStart(2, "0")}${id.slice(i + 1)}`;
  }),
  fc.nat().map((n) => (id: string) => {
    const letters = [...id].map((c, i) => (/[a-z]/.test(c) ? i : -1)).filter((i) => i >= 0);
    const i = letters[n % letters.length] as number;
    return `${id.slice(0, i)}${(id[i] as string).toUpperCase()}${id.slice(i + 1)}`;
  }),
  fc.constant((id: string) => id.replace("/svc/", "//svc/")),
  fc.constant((id: string) => `${id}/`),
  fc.stringMatching(/^[a-z0-9-]{1,12}$/).map((s) => (id: string) => `${id}/${s}`),
  fc
    .stringMatching(/^[a-z0-9][a-z0-9.-]{0,20}$/)
    .filter((td) => td !== TD)
    .map((td) => (id: string) => id.replace(/^(spiffe:\/\/)[^/]*/i, `$1${td}`)),
  fc
    .stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/)
    .filter((ns) => ns !== "default")
    .map((ns) => (id: string) => id.replace(/\/ns\/[^/]*/, `/ns/${ns}`)),
  fc
    .integer({ min: 2_049, max: 4_000 })
    .map((n) => (id: string) => `${id}${"a".repeat(Math.max(0, n - id.length))}`),
  fc
    .constantFrom("http", "https", "spiffe+x", "spife", "")
    .map((s) => (id: string) => id.replace(/^[a-z]*/i, s)),
  fc.constantFrom(" ", "\t", "\\", "*", "$", "~", "=").chain((c) =>
    fc.nat().map((n) => (id: string) => {
      const i = "spiffe://".length + (n % (id.length - "spiffe://".length + 1));
      return `${id.slice(0, i)}${c}${id.slice(i)}`;
    }),
  ),
);

const jsonText = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc.anything({ maxDepth: 3 }).map((v) => {
    try {
      return JSON.stringify(v) ?? "null";
    } catch {
      return "null";
    }
  }),
  fc.string({ maxLength: 200 }),
);

/** A value in a slot that is not what the schema wants (or an unknown key): always refused before the CSR. */
const badField = fc.oneof(
  fc.record({
    key: fc.constant("ttl"),
    value: fc.oneof(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 })),
  }),
  fc.record({
    key: fc.constant("instanceId"),
    value: fc.oneof(fc.string({ maxLength: 140 }), fc.jsonValue({ maxDepth: 2 })),
  }),
  fc.record({
    key: fc.string({ minLength: 1, maxLength: 12 }).filter((k) => !["csr", "ttl", "instanceId"].includes(k)),
    value: fc.jsonValue({ maxDepth: 2 }),
  }),
);

describe("POST /v1/ca/sign, fast-check (seed fixed)", () => {
  const runs = { seed: SEED, endOnFailure: true };
  beforeAll(() => {
    group = "fast-check";
  });

  it("random bodies: refused with the error shape", async () => {
    await fc.assert(
      fc.asyncProperty(jsonText, async (text) => {
        await hostileSign(`body ${text.slice(0, 120)}`, { body: text }, { checkStore: false });
      }),
      { ...runs, numRuns: 60 },
    );
    await expectStoreUnchanged("random bodies");
  });

  it("a valid CSR with a garbage ttl / instanceId / unknown key: 400 WEFT_ERR_VALIDATION", async () => {
    const csr = await csrPem();
    await fc.assert(
      fc.asyncProperty(badField, async ({ key, value }) => {
        // The slot's valid values are refused only when they are not valid: skip the rare valid one.
        if (key === "ttl" && typeof value === "string" && /^(\d+(\.\d+)?(ms|s|m|h))+$|^0$/.test(value))
          return;
        if (
          key === "instanceId" &&
          typeof value === "string" &&
          /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/.test(value)
        )
          return;
        await hostileSign(
          `${key}=${JSON.stringify(value)?.slice(0, 80)}`,
          { who: "web", body: JSON.stringify({ csr, [key]: value }) },
          { status: 400, code: V, checkStore: false },
        );
      }),
      { ...runs, numRuns: 50 },
    );
    await expectStoreUnchanged("garbage fields");
  });

  it("mutated valid CSRs (bit flips, truncation, trailing / inserted / deleted / overwritten bytes): 400 WEFT_ERR_CSR_INVALID", async () => {
    const der = await csrDer();
    await fc.assert(
      fc.asyncProperty(mutation, async (m) => {
        const d = mutate(der, m);
        if (d.equals(der)) return;
        await hostileSign(
          `mutation ${JSON.stringify(m, (_, v) => (v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v))}`,
          { body: { csr: armour(d) } },
          { status: 400, code: CSR, checkStore: false },
        );
      }),
      { ...runs, numRuns: 120 },
    );
    await expectStoreUnchanged("mutated CSRs");
  });

  it("PEM armour around random bytes: 400 WEFT_ERR_CSR_INVALID", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2_000 }), fc.boolean(), async (bytes, newLabel) => {
        const pem = armour(bytes, newLabel ? "NEW CERTIFICATE REQUEST" : "CERTIFICATE REQUEST");
        await hostileSign(
          `armour(${bytes.length} bytes)`,
          { body: { csr: pem } },
          { status: 400, code: CSR, checkStore: false },
        );
      }),
      { ...runs, numRuns: 30 },
    );
    await expectStoreUnchanged("random armour");
  });

  it("corrupted SPIFFE IDs (query, fragment, port, userinfo, dot segments, %-encoding, uppercase, ...): 400 WEFT_ERR_CSR_INVALID", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(corruption, { minLength: 1, maxLength: 3 }), async (cs) => {
        const uri = cs.reduce((id, c) => c(id), spiffe("web"));
        await hostileSign(
          `SPIFFE ID ${JSON.stringify(uri.slice(0, 120))}`,
          { body: { csr: await csrPem({ uri }) } },
          { status: 400, code: CSR, checkStore: false },
        );
      }),
      { ...runs, numRuns: 80 },
    );
    await expectStoreUnchanged("corrupted SPIFFE IDs");
  });

  it("services web's token may not act as: 403 WEFT_ERR_IDENTITY_DENIED", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?$/).filter((s) => s !== "web"),
        fc.constantFrom<Who>("web", "reader", "apiReader"),
        async (service, who) => {
          await hostileSign(
            `${who} asks for ${service}`,
            { who, body: { csr: await csrPem({ uri: spiffe(service) }) } },
            { status: 403, code: DENIED, checkStore: false },
          );
        },
      ),
      { ...runs, numRuns: 40 },
    );
    await expectStoreUnchanged("identities denied");
  });
});

// --- roots and rotate -------------------------------------------------------------

interface OtherCase {
  name: string;
  who: Who;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: unknown;
  status: number;
  code: string;
}

const BAD_QUERY = "WEFT_ERR_BAD_QUERY";
const otherCasesTable: OtherCase[] = [
  { name: "roots, no token", who: "none", method: "GET", path: "/v1/ca/roots", status: 401, code: UNAUTH },
  {
    name: "roots, revoked token",
    who: "revoked",
    method: "GET",
    path: "/v1/ca/roots",
    status: 401,
    code: UNAUTH,
  },
  {
    name: "roots, unknown token",
    who: "unknown",
    method: "GET",
    path: "/v1/ca/roots",
    status: 401,
    code: UNAUTH,
  },
  {
    name: "roots, empty Bearer",
    who: "none",
    method: "GET",
    path: "/v1/ca/roots",
    headers: { authorization: "Bearer " },
    status: 401,
    code: UNAUTH,
  },
  ...[
    "index=abc",
    "index=-1",
    "index=1e3",
    "index=0x10",
    "index=9999999999999999",
    "index=",
    "wait=1s",
    "index=1&wait=-1s",
    "index=1&wait=1e309h",
    "index=1&wait=10y",
    "index=1&wait=",
    "index=1&wait=1%00s",
    `index=1&wait=${"9".repeat(100)}h`,
  ].map(
    (q): OtherCase => ({
      name: `roots?${q.slice(0, 40)}`,
      who: "web",
      method: "GET",
      path: `/v1/ca/roots?${q}`,
      status: 400,
      code: BAD_QUERY,
    }),
  ),
  ...["POST", "PUT", "DELETE", "PATCH"].map(
    (method): OtherCase => ({
      name: `${method} roots`,
      who: "op",
      method,
      path: "/v1/ca/roots",
      body: { roots: [] },
      status: 405,
      code: "WEFT_ERR_METHOD_NOT_ALLOWED",
    }),
  ),
  {
    name: "rotate with web's token",
    who: "web",
    method: "POST",
    path: "/v1/ca/rotate",
    body: {},
    status: 403,
    code: "WEFT_ERR_PERMISSION_DENIED",
  },
  {
    name: "rotate with a read token",
    who: "reader",
    method: "POST",
    path: "/v1/ca/rotate",
    body: {},
    status: 403,
    code: "WEFT_ERR_PERMISSION_DENIED",
  },
  {
    name: "rotate, no token",
    who: "none",
    method: "POST",
    path: "/v1/ca/rotate",
    body: {},
    status: 401,
    code: UNAUTH,
  },
  {
    name: "rotate, revoked token",
    who: "revoked",
    method: "POST",
    path: "/v1/ca/rotate",
    body: {},
    status: 401,
    code: UNAUTH,
  },
  {
    name: "GET rotate",
    who: "op",
    method: "GET",
    path: "/v1/ca/rotate",
    status: 405,
    code: "WEFT_ERR_METHOD_NOT_ALLOWED",
  },
];

describe("GET /v1/ca/roots and POST /v1/ca/rotate", () => {
  it.each(otherCasesTable)("$name -> $status $code", async (c) => {
    otherCases++;
    const s: Send = { who: c.who, method: c.method, path: c.path };
    if (c.body !== undefined) s.body = c.body;
    if (c.headers) s.headers = c.headers;
    const r = await send(s);
    await expectRefused(r, c.name, { status: c.status, code: c.code });
  });

  it("the bundle still answers and carries no key material", async () => {
    const r = await http(server.url, "/v1/ca/roots", { token: tokens.reader });
    expect(r.status).toBe(200);
    expect(r.text).not.toContain("PRIVATE KEY");
    expect(r.text).not.toContain("privateState");
  });
});

describe("afterwards", () => {
  it("the server is alive, the store is as before, nothing leaked into stderr", async () => {
    expect(alive()).toBe(true);
    await expectStoreUnchanged("the whole run");
    expect(bypasses, bypassed.join("\n")).toBe(0);
    expect(fiveXX).toBe(0);
    expect(server.stderr()).not.toMatch(/\n\s+at .*\(/);
    // Refusals are client errors: nothing logged at error level (50) for them.
    const errors = server
      .stdout()
      .split("\n")
      .filter((l) => /"level":(50|60)/.test(l));
    expect(errors).toEqual([]);
  });
});
