/**
 * The built-in CA provider: ECDSA P-256 keys through WebCrypto, certificates
 * built with @peculiar/x509. Root keys are PKCS#8 in the provider state
 * (stored with the root record in the control plane's store, never served).
 *
 * Profiles:
 *   root   self-signed, cA=true pathLen=1 (one cross-signed root may sit
 *          between a leaf and a trusted root during a rotation), keyCertSign
 *          + cRLSign + digitalSignature, subject key identifier.
 *   cross  the new root's subject, key and key identifier, issued by the old
 *          root, cA=true pathLen=0.
 *   leaf   X.509-SVID: one URI SAN (critical when the subject is empty is not
 *          needed: the subject carries the service as CN), cA=false
 *          (critical), digitalSignature (critical), EKU serverAuth+clientAuth,
 *          authority and subject key identifiers.
 */
import { webcrypto } from "node:crypto";
import { toPem, weftError } from "@weft/core";
import { z } from "zod";
import { type CaProvider, type RootKeyMaterial, registerCaProvider } from "./provider.js";
import * as x509 from "./x509.js";

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;
const crypto = webcrypto;
type CryptoKey = webcrypto.CryptoKey;

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

function fromPem(pem: string): ArrayBuffer {
  const b64 = pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, "").replace(/\s+/g, "");
  const buf = Buffer.from(b64, "base64");
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
}

/** @peculiar/x509 ends PEM without a newline; concatenated chains need one. */
function pem(cert: x509.X509Certificate): string {
  return `${cert.toString("pem").trimEnd()}\n`;
}

/** DN attribute values: escape what RFC 4514 needs escaped. */
function dnValue(v: string): string {
  return v.replace(/([,+"\\<>;=])/g, "\\$1");
}

export class BuiltinCaProvider implements CaProvider {
  readonly name = "builtin";
  /** Imported signing keys by root certificate, so a sign does not re-import PKCS#8. */
  private readonly keys = new Map<string, Promise<CryptoKey>>();

  private signingKey(root: RootKeyMaterial): Promise<CryptoKey> {
    const cached = this.keys.get(root.certPem);
    if (cached) return cached;
    const k = crypto.subtle.importKey("pkcs8", fromPem(root.privateState), ALG, false, ["sign"]);
    // A bad key must not stay cached as a rejected promise.
    k.catch(() => this.keys.delete(root.certPem));
    if (this.keys.size > 16) this.keys.clear();
    this.keys.set(root.certPem, k);
    return k;
  }

  async generateRoot(req: {
    id: string;
    trustDomain: string;
    serialNumber: string;
    notBefore: Date;
    notAfter: Date;
  }): Promise<RootKeyMaterial> {
    const keys = (await crypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
    const name = `CN=Weft Root CA ${dnValue(req.id)}, O=${dnValue(req.trustDomain)}`;
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: req.serialNumber,
        subject: name,
        issuer: name,
        notBefore: req.notBefore,
        notAfter: req.notAfter,
        signingAlgorithm: SIGNING,
        publicKey: keys.publicKey,
        signingKey: keys.privateKey,
        extensions: [
          new x509.BasicConstraintsExtension(true, 1, true),
          new x509.KeyUsagesExtension(
            x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
            true,
          ),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        ],
      },
      crypto,
    );
    const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
    return { certPem: pem(cert), privateState: toPem(pkcs8, "PRIVATE KEY") };
  }

  async signLeaf(
    root: RootKeyMaterial,
    req: {
      spiffeId: string;
      commonName: string;
      publicKey: x509.PublicKey;
      serialNumber: string;
      notBefore: Date;
      notAfter: Date;
    },
  ): Promise<string> {
    const issuer = new x509.X509Certificate(root.certPem);
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: req.serialNumber,
        subject: `CN=${dnValue(req.commonName)}`,
        issuer: issuer.subjectName,
        notBefore: req.notBefore,
        notAfter: req.notAfter,
        signingAlgorithm: SIGNING,
        publicKey: req.publicKey,
        signingKey: await this.signingKey(root),
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([SERVER_AUTH, CLIENT_AUTH], false),
          new x509.SubjectAlternativeNameExtension([{ type: "url", value: req.spiffeId }], false),
          await x509.SubjectKeyIdentifierExtension.create(req.publicKey, false, crypto),
          await x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey, false, crypto),
        ],
      },
      crypto,
    );
    return pem(cert);
  }

  async crossSign(
    issuerRoot: RootKeyMaterial,
    subject: { certPem: string },
    req: { serialNumber: string; notAfter: Date },
  ): Promise<string> {
    const issuer = new x509.X509Certificate(issuerRoot.certPem);
    const subj = new x509.X509Certificate(subject.certPem);
    const notAfter = new Date(Math.min(req.notAfter.getTime(), issuer.notAfter.getTime()));
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: req.serialNumber,
        subject: subj.subjectName,
        issuer: issuer.subjectName,
        notBefore: subj.notBefore,
        notAfter,
        signingAlgorithm: SIGNING,
        publicKey: subj.publicKey,
        signingKey: await this.signingKey(issuerRoot),
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(
            x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
            true,
          ),
          await x509.SubjectKeyIdentifierExtension.create(subj.publicKey, false, crypto),
          await x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey, false, crypto),
        ],
      },
      crypto,
    );
    return pem(cert);
  }
}

registerCaProvider("builtin", {
  parseConfig: (raw) => {
    const r = z.strictObject({}).safeParse(raw ?? {});
    if (r.success) return r.data;
    const fields = r.error.issues.flatMap((i) => ("keys" in i ? i.keys : i.path.map(String)));
    throw weftError("WEFT_ERR_CONFIG_INVALID", {
      detail: `CA provider "builtin" takes no settings; got ${fields.join(", ") || "a non-object"}`,
    });
  },
  create: () => new BuiltinCaProvider(),
});
