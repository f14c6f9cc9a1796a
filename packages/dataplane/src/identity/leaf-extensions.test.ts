import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DerError } from "@weft/core";
import { createTestRoot, issueTestLeaf, type TestRoot } from "@weft/testkit";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { createKeyAndCsr } from "./csr.js";
import { KEY_USAGE, readLeafExtensions } from "./leaf-extensions.js";

let root: TestRoot;
beforeAll(async () => {
  root = await createTestRoot();
});

const der = (pem: string) => new X509Certificate(pem).raw;

describe("readLeafExtensions", () => {
  it("reads the X.509-SVID profile", async () => {
    const leaf = await issueTestLeaf(root, { uris: ["spiffe://weft.local/ns/default/svc/web"] });
    const e = readLeafExtensions(der(leaf.certPem));
    expect(e.uris).toEqual(["spiffe://weft.local/ns/default/svc/web"]);
    expect(e.otherSans).toBe(0);
    expect(e.ca).toBe(false);
    expect([...(e.keyUsage ?? [])]).toEqual([KEY_USAGE.digitalSignature]);
    expect(e.extKeyUsage).toEqual(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
  });

  it("agrees with node's reading of the same certificates (cA, EKU) across profiles", async () => {
    const profiles = [
      { uris: ["spiffe://a/x", "spiffe://b/y"] },
      { uris: [], keyUsage: null, eku: null },
      { uris: ["spiffe://weft.local/ns/default/svc/x"], ca: true },
      { uris: ["spiffe://weft.local/ns/default/svc/x"], keyUsage: ["keyCertSign", "cRLSign"] as const },
      { uris: ["spiffe://weft.local/ns/default/svc/x"], eku: ["1.3.6.1.5.5.7.3.1"] },
    ];
    for (const p of profiles) {
      const leaf = await issueTestLeaf(root, {
        ...p,
        keyUsage: p.keyUsage === undefined ? undefined : p.keyUsage && [...p.keyUsage],
      });
      const node = new X509Certificate(leaf.certPem);
      const e = readLeafExtensions(node.raw);
      expect(e.uris).toEqual(p.uris);
      expect(e.ca ?? false).toBe(node.ca);
      expect(e.extKeyUsage).toEqual(node.keyUsage);
      if (p.keyUsage?.includes("keyCertSign")) expect(e.keyUsage?.has(KEY_USAGE.keyCertSign)).toBe(true);
    }
  });

  it("reads the root's CA bit and key usages", () => {
    const e = readLeafExtensions(root.certDer);
    expect(e.ca).toBe(true);
    expect(e.keyUsage?.has(KEY_USAGE.keyCertSign)).toBe(true);
  });

  it("throws only DerError on arbitrary or mutated input", async () => {
    const good = der(
      (await issueTestLeaf(root, { uris: ["spiffe://weft.local/ns/default/svc/web"] })).certPem,
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        try {
          readLeafExtensions(Buffer.from(bytes));
        } catch (e) {
          return e instanceof DerError;
        }
        return true;
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.nat(good.length - 1), fc.integer({ min: 1, max: 255 }), (at, bits) => {
        const b = Buffer.from(good);
        b[at] = (b[at] as number) ^ bits;
        try {
          readLeafExtensions(b);
        } catch (e) {
          return e instanceof DerError;
        }
        return true;
      }),
      { numRuns: 1000 },
    );
  });

  it("refuses trailing bytes after the certificate", () => {
    expect(() => readLeafExtensions(Buffer.concat([root.certDer, Buffer.from([0])]))).toThrow(DerError);
  });
});

describe("createKeyAndCsr", () => {
  it("makes a CSR that openssl verifies, with CN and exactly the one URI SAN", async () => {
    const { csrPem, keyPem } = await createKeyAndCsr("web", "spiffe://weft.local/ns/default/svc/web");
    const dir = mkdtempSync(join(tmpdir(), "weft-csr-"));
    writeFileSync(join(dir, "r.csr"), csrPem);
    const text = execFileSync("openssl", ["req", "-in", join(dir, "r.csr"), "-noout", "-verify", "-text"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    expect(text).toContain("Subject: CN = web");
    expect(text).toMatch(
      /Subject Alternative Name:\s*\n\s*URI:spiffe:\/\/weft\.local\/ns\/default\/svc\/web\s*\n/,
    );
    expect(text).toContain("ASN1 OID: prime256v1");
    expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  it("uses a new key every time", async () => {
    const a = await createKeyAndCsr("web", "spiffe://weft.local/ns/default/svc/web");
    const b = await createKeyAndCsr("web", "spiffe://weft.local/ns/default/svc/web");
    expect(a.keyPem).not.toBe(b.keyPem);
  });
});
