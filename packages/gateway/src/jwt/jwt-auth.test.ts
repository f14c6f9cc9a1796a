import { createHmac, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VirtualClock } from "@weft/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { JwksKeySet, parseJwks } from "./jwks.js";
import { decodeJws, MAX_TOKEN_BYTES } from "./jws.js";
import { authenticate, bearerToken, claimValue, type JwtProviderRuntime, verifyJwt } from "./jwt-auth.js";

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

function signJwt(
  alg: string,
  key: KeyObject,
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
): string {
  const input = `${b64({ alg, typ: "JWT", ...header })}.${b64(payload)}`;
  const hash = alg === "EdDSA" ? null : `sha${alg.slice(2)}`;
  const opts = alg.startsWith("ES")
    ? { key, dsaEncoding: "ieee-p1363" as const }
    : alg.startsWith("PS")
      ? { key, padding: 6, saltLength: -1 }
      : key;
  return `${input}.${sign(hash, Buffer.from(input), opts).toString("base64url")}`;
}

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
const ed = generateKeyPairSync("ed25519");
const other = generateKeyPairSync("rsa", { modulusLength: 2048 });

function jwk(k: KeyObject, kid: string, extra: Record<string, unknown> = {}) {
  return { ...k.export({ format: "jwk" }), kid, use: "sig", ...extra };
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function jwksFile(keys: unknown[]): string {
  const dir = mkdtempSync(join(tmpdir(), "weft-jwks-"));
  dirs.push(dir);
  const file = join(dir, "jwks.json");
  writeFileSync(file, JSON.stringify({ keys }));
  return file;
}

const NOW = 1_800_000_000_000;

function provider(
  file: string,
  clock: VirtualClock,
  over: Partial<JwtProviderRuntime> = {},
): JwtProviderRuntime {
  const keys = new JwksKeySet({ source: { file }, cacheMs: 300_000, minRefreshMs: 10_000, clock });
  void keys.start();
  return {
    name: "idp",
    issuer: "https://idp.example",
    audiences: ["edge"],
    algorithms: ["RS256", "PS256", "ES256", "EdDSA"],
    clockSkewMs: 30_000,
    claimToHeaders: [],
    forwardToken: false,
    keys,
    ...over,
  };
}

const good = { iss: "https://idp.example", aud: "edge", sub: "alice", exp: NOW / 1000 + 600 };

describe("verifyJwt", () => {
  const clock = new VirtualClock(NOW);
  const file = jwksFile([jwk(rsa.publicKey, "r1"), jwk(ec.publicKey, "e1"), jwk(ed.publicKey, "d1")]);
  const p = provider(file, clock);

  it.each([
    ["RS256", rsa.privateKey, "r1"],
    ["PS256", rsa.privateKey, "r1"],
    ["ES256", ec.privateKey, "e1"],
    ["EdDSA", ed.privateKey, "d1"],
  ] as const)("accepts a valid %s token", (alg, key, kid) => {
    const r = verifyJwt(signJwt(alg, key, { kid }, good), p, NOW);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.claims?.sub).toBe("alice");
  });

  const hs256WithPublicKey = (() => {
    const pem = rsa.publicKey.export({ format: "pem", type: "spki" });
    const input = `${b64({ alg: "HS256", typ: "JWT", kid: "r1" })}.${b64(good)}`;
    return `${input}.${createHmac("sha256", pem).update(input).digest("base64url")}`;
  })();

  it.each([
    [
      "expired",
      signJwt("RS256", rsa.privateKey, { kid: "r1" }, { ...good, exp: NOW / 1000 - 31 }),
      "token expired",
    ],
    [
      "wrong audience",
      signJwt("RS256", rsa.privateKey, { kid: "r1" }, { ...good, aud: ["other"] }),
      "wrong audience",
    ],
    [
      "wrong issuer",
      signJwt("RS256", rsa.privateKey, { kid: "r1" }, { ...good, iss: "https://evil" }),
      "wrong issuer",
    ],
    ["alg none", `${b64({ alg: "none", kid: "r1" })}.${b64(good)}.`, "algorithm not allowed"],
    ["HS256 signed with the public key", hs256WithPublicKey, "algorithm not allowed"],
    ["unknown kid", signJwt("RS256", other.privateKey, { kid: "nope" }, good), "unknown key id"],
    [
      "signed by another key under a known kid",
      signJwt("RS256", other.privateKey, { kid: "r1" }, good),
      "invalid signature",
    ],
    [
      "ES256 header on an RSA key",
      signJwt("RS256", rsa.privateKey, { kid: "r1" }, good).replace(
        /^[^.]+/,
        b64({ alg: "ES256", kid: "r1" }),
      ),
      "invalid signature",
    ],
    ["no expiry", signJwt("RS256", rsa.privateKey, { kid: "r1" }, { ...good, exp: undefined }), "no expiry"],
    [
      "not yet valid",
      signJwt("RS256", rsa.privateKey, { kid: "r1" }, { ...good, nbf: NOW / 1000 + 60 }),
      "token not yet valid",
    ],
    ["garbage", "a.b", "malformed token"],
    ["non-JSON header", "bm90anNvbg.e30.", "malformed token"],
    ["huge", `${"a".repeat(MAX_TOKEN_BYTES)}.b.c`, "token too large"],
    [
      "crit header",
      signJwt("RS256", rsa.privateKey, { kid: "r1", crit: ["x"] }, good),
      "unsupported critical header",
    ],
  ])("refuses %s", (_name, token, reason) => {
    const r = verifyJwt(token, p, NOW);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toBe(reason);
      expect(r.wwwAuthenticate).toMatch(/^Bearer realm="weft", error="invalid_token"/);
    }
  });

  it("accepts within the clock skew, refuses beyond it", () => {
    const t = signJwt("RS256", rsa.privateKey, { kid: "r1" }, { ...good, exp: NOW / 1000 - 29 });
    expect(verifyJwt(t, p, NOW).ok).toBe(true);
    expect(verifyJwt(t, p, NOW + 2_000).ok).toBe(false);
  });

  it("refuses an algorithm the provider does not allow even with a valid signature", () => {
    const only = { ...p, algorithms: ["ES256" as const] };
    expect(verifyJwt(signJwt("RS256", rsa.privateKey, { kid: "r1" }, good), only, NOW).ok).toBe(false);
  });
});

describe("JWKS key rotation", () => {
  it("re-reads the file on an unknown kid, at most once per minRefreshMs", () => {
    const clock = new VirtualClock(NOW);
    const file = jwksFile([jwk(rsa.publicKey, "r1")]);
    const p = provider(file, clock);
    const rotated = signJwt("RS256", other.privateKey, { kid: "r2" }, good);
    expect(verifyJwt(rotated, p, NOW).ok).toBe(false);
    const loads = p.keys.loads;
    writeFileSync(file, JSON.stringify({ keys: [jwk(rsa.publicKey, "r1"), jwk(other.publicKey, "r2")] }));
    // Within minRefreshMs of the last unknown-kid refresh: no re-read.
    expect(verifyJwt(rotated, p, NOW).ok).toBe(false);
    expect(p.keys.loads).toBe(loads);
    clock.advance(10_000);
    expect(verifyJwt(rotated, p, clock.now()).ok).toBe(true);
    expect(p.keys.loads).toBe(loads + 1);
  });

  it("keeps the last good keys when the file turns bad", () => {
    const clock = new VirtualClock(NOW);
    const file = jwksFile([jwk(rsa.publicKey, "r1")]);
    const p = provider(file, clock);
    writeFileSync(file, "{not json");
    clock.advance(300_000);
    expect(verifyJwt(signJwt("RS256", rsa.privateKey, { kid: "r1" }, good), p, clock.now()).ok).toBe(true);
  });

  it("refuses private keys, symmetric keys and short RSA keys in a JWKS", () => {
    const short = generateKeyPairSync("rsa", { modulusLength: 1024 });
    const r = parseJwks(
      JSON.stringify({
        keys: [
          { ...rsa.privateKey.export({ format: "jwk" }), kid: "p" },
          { kty: "oct", k: "c2VjcmV0", kid: "h" },
          jwk(short.publicKey, "s"),
          jwk(ec.publicKey, "ok"),
        ],
      }),
    );
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.keys.map((k) => k.kid)).toEqual(["ok"]);
      expect(r.skipped).toHaveLength(3);
    }
    expect(parseJwks("[]").ok).toBe(false);
  });
});

describe("authenticate", () => {
  const clock = new VirtualClock(NOW);
  const p = provider(jwksFile([jwk(rsa.publicKey, "r1")]), clock);
  const token = signJwt("RS256", rsa.privateKey, { kid: "r1" }, good);

  it("requires a token unless optional; a bad token is refused even when optional", () => {
    expect(authenticate({ providers: [p], optional: false }, undefined, clock)).toMatchObject({
      ok: false,
      wwwAuthenticate: 'Bearer realm="weft"',
    });
    expect(authenticate({ providers: [p], optional: true }, undefined, clock).ok).toBe(true);
    expect(authenticate({ providers: [p], optional: true }, "Bearer x.y.z", clock).ok).toBe(false);
    expect(authenticate({ providers: [p], optional: false }, `Bearer ${token}`, clock).ok).toBe(true);
    expect(authenticate({ providers: [p], optional: false }, `Basic ${token}`, clock).ok).toBe(false);
  });

  it("parses bearer tokens strictly", () => {
    expect(bearerToken("bearer abc.def.ghi")).toBe("abc.def.ghi");
    expect(bearerToken("Bearer a b")).toBeNull();
    expect(bearerToken(undefined)).toBeUndefined();
  });

  it("turns claims into safe header values", () => {
    const claims = { sub: "alice", n: 3, realm: { role: "admin" }, bad: "a\r\nx-evil: 1", list: ["a"] };
    expect(claimValue(claims, "sub")).toBe("alice");
    expect(claimValue(claims, "n")).toBe("3");
    expect(claimValue(claims, "realm.role")).toBe("admin");
    expect(claimValue(claims, "list")).toBe('["a"]');
    expect(claimValue(claims, "bad")).toBeUndefined();
    expect(claimValue(claims, "missing")).toBeUndefined();
    expect(claimValue(claims, "__proto__")).toBeUndefined();
  });

  it("decodes without trusting: header and payload must be JSON objects", () => {
    expect(decodeJws(`${b64([1])}.${b64({})}.`).ok).toBe(false);
  });
});

describe("JWKS from a URL", () => {
  it("fetches once, serves from the cache, refetches in the background on an unknown kid (rate limited)", async () => {
    const { createServer } = await import("node:http");
    let keys = [jwk(rsa.publicKey, "r1")];
    let fetches = 0;
    const server = createServer((_req, res) => {
      fetches++;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ keys }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as import("node:net").AddressInfo).port;
    try {
      const clock = new VirtualClock(NOW);
      const set = new JwksKeySet({
        source: { url: `http://127.0.0.1:${port}/jwks` },
        cacheMs: 60_000,
        minRefreshMs: 10_000,
        clock,
      });
      expect(await set.start()).toBe(true);
      const p = { ...provider(jwksFile([]), clock), keys: set };
      expect(verifyJwt(signJwt("RS256", rsa.privateKey, { kid: "r1" }, good), p, NOW).ok).toBe(true);
      expect(fetches).toBe(1);
      keys = [jwk(rsa.publicKey, "r1"), jwk(other.publicKey, "r2")];
      const rotatedToken = signJwt("RS256", other.privateKey, { kid: "r2" }, good);
      // Unknown kid: refused now, refetched behind the request.
      expect(verifyJwt(rotatedToken, p, NOW).ok).toBe(false);
      await set.refresh();
      expect(fetches).toBe(2);
      expect(verifyJwt(rotatedToken, p, NOW).ok).toBe(true);
      // A flood of unknown kids within minRefreshMs fetches nothing more.
      for (let i = 0; i < 20; i++)
        verifyJwt(signJwt("RS256", other.privateKey, { kid: `x${i}` }, good), p, NOW);
      await new Promise((r) => setTimeout(r, 50));
      expect(fetches).toBe(2);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it("keeps the previous keys when the URL fails", async () => {
    const clock = new VirtualClock(NOW);
    const set = new JwksKeySet({
      source: { url: "http://127.0.0.1:1/jwks" },
      cacheMs: 60_000,
      clock,
      fetchTimeoutMs: 500,
    });
    expect(await set.start()).toBe(false);
    expect(set.size).toBe(0);
  });
});
