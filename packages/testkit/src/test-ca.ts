// @peculiar/x509 resolves its algorithm registry through tsyringe, which needs
// the Reflect metadata polyfill loaded before the library itself.
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { toPem } from "@weft/core";

/**
 * A tiny certificate forge for tests: ECDSA P-256 roots, leaves shaped like
 * the ones the mesh CA issues (or deliberately broken ones) and cross-signed
 * roots for rotation tests. Never used by production code.
 */

const KEY_ALG = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;
const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const MINUTE = 60_000;

export type KeyUsageName = keyof typeof x509.KeyUsageFlags;

/** Anything that can sign: a root, or a leaf issued with `ca: true`. */
export interface TestIssuer {
  certPem: string;
  certDer: Buffer;
  keys: webcrypto.CryptoKeyPair;
  /** What a certificate signed by this issuer presents after itself; empty for a root. */
  chainPem?: string;
}

export type TestRoot = TestIssuer;

export interface TestLeaf extends TestIssuer {
  /** PKCS#8 PEM of the leaf's private key. */
  keyPem: string;
  /** The leaf, then the issuer's intermediates (never the root). */
  chainPem: string;
}

export interface TestRootOptions {
  commonName?: string;
  notBefore?: Date;
  notAfter?: Date;
}

export interface TestLeafOptions {
  /** URI SANs; `[]` leaves the SAN extension out. */
  uris: string[];
  commonName?: string;
  /** basicConstraints cA (default false). */
  ca?: boolean;
  /** Key usages; `null` leaves the extension out. Default digitalSignature (plus keyCertSign, cRLSign when `ca`). */
  keyUsage?: readonly KeyUsageName[] | null;
  /** Extended key usage OIDs; `null` leaves the extension out. Default serverAuth + clientAuth. */
  eku?: string[] | null;
  notBefore?: Date;
  notAfter?: Date;
}

export async function createTestRoot(opts: TestRootOptions = {}): Promise<TestRoot> {
  const now = Date.now();
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${opts.commonName ?? "Weft Test Root"}`,
    keys,
    notBefore: opts.notBefore ?? new Date(now - MINUTE),
    notAfter: opts.notAfter ?? new Date(now + 24 * 60 * MINUTE),
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(caUsages(), true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString("pem"), certDer: Buffer.from(cert.rawData), keys };
}

export async function issueTestLeaf(issuer: TestIssuer, opts: TestLeafOptions): Promise<TestLeaf> {
  const now = Date.now();
  const ca = opts.ca ?? false;
  const keys = await newKeys();
  const issuerCert = new x509.X509Certificate(issuer.certDer);
  const extensions: x509.Extension[] = [new x509.BasicConstraintsExtension(ca, undefined, true)];
  const usage = opts.keyUsage === undefined ? defaultUsage(ca) : opts.keyUsage;
  if (usage !== null) extensions.push(new x509.KeyUsagesExtension(usageFlags(usage), true));
  const eku = opts.eku === undefined ? [SERVER_AUTH, CLIENT_AUTH] : opts.eku;
  if (eku !== null) extensions.push(new x509.ExtendedKeyUsageExtension(eku, false));
  if (opts.uris.length > 0) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension(
        opts.uris.map((value) => ({ type: "url" as const, value })),
        false,
      ),
    );
  }
  extensions.push(
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(issuerCert.publicKey),
  );
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${opts.commonName ?? "weft test leaf"}`,
    issuer: issuerCert.subjectName,
    notBefore: opts.notBefore ?? new Date(now - MINUTE),
    notAfter: opts.notAfter ?? new Date(now + 60 * MINUTE),
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: SIGNING,
    extensions,
  });
  const certPem = cert.toString("pem");
  const pkcs8 = await webcrypto.subtle.exportKey("pkcs8", keys.privateKey);
  return {
    certPem,
    certDer: Buffer.from(cert.rawData),
    keys,
    keyPem: toPem(pkcs8, "PRIVATE KEY"),
    chainPem: joinPem(certPem, issuer.chainPem),
  };
}

/**
 * The rotation bridge: `newRoot`'s subject, public key and key identifier,
 * issued and signed by `oldRoot`, so a peer that trusts only the old root
 * accepts leaves of the new one.
 */
export async function crossSign(oldRoot: TestRoot, newRoot: TestRoot): Promise<string> {
  const oldCert = new x509.X509Certificate(oldRoot.certDer);
  const newCert = new x509.X509Certificate(newRoot.certDer);
  const ski = newCert.getExtension(x509.SubjectKeyIdentifierExtension);
  const cert = await x509.X509CertificateGenerator.create({
    subject: newCert.subjectName,
    issuer: oldCert.subjectName,
    notBefore: newCert.notBefore,
    notAfter: newCert.notAfter,
    publicKey: newCert.publicKey,
    signingKey: oldRoot.keys.privateKey,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(caUsages(), true),
      ski ?? (await x509.SubjectKeyIdentifierExtension.create(newCert.publicKey)),
      await x509.AuthorityKeyIdentifierExtension.create(oldCert.publicKey),
    ],
  });
  return cert.toString("pem");
}

async function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(KEY_ALG, true, ["sign", "verify"]);
}

function caUsages(): number {
  return usageFlags(["keyCertSign", "cRLSign", "digitalSignature"]);
}

function defaultUsage(ca: boolean): KeyUsageName[] {
  return ca ? ["digitalSignature", "keyCertSign", "cRLSign"] : ["digitalSignature"];
}

function usageFlags(names: readonly KeyUsageName[]): number {
  return names.reduce((flags, n) => flags | x509.KeyUsageFlags[n], 0);
}

function joinPem(...parts: (string | undefined)[]): string {
  return parts
    .filter((p): p is string => p !== undefined && p.trim() !== "")
    .map((p) => (p.endsWith("\n") ? p : `${p}\n`))
    .join("");
}
