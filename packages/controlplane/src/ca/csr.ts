/**
 * What a CSR must be before the CA signs it (HARDENING: a CSR with more than
 * one URI SAN, or an identity the caller may not claim, is refused). The
 * checks here are about the CSR alone; whether the caller's token may act as
 * the service is decided by the HTTP layer with the identity returned.
 *
 * Everything the CSR asks for other than its key and its one SPIFFE ID is
 * ignored: the CA sets the profile itself (never cA, never other SANs).
 */
import { createPublicKey } from "node:crypto";
import { DEFAULT_NAMESPACE, parseWorkloadId, type WorkloadIdentity } from "@weft/api";
import { weftError } from "@weft/core";
import * as x509 from "./x509.js";

export interface CheckedCsr {
  spiffeId: string;
  identity: WorkloadIdentity;
  publicKey: x509.PublicKey;
}

const EXTENSION_REQUEST = "1.2.840.113549.1.9.14";
const SUBJECT_ALT_NAME = "2.5.29.17";
const BASIC_CONSTRAINTS = "2.5.29.19";
const PEM_BLOCK =
  /-----BEGIN (NEW )?CERTIFICATE REQUEST-----[\s\S]*?-----END (NEW )?CERTIFICATE REQUEST-----/g;

function refuse(detail: string): never {
  throw weftError("WEFT_ERR_CSR_INVALID", { detail });
}

function keyDescription(spki: ArrayBuffer): string | undefined {
  const key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === "ec") {
    if (d.namedCurve === "prime256v1" || d.namedCurve === "secp384r1") return undefined;
    return `EC curve ${d.namedCurve ?? "unknown"} (use P-256 or P-384)`;
  }
  if (key.asymmetricKeyType === "rsa") {
    const bits = d.modulusLength ?? 0;
    return bits >= 2048 && bits <= 8192 ? undefined : `RSA ${bits} bits (use 2048-8192)`;
  }
  if (key.asymmetricKeyType === "ed25519") return undefined;
  return `key type ${key.asymmetricKeyType ?? "unknown"} (use ECDSA P-256/P-384, Ed25519 or RSA)`;
}

/** Length of the DER element at the start of `der` (tag + length + content), or -1 if unreadable. */
function outerDerLength(der: Buffer): number {
  if (der.length < 2 || der[0] !== 0x30) return -1;
  const first = der[1] as number;
  if (first < 0x80) return 2 + first;
  const n = first & 0x7f;
  if (n === 0 || n > 3 || der.length < 2 + n) return -1;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + (der[2 + i] as number);
  return 2 + n + len;
}

/** Parses and checks a PEM CSR for `trustDomain`; throws WEFT_ERR_CSR_INVALID saying what is wrong. */
export async function checkCsr(pem: string, trustDomain: string): Promise<CheckedCsr> {
  const blocks = pem.match(PEM_BLOCK) ?? [];
  if (blocks.length !== 1) {
    refuse(
      blocks.length === 0
        ? "not a PEM certificate request (expected -----BEGIN CERTIFICATE REQUEST-----)"
        : "more than one certificate request in the PEM",
    );
  }
  const body = (blocks[0] as string).replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body)) refuse("the PEM body is not base64");
  const der = Buffer.from(body, "base64");
  // The parser stops at the end of the outer SEQUENCE: bytes after it would be signed by no one.
  if (outerDerLength(der) !== der.length) refuse("the DER has bytes outside the request's SEQUENCE");
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(der);
  } catch {
    refuse("the PEM does not hold a valid PKCS#10 request");
  }

  let weakKey: string | undefined;
  try {
    weakKey = keyDescription(csr.publicKey.rawData);
  } catch {
    refuse("its public key cannot be read");
  }
  if (weakKey) refuse(`unsupported public key: ${weakKey}`);
  let signed = false;
  try {
    signed = await csr.verify();
  } catch {
    signed = false;
  }
  if (!signed) refuse("its signature does not verify with its own key (proof of possession failed)");

  // Attributes and extensions are parsed lazily by the library: a signed CSR can still hold malformed ones.
  const parsed = <T>(read: () => T, what: string): T => {
    try {
      return read();
    } catch {
      refuse(`its ${what} cannot be parsed`);
    }
  };
  const extensionRequests = parsed(() => csr.getAttributes(EXTENSION_REQUEST), "attributes");
  if (extensionRequests.length > 1) refuse("more than one extensionRequest attribute");
  let uris: string[] = [];
  let sanSeen = false;
  for (const ext of parsed(() => csr.extensions, "requested extensions")) {
    if (ext.type === BASIC_CONSTRAINTS) {
      const bc = parsed(() => new x509.BasicConstraintsExtension(ext.rawData), "basicConstraints");
      if (bc.ca) refuse("it asks for a CA certificate (basicConstraints cA=true)");
    } else if (ext.type === SUBJECT_ALT_NAME) {
      if (sanSeen) refuse("more than one subjectAltName extension");
      sanSeen = true;
      const names = parsed(
        () => new x509.SubjectAlternativeNameExtension(ext.rawData).names.items,
        "subjectAltName",
      );
      const others = names.filter((n) => n.type !== "url");
      if (others.length > 0) {
        refuse(
          `only a URI SAN (the SPIFFE ID) may be requested; found ${others.map((n) => n.type).join(", ")}`,
        );
      }
      uris = names.map((n) => n.value);
    }
  }
  if (uris.length !== 1) {
    refuse(
      uris.length === 0
        ? "no URI SAN: put the SPIFFE ID spiffe://<trust-domain>/ns/default/svc/<service> in subjectAltName"
        : `${uris.length} URI SANs; an identity certificate carries exactly one`,
    );
  }
  const spiffeId = uris[0] as string;
  const shown = spiffeId.length > 200 ? `${spiffeId.slice(0, 200)}...` : spiffeId;
  const id = parseWorkloadId(spiffeId);
  if (!id.ok) refuse(`URI SAN "${shown}" is not a workload SPIFFE ID: ${id.reason}`);
  if (id.id.trustDomain !== trustDomain) {
    refuse(`URI SAN "${shown}" is in trust domain "${id.id.trustDomain}"; this mesh's is "${trustDomain}"`);
  }
  if (id.id.namespace !== DEFAULT_NAMESPACE) {
    refuse(`URI SAN "${shown}": namespace "${id.id.namespace}" does not exist (only "${DEFAULT_NAMESPACE}")`);
  }
  return { spiffeId, identity: id.id, publicKey: csr.publicKey };
}
