import { X509Certificate } from "node:crypto";
import { isWeftError } from "@weft/core";
import { createTestRoot, crossSign, issueTestLeaf, type TestIssuer, type TestRoot } from "@weft/testkit";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { MAX_CHAIN_CERTS, MAX_PATH_CERTS } from "./chain-path.js";
import { clearSvidCache, SVID_REJECTIONS, type SvidRejection, TrustBundle, verifySvid } from "./svid.js";
import { cacheGet, cachePut, SVID_CACHE_MAX, svidCacheSize } from "./svid-cache.js";

const TD = "weft.test";
const HOUR = 3_600_000;
const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const id = (service: string, td = TD) => `spiffe://${td}/ns/default/svc/${service}`;
const der = (pem: string) => Buffer.from(new X509Certificate(pem).raw);

interface Case {
  name: string;
  chain: () => Buffer[];
  bundle?: () => TrustBundle;
  now?: number;
  expectService?: string | string[];
  /** A rejection reason, or the service of an accepted peer. */
  want: SvidRejection | { service: string };
}

let root: TestRoot;
let foreign: TestRoot;
let oldRoot: TestRoot;
let newRoot: TestRoot;
let bundle: TrustBundle;
const leaves: Record<string, Buffer[]> = {};

/** Leaf (and its intermediates) as the DER chain a peer would send. */
async function chainOf(issuer: TestIssuer, opts: Parameters<typeof issueTestLeaf>[1]): Promise<Buffer[]> {
  const leaf = await issueTestLeaf(issuer, opts);
  return splitPem(leaf.chainPem).map(der);
}

function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** root → n intermediates (cA) → leaf for "web". */
async function deepChain(n: number): Promise<Buffer[]> {
  let issuer: TestIssuer = root;
  for (let i = 0; i < n; i++)
    issuer = await issueTestLeaf(issuer, { uris: [], ca: true, commonName: `int ${i}` });
  return chainOf(issuer, { uris: [id("web")] });
}

beforeAll(async () => {
  root = await createTestRoot({ commonName: "weft root" });
  foreign = await createTestRoot({ commonName: "someone else's root" });
  oldRoot = await createTestRoot({ commonName: "weft root 1" });
  newRoot = await createTestRoot({ commonName: "weft root 2" });
  bundle = TrustBundle.fromPem(TD, [root.certPem]);
  const now = Date.now();

  leaves.web = await chainOf(root, { uris: [id("web")] });
  leaves.noOptionalExts = await chainOf(root, { uris: [id("web")], keyUsage: null, eku: null });
  leaves.foreign = await chainOf(foreign, { uris: [id("web")] });
  leaves.expired = await chainOf(root, {
    uris: [id("web")],
    notBefore: new Date(now - 2 * HOUR),
    notAfter: new Date(now - HOUR),
  });
  leaves.foreignExpired = await chainOf(foreign, {
    uris: [id("web")],
    notBefore: new Date(now - 2 * HOUR),
    notAfter: new Date(now - HOUR),
  });
  leaves.future = await chainOf(root, { uris: [id("web")], notBefore: new Date(now + HOUR) });
  leaves.noSan = await chainOf(root, { uris: [] });
  leaves.twoSans = await chainOf(root, { uris: [id("web"), id("api")] });
  leaves.notWorkload = await chainOf(root, { uris: [`spiffe://${TD}/web`] });
  leaves.withQuery = await chainOf(root, { uris: [`${id("web")}?admin=1`] });
  leaves.httpsUri = await chainOf(root, { uris: ["https://weft.test/ns/default/svc/web"] });
  leaves.otherTd = await chainOf(root, { uris: [id("web", "other.test")] });
  leaves.ca = await chainOf(root, { uris: [id("web")], ca: true });
  leaves.certSign = await chainOf(root, { uris: [id("web")], keyUsage: ["digitalSignature", "keyCertSign"] });
  leaves.crlSign = await chainOf(root, { uris: [id("web")], keyUsage: ["digitalSignature", "cRLSign"] });
  leaves.noDigitalSignature = await chainOf(root, { uris: [id("web")], keyUsage: ["keyAgreement"] });
  leaves.serverAuthOnly = await chainOf(root, { uris: [id("web")], eku: [SERVER_AUTH] });
  leaves.clientAuthOnly = await chainOf(root, { uris: [id("web")], eku: [CLIENT_AUTH] });

  // An "intermediate" that may sign (keyCertSign) but is not a CA: must not extend a path.
  const notCa = await issueTestLeaf(root, {
    uris: [],
    ca: false,
    keyUsage: ["digitalSignature", "keyCertSign"],
  });
  leaves.viaNonCa = await chainOf(notCa, { uris: [id("web")] });
  const intermediate = await issueTestLeaf(root, { uris: [], ca: true });
  leaves.viaIntermediate = await chainOf(intermediate, { uris: [id("web")] });
  const expiredInt = await issueTestLeaf(root, {
    uris: [],
    ca: true,
    notBefore: new Date(now - 2 * HOUR),
    notAfter: new Date(now - HOUR),
  });
  leaves.viaExpiredIntermediate = await chainOf(expiredInt, { uris: [id("web")] });
  leaves.depth4 = await deepChain(4);
  leaves.depth5 = await deepChain(5);

  // Root rotation: a leaf of the new root, presented with the new root cross-signed by the old.
  const rotated = await issueTestLeaf(newRoot, { uris: [id("web")] });
  const cross = await crossSign(oldRoot, newRoot);
  leaves.rotatedBridge = [der(rotated.certPem), der(cross)];
  leaves.rotatedAlone = [der(rotated.certPem)];
  leaves.rotatedWithRoots = [der(rotated.certPem), der(cross), oldRoot.certDer];
});

const inOld = () => TrustBundle.fromPem(TD, [oldRoot.certPem]);
const inBoth = () => TrustBundle.fromPem(TD, [oldRoot.certPem, newRoot.certPem]);
const inNew = () => TrustBundle.fromPem(TD, [newRoot.certPem]);
const leaf = (name: string) => () => leaves[name] ?? [];

const cases: Case[] = [
  { name: "a mesh leaf", chain: leaf("web"), want: { service: "web" } },
  { name: "a leaf without keyUsage or EKU", chain: leaf("noOptionalExts"), want: { service: "web" } },
  { name: "a leaf under a CA intermediate", chain: leaf("viaIntermediate"), want: { service: "web" } },
  { name: "4 intermediates (path of 5)", chain: leaf("depth4"), want: { service: "web" } },
  {
    name: "expected service, one of several",
    chain: leaf("web"),
    expectService: ["api", "web"],
    want: { service: "web" },
  },
  { name: "no certificate", chain: () => [], want: "no-certificate" },
  { name: "garbage DER", chain: () => [Buffer.from("not a certificate")], want: "malformed" },
  {
    name: "garbage intermediate",
    chain: () => [...leaf("web")(), Buffer.from([0x30, 0x03, 1, 2, 3])],
    want: "malformed",
  },
  { name: "a foreign CA's leaf", chain: leaf("foreign"), want: "untrusted" },
  { name: "a foreign CA's expired leaf", chain: leaf("foreignExpired"), want: "untrusted" },
  { name: "an intermediate that is not a CA", chain: leaf("viaNonCa"), want: "untrusted" },
  { name: "5 intermediates (path too long)", chain: leaf("depth5"), want: "untrusted" },
  {
    name: `more than ${MAX_CHAIN_CERTS} certificates`,
    chain: () => Array.from({ length: MAX_CHAIN_CERTS + 1 }, () => leaf("web")()[0] as Buffer),
    want: "untrusted",
  },
  { name: "our CA's expired leaf", chain: leaf("expired"), want: "expired" },
  {
    name: "a valid leaf checked after it ends",
    chain: leaf("web"),
    now: Date.now() + 2 * HOUR,
    want: "expired",
  },
  { name: "an expired intermediate", chain: leaf("viaExpiredIntermediate"), want: "expired" },
  { name: "a leaf valid from an hour ahead", chain: leaf("future"), want: "not-yet-valid" },
  { name: "no URI SAN", chain: leaf("noSan"), want: "san-count" },
  { name: "two URI SANs", chain: leaf("twoSans"), want: "san-count" },
  { name: "a SPIFFE ID that is not a workload", chain: leaf("notWorkload"), want: "san-invalid" },
  { name: "a SPIFFE ID with a query", chain: leaf("withQuery"), want: "san-invalid" },
  { name: "an https URI", chain: leaf("httpsUri"), want: "san-invalid" },
  { name: "another trust domain", chain: leaf("otherTd"), want: "trust-domain" },
  { name: "a CA certificate as leaf", chain: leaf("ca"), want: "leaf-is-ca" },
  { name: "keyCertSign on a leaf", chain: leaf("certSign"), want: "leaf-is-ca" },
  { name: "cRLSign on a leaf", chain: leaf("crlSign"), want: "leaf-is-ca" },
  { name: "keyUsage without digitalSignature", chain: leaf("noDigitalSignature"), want: "key-usage" },
  { name: "EKU serverAuth only", chain: leaf("serverAuthOnly"), want: "ext-key-usage" },
  { name: "EKU clientAuth only", chain: leaf("clientAuthOnly"), want: "ext-key-usage" },
  { name: "not the expected service", chain: leaf("web"), expectService: "api", want: "identity-mismatch" },
  // Root rotation by cross-signing.
  {
    name: "rotation: old bundle, leaf + bridge",
    chain: leaf("rotatedBridge"),
    bundle: inOld,
    want: { service: "web" },
  },
  {
    name: "rotation: both roots, leaf + bridge",
    chain: leaf("rotatedBridge"),
    bundle: inBoth,
    want: { service: "web" },
  },
  {
    name: "rotation: new bundle, leaf + bridge",
    chain: leaf("rotatedBridge"),
    bundle: inNew,
    want: { service: "web" },
  },
  {
    name: "rotation: old bundle, leaf + bridge + root",
    chain: leaf("rotatedWithRoots"),
    bundle: inOld,
    want: { service: "web" },
  },
  {
    name: "rotation: old bundle, leaf without bridge",
    chain: leaf("rotatedAlone"),
    bundle: inOld,
    want: "untrusted",
  },
];

describe("verifySvid", () => {
  it("has a case for every rejection reason", () => {
    const covered = new Set(cases.map((c) => (typeof c.want === "string" ? c.want : "ok")));
    for (const reason of SVID_REJECTIONS) expect(covered, reason).toContain(reason);
  });

  it.each(cases)("$name", (c) => {
    clearSvidCache();
    const got = verifySvid(c.chain(), c.bundle?.() ?? bundle, {
      ...(c.now === undefined ? {} : { now: c.now }),
      ...(c.expectService === undefined ? {} : { expectService: c.expectService }),
    });
    if (typeof c.want === "string") {
      expect(got).toMatchObject({ ok: false, reason: c.want });
      if (!got.ok) expect(got.detail.length).toBeGreaterThan(0);
    } else {
      expect(got).toMatchObject({
        ok: true,
        spiffeId: id(c.want.service),
        identity: { trustDomain: TD, namespace: "default", service: c.want.service },
      });
    }
  });

  it("reports the SPIFFE parse reason as the detail of san-invalid", () => {
    expect(verifySvid(leaves.notWorkload ?? [], bundle)).toEqual({
      ok: false,
      reason: "san-invalid",
      detail: "path is not /ns/<namespace>/svc/<service>",
    });
  });

  it("reports the leaf's notAfter", () => {
    const web = leaves.web ?? [];
    const got = verifySvid(web, bundle);
    expect(got.ok && got.notAfter).toBe(Date.parse(new X509Certificate(web[0] as Buffer).validTo));
  });

  it("serves repeats from the cache but still honours `now` and expectService", () => {
    clearSvidCache();
    const web = leaves.web ?? [];
    expect(verifySvid(web, bundle).ok).toBe(true);
    expect(verifySvid(web, bundle).ok).toBe(true);
    expect(verifySvid(web, bundle, { now: Date.now() + 2 * HOUR })).toMatchObject({ reason: "expired" });
    expect(verifySvid(web, bundle, { expectService: "api" })).toMatchObject({ reason: "identity-mismatch" });
    // Another bundle (root withdrawn) is another cache key.
    expect(verifySvid(web, TrustBundle.fromPem(TD, [foreign.certPem]))).toMatchObject({
      reason: "untrusted",
    });
  });

  it("says why a path that is too long is refused", () => {
    expect(verifySvid(leaves.depth5 ?? [], bundle)).toMatchObject({
      reason: "untrusted",
      detail: expect.stringContaining(`at most ${MAX_PATH_CERTS} certificates`),
    });
  });

  it("keeps the cache bounded, evicting the least recently used", () => {
    clearSvidCache();
    const entry = {
      spiffeId: id("web"),
      identity: { trustDomain: TD, namespace: "default", service: "web" },
    };
    const put = (k: string) => cachePut(k, { ...entry, leafNotAfter: 10, notBefore: 0, notAfter: 10 });
    for (let i = 0; i < SVID_CACHE_MAX; i++) put(`k${i}`);
    expect(cacheGet("k0", 5)).toBeDefined(); // k0 is now the most recent; k1 the oldest
    put("one more");
    expect(svidCacheSize()).toBe(SVID_CACHE_MAX);
    expect(cacheGet("k1", 5)).toBeUndefined();
    expect(cacheGet("k0", 5)).toBeDefined();
    expect(cacheGet("k2", 11)).toBeUndefined(); // past the path's notAfter
    clearSvidCache();
  });

  it("never throws on random bytes, and refuses them", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 4 }), (parts) => {
        const got = verifySvid(
          parts.map((p) => Buffer.from(p)),
          bundle,
        );
        expect(got.ok).toBe(false);
        if (!got.ok) expect(["no-certificate", "malformed"]).toContain(got.reason);
      }),
      { numRuns: 300 },
    );
  });

  it("never throws on a mesh leaf with corrupted bytes", () => {
    const good = (leaves.web ?? [])[0] as Buffer;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: good.length - 1 }), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        (flips) => {
          const bad = Buffer.from(good);
          for (const [at, xor] of flips) bad[at] = (bad[at] ?? 0) ^ xor;
          const got = verifySvid([bad], bundle);
          if (!got.ok) expect(SVID_REJECTIONS).toContain(got.reason);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("TrustBundle.fromPem", () => {
  it("refuses a trust domain that is not bare, and a root that is not a certificate", () => {
    for (const td of ["weft.test:8443", "user@weft.test", "Weft.Test", "weft.test/x", ""]) {
      expect(() => TrustBundle.fromPem(td, [root.certPem]), td).toThrowError(
        expect.objectContaining({ code: "WEFT_ERR_CONFIG_INVALID" }),
      );
    }
    try {
      TrustBundle.fromPem(TD, ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"]);
      expect.unreachable();
    } catch (e) {
      expect(isWeftError(e, "WEFT_ERR_CONFIG_INVALID")).toBe(true);
    }
  });

  it("splits a PEM string holding several roots", () => {
    const b = TrustBundle.fromPem(TD, [oldRoot.certPem + newRoot.certPem]);
    expect(b.roots).toHaveLength(2);
    expect(b.id).not.toBe(TrustBundle.fromPem(TD, [oldRoot.certPem]).id);
  });
});
