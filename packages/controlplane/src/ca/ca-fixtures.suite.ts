/**
 * Test helpers shared by the CA tests (not a test file itself): CSRs built
 * with WebCrypto and @peculiar/x509, certificate parsing, and the real
 * `openssl verify` run on files in a temp dir.
 */
import { execFile } from "node:child_process";
import { webcrypto } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isWeftError, toPem } from "@weft/core";
import { expect } from "vitest";
import * as x509 from "./x509.js";

export const crypto = webcrypto;

export const OID = {
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectKeyId: "2.5.29.14",
  authorityKeyId: "2.5.29.35",
} as const;

export type KeyKind = "p256" | "p384" | "p521" | "rsa1024" | "rsa2048";

export interface TestKeys {
  keys: webcrypto.CryptoKeyPair;
  signingAlgorithm: webcrypto.Algorithm | webcrypto.EcdsaParams;
}

type GenParams = webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams;
const KEY_PARAMS: Record<KeyKind, { gen: GenParams; sign: TestKeys["signingAlgorithm"] }> = {
  p256: { gen: { name: "ECDSA", namedCurve: "P-256" }, sign: { name: "ECDSA", hash: "SHA-256" } },
  p384: { gen: { name: "ECDSA", namedCurve: "P-384" }, sign: { name: "ECDSA", hash: "SHA-384" } },
  p521: { gen: { name: "ECDSA", namedCurve: "P-521" }, sign: { name: "ECDSA", hash: "SHA-512" } },
  rsa1024: { gen: rsa(1024), sign: { name: "RSASSA-PKCS1-v1_5" } },
  rsa2048: { gen: rsa(2048), sign: { name: "RSASSA-PKCS1-v1_5" } },
};

function rsa(bits: number): webcrypto.RsaHashedKeyGenParams {
  return {
    name: "RSASSA-PKCS1-v1_5",
    modulusLength: bits,
    publicExponent: new Uint8Array([1, 0, 1]),
    hash: "SHA-256",
  };
}

/** Key pairs are cached per kind: RSA generation is slow and tests do not need fresh keys. */
const keyCache = new Map<KeyKind, Promise<TestKeys>>();

export function testKeys(kind: KeyKind = "p256"): Promise<TestKeys> {
  let k = keyCache.get(kind);
  if (!k) {
    const p = KEY_PARAMS[kind];
    k = (crypto.subtle.generateKey(p.gen, true, ["sign", "verify"]) as Promise<webcrypto.CryptoKeyPair>).then(
      (keys) => ({ keys, signingAlgorithm: p.sign }),
    );
    keyCache.set(kind, k);
  }
  return k;
}

/** A fresh P-256 pair (for tests that must not share keys). */
export async function freshKeys(): Promise<TestKeys> {
  const p = KEY_PARAMS.p256;
  const keys = (await crypto.subtle.generateKey(p.gen, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  return { keys, signingAlgorithm: p.sign };
}

export function spiffeId(service: string, trustDomain = "weft.local", namespace = "default"): string {
  return `spiffe://${trustDomain}/ns/${namespace}/svc/${service}`;
}

export interface CsrOptions {
  key?: KeyKind | TestKeys;
  /** SAN entries; `null` leaves the SAN extension out. Default: the one URI of `uri`. */
  sans?: x509.JsonGeneralName[] | null;
  /** The one URI SAN when `sans` is not given. Default spiffe://weft.local/ns/default/svc/web. */
  uri?: string;
  /** Add basicConstraints with this cA flag. */
  ca?: boolean;
  /** Further extensions, appended as given (raw ones included). */
  extensions?: x509.Extension[];
  /** Replace the extensionRequest attribute(s) entirely. */
  attributes?: x509.Attribute[];
  commonName?: string;
}

export async function makeCsrObject(opts: CsrOptions = {}): Promise<x509.Pkcs10CertificateRequest> {
  const k = typeof opts.key === "object" ? opts.key : await testKeys(opts.key ?? "p256");
  const extensions: x509.Extension[] = [];
  const sans =
    opts.sans === undefined ? [{ type: "url" as const, value: opts.uri ?? spiffeId("web") }] : opts.sans;
  if (sans !== null) extensions.push(new x509.SubjectAlternativeNameExtension(sans, false));
  if (opts.ca !== undefined) extensions.push(new x509.BasicConstraintsExtension(opts.ca, undefined, true));
  extensions.push(...(opts.extensions ?? []));
  const params: x509.Pkcs10CertificateRequestCreateParams = {
    name: `CN=${opts.commonName ?? "test"}`,
    keys: k.keys,
    signingAlgorithm: k.signingAlgorithm,
  };
  if (opts.attributes) params.attributes = opts.attributes;
  else params.extensions = extensions;
  return x509.Pkcs10CertificateRequestGenerator.create(params, crypto);
}

/** A PEM CSR (ends with a newline). */
export async function makeCsr(opts: CsrOptions = {}): Promise<string> {
  return `${(await makeCsrObject(opts)).toString("pem").trimEnd()}\n`;
}

/** A P-256 CSR for `service`'s workload identity. */
export function csrFor(service: string, trustDomain = "weft.local", key: KeyKind | TestKeys = "p256") {
  return makeCsr({ uri: spiffeId(service, trustDomain), key });
}

export function armour(der: Uint8Array | string, label = "CERTIFICATE REQUEST"): string {
  // A string is armoured as is (tests put non-base64 text inside on purpose).
  if (typeof der !== "string") return toPem(der, label);
  return `-----BEGIN ${label}-----\n${der.replace(/.{1,64}/g, "$&\n")}-----END ${label}-----\n`;
}

export function derOf(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, "").replace(/\s+/g, ""), "base64");
}

/** The certificates in a PEM string, each ending with a newline. */
export function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----\n[\s\S]+?-----END CERTIFICATE-----\n/g) ?? [];
}

export function cert(pem: string): x509.X509Certificate {
  return new x509.X509Certificate(pem);
}

export function ext<T extends x509.Extension>(c: x509.X509Certificate, type: new (raw: ArrayBuffer) => T): T {
  const e = c.getExtension(type as never) as T | null;
  if (!e) throw new Error(`certificate has no ${type.name}`);
  return e;
}

/** Whole seconds: X.509 times have no milliseconds. */
export function seconds(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

/** A positive 16-byte serial in hex without a leading zero byte, as the CA makes them. */
export function testSerial(): string {
  const b = Buffer.from(crypto.getRandomValues(new Uint8Array(16)));
  b[0] = ((b[0] as number) & 0x7f) | 0x10;
  return b.toString("hex");
}

/** Asserts that `p` rejects with a WeftError of `code` (never looks at the message). */
export async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  let err: unknown;
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(isWeftError(err) ? err.code : err).toBe(code);
}

// --- openssl ---

export interface OpensslResult {
  ok: boolean;
  output: string;
}

export function openssl(args: string[]): Promise<OpensslResult> {
  return new Promise((resolve) => {
    execFile("openssl", args, { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ ok: err === null, output: `${stdout}${stderr}` });
    });
  });
}

export interface VerifyOptions {
  /** Trusted roots (-CAfile). */
  trusted: string[];
  /** Intermediates the peer presents (-untrusted). */
  untrusted?: string[];
  leaf: string;
  purpose?: "sslserver" | "sslclient";
  /** Verification time (ms since epoch); default now. Virtual-clock tests pass their time. */
  at?: number;
}

/** `openssl verify -x509_strict ...` on files in a temp dir. */
export async function opensslVerify(o: VerifyOptions): Promise<OpensslResult> {
  const dir = await mkdtemp(join(tmpdir(), "weft-ca-verify-"));
  try {
    const ca = join(dir, "ca.pem");
    const leaf = join(dir, "leaf.pem");
    await writeFile(ca, o.trusted.join(""));
    await writeFile(leaf, o.leaf);
    const args = ["verify", "-x509_strict", "-CAfile", ca];
    if (o.untrusted && o.untrusted.length > 0) {
      const u = join(dir, "untrusted.pem");
      await writeFile(u, o.untrusted.join(""));
      args.push("-untrusted", u);
    }
    if (o.purpose) args.push("-purpose", o.purpose);
    if (o.at !== undefined) args.push("-attime", String(Math.floor(o.at / 1000)));
    args.push(leaf);
    return await openssl(args);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Expects `openssl verify` to print "<file>: OK". */
export async function expectVerifies(o: VerifyOptions): Promise<void> {
  const r = await opensslVerify(o);
  expect(r.output).toMatch(/: OK\s*$/);
  expect(r.ok).toBe(true);
}
