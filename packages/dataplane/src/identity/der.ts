/**
 * Just enough DER for the sidecar: read a certificate's extensions, write a
 * PKCS#10 request. Why by hand: @peculiar/x509 (what the control plane uses)
 * costs the sidecar ~20 MB of resident memory and ~200 ms of start-up, and
 * the proxy needs four extensions and one CSR shape. Node's X509Certificate
 * has already parsed (and OpenSSL accepted) every certificate before we read
 * it, yet the reader still bounds-checks every length: a peer's bytes are
 * hostile (HARDENING: untrusted on both sides).
 *
 * Reader: X.690 DER, definite lengths only, lengths up to 4 bytes, no
 * indefinite forms, every element inside its parent. Any violation throws
 * DerError; callers turn it into a "malformed" verdict.
 */

export class DerError extends Error {}

export interface Tlv {
  tag: number;
  /** Content bytes (a view into the input). */
  value: Buffer;
  /** Offset just past this element in the input it was read from. */
  end: number;
}

/** Reads one element at `offset` of `buf`. */
export function readTlv(buf: Buffer, offset: number): Tlv {
  if (offset + 2 > buf.length) throw new DerError("truncated element");
  const tag = buf[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new DerError("multi-byte tags are not used in certificates");
  let len = buf[offset + 1] as number;
  let start = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError("indefinite length is not DER");
    if (n > 4) throw new DerError("length too large");
    if (start + n > buf.length) throw new DerError("truncated length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[start + i] as number);
    start += n;
  }
  const end = start + len;
  if (end > buf.length) throw new DerError("element runs past its parent");
  return { tag, value: buf.subarray(start, end), end };
}

/** The elements inside a constructed element's content. */
export function children(value: Buffer): Tlv[] {
  const out: Tlv[] = [];
  for (let off = 0; off < value.length; ) {
    const t = readTlv(value, off);
    out.push(t);
    off = t.end;
  }
  return out;
}

function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw new DerError(`expected ${what}`);
  return t;
}

/** Dotted form of an OBJECT IDENTIFIER's content. */
export function decodeOid(value: Buffer): string {
  if (value.length === 0) throw new DerError("empty OID");
  const parts: number[] = [];
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const b = value[i] as number;
    if (n === 0 && b === 0x80) throw new DerError("OID arc with a leading zero");
    n = n * 128 + (b & 0x7f);
    if (n > Number.MAX_SAFE_INTEGER / 128) throw new DerError("OID arc too large");
    if (!(b & 0x80)) {
      parts.push(n);
      n = 0;
    } else if (i === value.length - 1) {
      throw new DerError("truncated OID");
    }
  }
  const first = parts[0] as number;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...parts.slice(1)].join(".");
}

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

// --- writer ---

function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return Buffer.from([0x80 | out.length, ...out]);
}

export function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), lengthBytes(body.length), body]);
}

export function encodeOid(dotted: string): Buffer {
  const arcs = dotted.split(".").map(Number);
  const out: number[] = [];
  const push = (n: number) => {
    const bytes = [n & 0x7f];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) bytes.unshift((v & 0x7f) | 0x80);
    out.push(...bytes);
  };
  push((arcs[0] as number) * 40 + (arcs[1] as number));
  for (const a of arcs.slice(2)) push(a);
  return tlv(0x06, Buffer.from(out));
}
