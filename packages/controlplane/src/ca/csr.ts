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
import { children, DerError, readTlv, type Tlv, weftError } from "@weft/core";
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

/**
 * Signature algorithms a CSR may use (DER OID content -> parameters it must carry). Anything
 * else (SHA-1, RSA-PSS with its leniently parsed parameters, ...) is refused by name.
 */
const FRAMING = "it is not a DER PKCS#10 request (tags or lengths around the signature)";

const SIGNATURE_ALGORITHMS = new Map<string, { name: string; params: "absent" | "null" }>([
  ["2a8648ce3d040302", { name: "ecdsa-with-SHA256", params: "absent" }],
  ["2a8648ce3d040303", { name: "ecdsa-with-SHA384", params: "absent" }],
  ["2a8648ce3d040304", { name: "ecdsa-with-SHA512", params: "absent" }],
  ["2a864886f70d01010b", { name: "sha256WithRSAEncryption", params: "null" }],
  ["2a864886f70d01010c", { name: "sha384WithRSAEncryption", params: "null" }],
  ["2a864886f70d01010d", { name: "sha512WithRSAEncryption", params: "null" }],
  ["2b6570", { name: "Ed25519", params: "absent" }],
]);

/**
 * What is wrong with the framing of the request, if anything: it must be exactly
 * SEQUENCE { info, SEQUENCE { OID, params? }, BIT STRING } in DER, with an allowed signature
 * algorithm and exactly its parameters, and an ECDSA signature
 * value SEQUENCE { INTEGER, INTEGER } in DER. The library's parser tolerates wrong tags and
 * lengths outside the signed info (the signature covers only the info's own bytes), so a
 * mangled request would otherwise still be signed.
 */
function derFraming(der: Buffer): string | undefined {
  try {
    const req = readTlv(der, 0);
    if (req.tag !== 0x30 || req.end !== der.length) return "the DER has bytes outside the request's SEQUENCE";
    const [info, alg, sig, ...rest] = children(req.value);
    const [oid, param, ...more] = alg?.tag === 0x30 ? children(alg.value) : [];
    if (
      info?.tag !== 0x30 ||
      oid?.tag !== 0x06 ||
      more.length > 0 ||
      sig?.tag !== 0x03 ||
      sig.value.length === 0 ||
      sig.value[0] !== 0 || // a signature is whole bytes: no unused bits
      rest.length > 0
    ) {
      return FRAMING;
    }
    const algorithm = SIGNATURE_ALGORITHMS.get(oid.value.toString("hex"));
    if (!algorithm) {
      return "its signature algorithm is not allowed; use ECDSA with SHA-256/384/512, RSA PKCS#1 v1.5 with SHA-256/384/512, or Ed25519";
    }
    const nullParam = param?.tag === 0x05 && param.value.length === 0;
    if (algorithm.params === "absent" ? param !== undefined : !nullParam) {
      return `${algorithm.name} takes ${algorithm.params === "absent" ? "no parameters" : "NULL parameters"}`;
    }
    if (algorithm.name.startsWith("ecdsa")) {
      const [value, ...after] = children(sig.value.subarray(1));
      const ints = value?.tag === 0x30 ? children(value.value) : [];
      // INTEGERs r and s: positive, no leading zero byte unless the next byte's top bit is set.
      const positive = (i: Tlv) =>
        i.tag === 0x02 &&
        i.value.length > 0 &&
        (i.value[0] as number) < 0x80 &&
        !(i.value[0] === 0 && i.value.length > 1 && (i.value[1] as number) < 0x80);
      if (after.length > 0 || ints.length !== 2 || !ints.every(positive)) {
        return "its ECDSA signature value is not DER";
      }
    }
    return undefined;
  } catch (e) {
    if (e instanceof DerError) return FRAMING;
    throw e;
  }
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
  // The parser stops at the end of the outer SEQUENCE (bytes after it would be signed by no one)
  // and tolerates bad framing around the signature: refuse anything but DER there.
  const framing = derFraming(der);
  if (framing) refuse(framing);
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
