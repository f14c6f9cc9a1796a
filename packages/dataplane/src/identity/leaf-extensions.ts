/**
 * The certificate extensions an X.509-SVID verifier needs (SAN, basicConstraints,
 * keyUsage, extKeyUsage), read from the DER with @weft/core's bounded reader.
 * Why not @peculiar/x509 (what the control plane uses): it costs the sidecar
 * ~20 MB of resident memory and ~200 ms of start-up, and the proxy needs four
 * extensions. Node's X509Certificate has already parsed (and OpenSSL accepted)
 * every certificate before we read it; the reader still bounds-checks every
 * length, because a peer's bytes are hostile.
 */
import { children, DerError, decodeOid, expectTag, readTlv } from "@weft/core";

export const OID = {
  subjectAltName: "2.5.29.17",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
} as const;

/** keyUsage bits as numbered in RFC 5280 (bit 0 = digitalSignature). */
export const KEY_USAGE = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 } as const;

export interface LeafExtensions {
  /** URI SANs, in order. */
  uris: string[];
  /** SAN entries of other types (DNS, IP, email, ...). */
  otherSans: number;
  /** basicConstraints cA, when the extension is present. */
  ca?: boolean;
  /** Set bits of keyUsage (RFC 5280 numbering), when present. */
  keyUsage?: Set<number>;
  /** extKeyUsage OIDs, when present. */
  extKeyUsage?: string[];
  /** OIDs of every extension, in order (duplicates kept, for the caller to refuse). */
  oids: string[];
}

/** Reads the extensions a SPIFFE verifier needs from a certificate's DER. */
export function readLeafExtensions(certDer: Buffer): LeafExtensions {
  const cert = expectTag(readTlv(certDer, 0), 0x30, "Certificate SEQUENCE");
  if (cert.end !== certDer.length) throw new DerError("bytes after the certificate");
  const tbs = expectTag(children(cert.value)[0], 0x30, "TBSCertificate SEQUENCE");
  const out: LeafExtensions = { uris: [], otherSans: 0, oids: [] };
  // [3] EXPLICIT Extensions: the last optional field of TBSCertificate.
  const wrapper = children(tbs.value).find((t) => t.tag === 0xa3);
  if (!wrapper) return out;
  const list = expectTag(children(wrapper.value)[0], 0x30, "Extensions SEQUENCE");
  for (const ext of children(list.value)) {
    const parts = children(expectTag(ext, 0x30, "Extension SEQUENCE").value);
    if (parts.length < 2 || parts.length > 3 || (parts.length === 3 && parts[1]?.tag !== 0x01)) {
      throw new DerError("Extension is not {extnID, critical?, extnValue}");
    }
    const oid = decodeOid(expectTag(parts[0], 0x06, "extension OID").value);
    out.oids.push(oid);
    const octets = expectTag(parts[parts.length - 1], 0x04, "extension value OCTET STRING").value;
    const inner = readTlv(octets, 0);
    if (inner.end !== octets.length) throw new DerError(`bytes after extension ${oid}`);
    if (oid === OID.subjectAltName) {
      for (const name of children(expectTag(inner, 0x30, "GeneralNames SEQUENCE").value)) {
        // uniformResourceIdentifier [6] IMPLICIT IA5String
        if (name.tag === 0x86) out.uris.push(ia5(name.value));
        else out.otherSans++;
      }
    } else if (oid === OID.basicConstraints) {
      const fields = children(expectTag(inner, 0x30, "BasicConstraints SEQUENCE").value);
      const flag = fields[0]?.tag === 0x01 ? fields[0].value : undefined;
      if (flag && flag.length !== 1) throw new DerError("bad BOOLEAN");
      out.ca = flag !== undefined && flag[0] !== 0;
    } else if (oid === OID.keyUsage) {
      out.keyUsage = bits(expectTag(inner, 0x03, "keyUsage BIT STRING").value);
    } else if (oid === OID.extKeyUsage) {
      out.extKeyUsage = children(expectTag(inner, 0x30, "extKeyUsage SEQUENCE").value).map((t) =>
        decodeOid(expectTag(t, 0x06, "KeyPurposeId").value),
      );
    }
  }
  return out;
}

function ia5(value: Buffer): string {
  for (const b of value) if (b > 0x7e || b < 0x20) throw new DerError("URI SAN is not printable IA5");
  return value.toString("latin1");
}

function bits(value: Buffer): Set<number> {
  if (value.length === 0) throw new DerError("empty BIT STRING");
  const unused = value[0] as number;
  if (unused > 7) throw new DerError("bad BIT STRING");
  const set = new Set<number>();
  const total = (value.length - 1) * 8 - unused;
  for (let i = 0; i < total; i++) {
    if (((value[1 + (i >> 3)] as number) >> (7 - (i & 7))) & 1) set.add(i);
  }
  return set;
}
