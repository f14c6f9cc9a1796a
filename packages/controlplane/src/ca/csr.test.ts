import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isWeftError } from "@weft/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  armour,
  crypto,
  csrFor,
  derOf,
  expectCode,
  makeCsr,
  makeCsrObject,
  openssl,
  spiffeId,
  testKeys,
} from "./ca-fixtures.suite.js";
import { checkCsr } from "./csr.js";
import * as x509 from "./x509.js";

const TD = "weft.local";
const INVALID = "WEFT_ERR_CSR_INVALID";

/** Flips a bit in the signature (the last bytes of the DER). */
async function tamperedSignature(): Promise<string> {
  const der = derOf(await csrFor("web"));
  der[der.length - 3] = (der[der.length - 3] as number) ^ 0x01;
  return armour(der);
}

/** A SAN (or other) extension whose value is not DER of its type, in a correctly signed CSR. */
const rawExtension = (type: string, value: Uint8Array) => new x509.Extension(type, false, value);

const refusals: [string, () => Promise<string>][] = [
  ["an empty string", async () => ""],
  ["text that is not PEM", async () => "hello, CA"],
  ["a bare base64 DER without armour", async () => derOf(await csrFor("web")).toString("base64")],
  [
    "a CSR under a CERTIFICATE label",
    async () => armour(derOf(await csrFor("web")), "CERTIFICATE").replace(/\n$/, ""),
  ],
  ["two CSR PEM blocks", async () => (await csrFor("web")) + (await csrFor("web"))],
  ["garbage inside the PEM armour", async () => armour(Buffer.from("this is not DER at all"))],
  ["base64 that is not base64 inside the armour", async () => armour("!!!!not*base64@@@@")],
  ["a truncated CSR", async () => armour(derOf(await csrFor("web")).subarray(0, 60))],
  ["a tampered signature", tamperedSignature],
  [
    "two URI SANs",
    () =>
      makeCsr({
        sans: [
          { type: "url", value: spiffeId("web") },
          { type: "url", value: spiffeId("api") },
        ],
      }),
  ],
  [
    "a DNS SAN beside the URI",
    () =>
      makeCsr({
        sans: [
          { type: "url", value: spiffeId("web") },
          { type: "dns", value: "web.example.com" },
        ],
      }),
  ],
  [
    "an IP SAN beside the URI",
    () =>
      makeCsr({
        sans: [
          { type: "url", value: spiffeId("web") },
          { type: "ip", value: "10.0.0.1" },
        ],
      }),
  ],
  ["an email SAN instead of the URI", () => makeCsr({ sans: [{ type: "email", value: "web@weft.local" }] })],
  ["no SAN", () => makeCsr({ sans: null })],
  [
    "two SAN extensions",
    () =>
      makeCsr({
        extensions: [new x509.SubjectAlternativeNameExtension([{ type: "url", value: spiffeId("web") }])],
      }),
  ],
  ["cA=true requested via basicConstraints", () => makeCsr({ ca: true })],
  ["another trust domain", () => makeCsr({ uri: spiffeId("web", "other.example") })],
  ["a trust domain that only starts like ours", () => makeCsr({ uri: spiffeId("web", "weft.local.evil") })],
  ["a namespace other than default", () => makeCsr({ uri: spiffeId("web", TD, "prod") })],
  ["a path without /ns", () => makeCsr({ uri: `spiffe://${TD}/svc/web` })],
  ["a path with an extra segment", () => makeCsr({ uri: `${spiffeId("web")}/extra` })],
  ["a path with svc spelled otherwise", () => makeCsr({ uri: `spiffe://${TD}/ns/default/service/web` })],
  ["a path with a trailing slash", () => makeCsr({ uri: `${spiffeId("web")}/` })],
  ["a path with dot segments", () => makeCsr({ uri: `spiffe://${TD}/ns/default/svc/../svc/web` })],
  ["a bare trust domain", () => makeCsr({ uri: `spiffe://${TD}` })],
  ["a service that is not a DNS label", () => makeCsr({ uri: spiffeId("Web_1") })],
  ["a URI with a query", () => makeCsr({ uri: `${spiffeId("web")}?x=1` })],
  ["a URI with a fragment", () => makeCsr({ uri: `${spiffeId("web")}#f` })],
  ["a URI with a port", () => makeCsr({ uri: `spiffe://${TD}:8443/ns/default/svc/web` })],
  ["a URI with userinfo", () => makeCsr({ uri: `spiffe://admin@${TD}/ns/default/svc/web` })],
  ["a URI that is not spiffe://", () => makeCsr({ uri: `https://${TD}/ns/default/svc/web` })],
  ["an upper-case scheme", () => makeCsr({ uri: `SPIFFE://${TD}/ns/default/svc/web` })],
  ["an RSA 1024 key", () => csrFor("web", TD, "rsa1024")],
  ["an EC P-521 key", () => csrFor("web", TD, "p521")],
  ["a SPIFFE ID over 2048 bytes", () => makeCsr({ uri: `${spiffeId("web")}/${"a".repeat(2048)}` })],
  [
    "a 2049-byte SPIFFE ID of multi-byte characters",
    () => makeCsr({ uri: `spiffe://${TD}/ns/default/svc/${"é".repeat(1010)}` }),
  ],
  [
    "a signed CSR whose SAN extension is not DER",
    () =>
      makeCsr({ sans: null, extensions: [rawExtension("2.5.29.17", new Uint8Array([0x30, 0x05, 0x86]))] }),
  ],
  [
    "a signed CSR whose basicConstraints extension is not DER",
    () => makeCsr({ extensions: [rawExtension("2.5.29.19", new Uint8Array([0xff, 0x00]))] }),
  ],
  [
    "two extensionRequest attributes",
    () =>
      makeCsr({
        attributes: [
          new x509.ExtensionsAttribute([
            new x509.SubjectAlternativeNameExtension([{ type: "url", value: spiffeId("web") }]),
          ]),
          new x509.ExtensionsAttribute([new x509.BasicConstraintsExtension(true)]),
        ],
      }),
  ],
];

describe("checkCsr refuses", () => {
  it.each(refusals)("%s (WEFT_ERR_CSR_INVALID)", async (_name, make) => {
    await expectCode(checkCsr(await make(), TD), INVALID);
  });
});

describe("checkCsr accepts", () => {
  it.each([
    ["P-256", "p256"],
    ["P-384", "p384"],
    ["RSA 2048 (RSASSA-PKCS1-v1_5)", "rsa2048"],
  ] as const)("a %s CSR with one URI SAN and returns its identity", async (_name, key) => {
    const pem = await csrFor("web", TD, key);
    const r = await checkCsr(pem, TD);
    expect(r.identity).toEqual({ trustDomain: TD, namespace: "default", service: "web" });
    expect(r.spiffeId).toBe(spiffeId("web"));
    // The key handed on is the CSR's own.
    const { keys } = await testKeys(key);
    const spki = await crypto.subtle.exportKey("spki", keys.publicKey);
    expect(Buffer.from(r.publicKey.rawData).equals(Buffer.from(spki))).toBe(true);
  });

  it("a request for another trust domain when that is the mesh's", async () => {
    const r = await checkCsr(await csrFor("api", "corp.example"), "corp.example");
    expect(r.identity).toEqual({ trustDomain: "corp.example", namespace: "default", service: "api" });
  });

  it("the NEW CERTIFICATE REQUEST label and text around the block", async () => {
    const pem = (await csrFor("web")).replace(/CERTIFICATE REQUEST/g, "NEW CERTIFICATE REQUEST");
    const r = await checkCsr(`subject=CN = test\n${pem}trailing words\n`, TD);
    expect(r.identity.service).toBe("web");
  });

  it("ignores what the CA sets itself: cA=false asked for, other extensions", async () => {
    const pem = await makeCsr({
      ca: false,
      extensions: [new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign)],
    });
    expect((await checkCsr(pem, TD)).identity.service).toBe("web");
  });
});

/** Anything thrown other than a WeftError WEFT_ERR_CSR_INVALID fails the property. */
async function onlyCsrInvalid(pem: string, mayAccept = false): Promise<boolean> {
  try {
    await checkCsr(pem, TD);
    return mayAccept;
  } catch (err) {
    if (isWeftError(err) && err.code === INVALID) return true;
    throw err;
  }
}

describe("checkCsr never throws anything but WEFT_ERR_CSR_INVALID", () => {
  it("for arbitrary text and bytes in PEM armour", async () => {
    const body = fc.oneof(
      fc.string({ maxLength: 400 }),
      fc.string({ unit: "binary", maxLength: 400 }),
      fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b).toString("base64")),
      // DER-looking prefixes get further into the parser.
      fc
        .tuple(fc.constantFrom(0x30, 0x31, 0x02, 0x04, 0x06, 0xa0), fc.uint8Array({ maxLength: 400 }))
        .map(([tag, rest]) =>
          Buffer.concat([Buffer.from([tag, 0x82, rest.length >> 8, rest.length & 0xff]), rest]).toString(
            "base64",
          ),
        ),
    );
    await fc.assert(
      fc.asyncProperty(body, fc.boolean(), async (b, wrap) => {
        const pem = `-----BEGIN CERTIFICATE REQUEST-----\n${wrap ? b.replace(/.{1,64}/g, "$&\n") : `${b}\n`}-----END CERTIFICATE REQUEST-----\n`;
        return onlyCsrInvalid(pem);
      }),
      { numRuns: 300 },
    );
  });

  it("for a real CSR with bytes flipped, cut or inserted", async () => {
    const der = derOf(await csrFor("web"));
    const mutation = fc.oneof(
      fc.record({
        kind: fc.constant("flip" as const),
        at: fc.nat(der.length - 1),
        bits: fc.integer({ min: 1, max: 255 }),
      }),
      fc.record({ kind: fc.constant("cut" as const), at: fc.nat(der.length - 1) }),
      fc.record({
        kind: fc.constant("insert" as const),
        at: fc.nat(der.length),
        bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), async (ms) => {
        let d = Buffer.from(der);
        for (const m of ms) {
          const at = Math.min(m.at, d.length);
          if (m.kind === "flip" && at < d.length) d[at] = (d[at] as number) ^ m.bits;
          else if (m.kind === "cut") d = d.subarray(0, at);
          else if (m.kind === "insert") d = Buffer.concat([d.subarray(0, at), m.bytes, d.subarray(at)]);
        }
        // A mutation may leave the CSR intact (e.g. flips that cancel out); then accepting is right.
        return onlyCsrInvalid(armour(d), d.equals(der));
      }),
      { numRuns: 300 },
    );
  });

  it("for a correctly signed CSR whose SAN extension holds arbitrary bytes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 64 }), async (bytes) => {
        const csr = await makeCsrObject({ sans: null, extensions: [rawExtension("2.5.29.17", bytes)] });
        // Arbitrary bytes are never one well-formed URI SAN in our trust domain.
        return onlyCsrInvalid(csr.toString("pem"));
      }),
      { numRuns: 200 },
    );
  });
});

describe("checkCsr: signature algorithms from openssl", () => {
  const san = "subjectAltName=URI:spiffe://weft.local/ns/default/svc/web";
  async function opensslCsr(keyArgs: string[], extra: string[] = []): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), "weft-csr-alg-"));
    const out = join(dir, "r.csr");
    const r = await openssl([
      "req",
      "-new",
      ...keyArgs,
      "-nodes",
      "-subj",
      "/CN=web",
      "-addext",
      san,
      "-keyout",
      join(dir, "k.pem"),
      "-out",
      out,
      ...extra,
    ]);
    expect(r.ok, r.output).toBe(true);
    return readFile(out, "utf8");
  }

  it.each([
    ["EC P-256, SHA-256", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"], []],
    ["EC P-384, SHA-384", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1"], ["-sha384"]],
    ["RSA 2048, SHA-256", ["-newkey", "rsa:2048"], []],
    ["Ed25519", ["-newkey", "ed25519"], []],
  ])("accepts %s", async (_name, key, extra) => {
    const c = await checkCsr(await opensslCsr(key, extra), TD);
    expect(c.identity.service).toBe("web");
  });

  it.each([
    ["SHA-1", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"], ["-sha1"]],
    ["RSA-PSS", ["-newkey", "rsa:2048"], ["-sigopt", "rsa_padding_mode:pss", "-sha256"]],
  ])("refuses %s by name", async (_name, key, extra) => {
    const err = await checkCsr(await opensslCsr(key, extra), TD).catch((e: unknown) => e);
    expect(isWeftError(err, "WEFT_ERR_CSR_INVALID")).toBe(true);
    expect(String((err as Error).message)).toMatch(/signature algorithm is not allowed/);
  });
});
