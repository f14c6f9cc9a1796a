/**
 * The proxy's key pair and certificate request. The key is an ECDSA P-256
 * KeyObject created here and exported only as the PKCS#8 PEM that node:tls
 * needs in this process: it never leaves the proxy (PRODUCT: identity).
 *
 *   CertificationRequest ::= SEQUENCE { info, ecdsa-with-SHA256, signature BIT STRING }
 *   info ::= SEQUENCE { version 0, subject CN=<service>, SubjectPublicKeyInfo,
 *                       [0] { extensionRequest { subjectAltName { URI:<spiffe id> } } } }
 */
import { generateKeyPair, sign } from "node:crypto";
import { promisify } from "node:util";
import { encodeOid, tlv, toPem } from "@weft/core";
import { OID } from "./leaf-extensions.js";

const generateKeyPairAsync = promisify(generateKeyPair);

const ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";
const EXTENSION_REQUEST = "1.2.840.113549.1.9.14";
const COMMON_NAME = "2.5.4.3";

export interface KeyAndCsr {
  keyPem: string;
  csrPem: string;
}

/** A fresh P-256 key pair and a CSR whose only SAN is `spiffeId`, signed with it. */
export async function createKeyAndCsr(commonName: string, spiffeId: string): Promise<KeyAndCsr> {
  const { publicKey, privateKey } = await generateKeyPairAsync("ec", { namedCurve: "prime256v1" });
  const spki = publicKey.export({ type: "spki", format: "der" });
  const subject = tlv(
    0x30,
    tlv(0x31, tlv(0x30, encodeOid(COMMON_NAME), tlv(0x0c, Buffer.from(commonName, "utf8")))),
  );
  const san = tlv(0x30, tlv(0x86, Buffer.from(spiffeId, "latin1")));
  const extensions = tlv(0x30, tlv(0x30, encodeOid(OID.subjectAltName), tlv(0x04, san)));
  const attributes = tlv(0xa0, tlv(0x30, encodeOid(EXTENSION_REQUEST), tlv(0x31, extensions)));
  const info = tlv(0x30, tlv(0x02, Buffer.from([0])), subject, spki, attributes);
  const signature = sign("sha256", info, privateKey); // DER ECDSA-Sig-Value for EC keys
  const csr = tlv(
    0x30,
    info,
    tlv(0x30, encodeOid(ECDSA_WITH_SHA256)),
    tlv(0x03, Buffer.from([0]), signature),
  );
  return {
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    csrPem: toPem(csr, "CERTIFICATE REQUEST"),
  };
}
