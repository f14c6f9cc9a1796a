/**
 * The shared contract suite for CA providers (provider.ts): every provider
 * runs exactly these tests (as store/contract.suite.ts does for stores).
 * Certificates are parsed with @peculiar/x509 and node:crypto, and checked
 * by the real `openssl verify -x509_strict`.
 */
import { X509Certificate as NodeX509 } from "node:crypto";
import { beforeEach, describe, expect, it } from "vitest";
import {
  cert,
  crypto,
  expectVerifies,
  ext,
  freshKeys,
  OID,
  opensslVerify,
  pemBlocks,
  seconds,
  spiffeId,
  testSerial,
} from "./ca-fixtures.suite.js";
import type { CaProvider, RootKeyMaterial } from "./provider.js";
import * as x509 from "./x509.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Serials compare as numbers: libraries differ in case and leading zeros. */
const serialOf = (hex: string) => BigInt(`0x${hex}`);

export function describeCaProvider(name: string, make: () => CaProvider): void {
  describe(`CaProvider contract: ${name}`, () => {
    let provider: CaProvider;
    const now = Date.now();
    const rootValidity = { notBefore: seconds(now - HOUR), notAfter: seconds(now + 30 * DAY) };

    beforeEach(() => {
      provider = make();
    });

    const newRoot = (id = "r1", serialNumber = testSerial()) =>
      provider.generateRoot({ id, trustDomain: "weft.local", serialNumber, ...rootValidity });

    async function newLeaf(root: RootKeyMaterial, over: { service?: string; serialNumber?: string } = {}) {
      const keys = await freshKeys();
      const publicKey = await x509.PublicKey.create(keys.keys.publicKey, crypto);
      const req = {
        spiffeId: spiffeId(over.service ?? "web"),
        commonName: over.service ?? "web",
        publicKey,
        serialNumber: over.serialNumber ?? testSerial(),
        notBefore: seconds(now - 60_000),
        notAfter: seconds(now + DAY),
      };
      return { req, pem: await provider.signLeaf(root, req) };
    }

    it("has a name", () => {
      expect(provider.name).toMatch(/^[a-z0-9-]+$/);
    });

    describe("generateRoot", () => {
      it("returns a self-signed CA certificate (cA, keyCertSign) with the requested serial and validity", async () => {
        const serial = testSerial();
        const root = await newRoot("r1", serial);
        expect(pemBlocks(root.certPem)).toHaveLength(1);
        expect(root.privateState.length).toBeGreaterThan(0);

        const c = cert(root.certPem);
        expect(c.subject).toBe(c.issuer);
        expect(await c.isSelfSigned(crypto)).toBe(true);
        expect(serialOf(c.serialNumber)).toBe(serialOf(serial));
        expect(c.notBefore.getTime()).toBe(rootValidity.notBefore.getTime());
        expect(c.notAfter.getTime()).toBe(rootValidity.notAfter.getTime());
        expect(ext(c, x509.BasicConstraintsExtension).ca).toBe(true);
        expect(ext(c, x509.KeyUsagesExtension).usages & x509.KeyUsageFlags.keyCertSign).toBeTruthy();
        // A subject key identifier, so that leaves can name it (AKI).
        expect(ext(c, x509.SubjectKeyIdentifierExtension).keyId).toMatch(/^[0-9a-f]+$/);

        // node:crypto agrees.
        const n = new NodeX509(root.certPem);
        expect(n.ca).toBe(true);
        expect(n.checkIssued(n)).toBe(true);
        expect(n.verify(n.publicKey)).toBe(true);
      });

      it("gives each root its own key and subject", async () => {
        const a = cert((await newRoot("a")).certPem);
        const b = cert((await newRoot("b")).certPem);
        expect(a.subject).not.toBe(b.subject);
        expect(Buffer.from(a.publicKey.rawData).equals(Buffer.from(b.publicKey.rawData))).toBe(false);
      });
    });

    it("ends every certificate PEM with a newline, so that chains concatenate", async () => {
      const oldRoot = await newRoot("old");
      const next = await newRoot("new");
      const { pem: leaf } = await newLeaf(next);
      const cross = await provider.crossSign(oldRoot, next, {
        serialNumber: testSerial(),
        notAfter: rootValidity.notAfter,
      });
      for (const pem of [oldRoot.certPem, next.certPem, leaf, cross]) {
        expect(pem.endsWith("\n")).toBe(true);
        expect(pem.endsWith("\n\n")).toBe(false);
      }
      expect(pemBlocks(leaf + cross)).toEqual([leaf, cross]);
    });

    describe("signLeaf", () => {
      it("issues an X.509-SVID: one URI SAN, not a CA, digitalSignature only, server+client auth", async () => {
        const root = await newRoot();
        const { req, pem } = await newLeaf(root, { service: "api" });
        expect(pemBlocks(pem)).toHaveLength(1);
        const c = cert(pem);
        const r = cert(root.certPem);

        const san = ext(c, x509.SubjectAlternativeNameExtension).names.items;
        expect(san.map((n) => [n.type, n.value])).toEqual([["url", spiffeId("api")]]);
        expect(ext(c, x509.BasicConstraintsExtension).ca).toBe(false);
        expect(ext(c, x509.KeyUsagesExtension).usages).toBe(x509.KeyUsageFlags.digitalSignature);
        expect([...ext(c, x509.ExtendedKeyUsageExtension).usages].sort()).toEqual(
          [OID.serverAuth, OID.clientAuth].sort(),
        );
        expect(ext(c, x509.AuthorityKeyIdentifierExtension).keyId).toBe(
          ext(r, x509.SubjectKeyIdentifierExtension).keyId,
        );
        expect(c.issuer).toBe(r.subject);
        expect(serialOf(c.serialNumber)).toBe(serialOf(req.serialNumber));
        expect(c.notBefore.getTime()).toBe(req.notBefore.getTime());
        expect(c.notAfter.getTime()).toBe(req.notAfter.getTime());
        // The key certified is the one asked for.
        expect(Buffer.from(c.publicKey.rawData).equals(Buffer.from(req.publicKey.rawData))).toBe(true);

        const n = new NodeX509(pem);
        expect(n.ca).toBe(false);
        const nr = new NodeX509(root.certPem);
        expect(n.checkIssued(nr)).toBe(true);
        expect(n.verify(nr.publicKey)).toBe(true);
      });

      it("is accepted by openssl verify -x509_strict for sslserver and sslclient", async () => {
        const root = await newRoot();
        const { pem } = await newLeaf(root);
        await expectVerifies({ trusted: [root.certPem], leaf: pem, purpose: "sslserver" });
        await expectVerifies({ trusted: [root.certPem], leaf: pem, purpose: "sslclient" });
        // Control: another root does not vouch for it.
        const other = await newRoot("other");
        expect((await opensslVerify({ trusted: [other.certPem], leaf: pem, purpose: "sslserver" })).ok).toBe(
          false,
        );
      });

      it("signs with the root handed in, also after other roots were used", async () => {
        const a = await newRoot("a");
        const b = await newRoot("b");
        const fromA = await newLeaf(a);
        const fromB = await newLeaf(b);
        const fromA2 = await newLeaf(a);
        await expectVerifies({ trusted: [a.certPem], leaf: fromA.pem });
        await expectVerifies({ trusted: [b.certPem], leaf: fromB.pem });
        await expectVerifies({ trusted: [a.certPem], leaf: fromA2.pem });
        expect((await opensslVerify({ trusted: [a.certPem], leaf: fromB.pem })).ok).toBe(false);
      });
    });

    describe("crossSign", () => {
      it("re-issues the new root under the old one: subject and key of the new root, issuer the old", async () => {
        const oldRoot = await newRoot("old");
        const next = await newRoot("new");
        const serial = testSerial();
        const crossPem = await provider.crossSign(oldRoot, next, {
          serialNumber: serial,
          notAfter: rootValidity.notAfter,
        });
        expect(pemBlocks(crossPem)).toHaveLength(1);
        const x = cert(crossPem);
        const o = cert(oldRoot.certPem);
        const n = cert(next.certPem);
        expect(x.subject).toBe(n.subject);
        expect(x.issuer).toBe(o.subject);
        expect(Buffer.from(x.publicKey.rawData).equals(Buffer.from(n.publicKey.rawData))).toBe(true);
        expect(ext(x, x509.SubjectKeyIdentifierExtension).keyId).toBe(
          ext(n, x509.SubjectKeyIdentifierExtension).keyId,
        );
        expect(ext(x, x509.AuthorityKeyIdentifierExtension).keyId).toBe(
          ext(o, x509.SubjectKeyIdentifierExtension).keyId,
        );
        expect(ext(x, x509.BasicConstraintsExtension).ca).toBe(true);
        expect(serialOf(x.serialNumber)).toBe(serialOf(serial));
        expect(x.notAfter.getTime()).toBeLessThanOrEqual(rootValidity.notAfter.getTime());
        expect(new NodeX509(crossPem).verify(new NodeX509(oldRoot.certPem).publicKey)).toBe(true);
      });

      it("lets peers that trust only the old root accept leaves of the new root (and the new root too)", async () => {
        const oldRoot = await newRoot("old");
        const next = await newRoot("new");
        const cross = await provider.crossSign(oldRoot, next, {
          serialNumber: testSerial(),
          notAfter: rootValidity.notAfter,
        });
        const { pem: leaf } = await newLeaf(next);
        await expectVerifies({ trusted: [oldRoot.certPem], untrusted: [cross], leaf });
        await expectVerifies({ trusted: [oldRoot.certPem], untrusted: [cross], leaf, purpose: "sslclient" });
        await expectVerifies({ trusted: [next.certPem], untrusted: [cross], leaf });
        // Control: without the cross-signed certificate the old root alone does not reach the leaf.
        expect((await opensslVerify({ trusted: [oldRoot.certPem], leaf })).ok).toBe(false);
      });
    });
  });
}
