/**
 * Just enough DER (X.690) for Weft's certificate work, shared by the control
 * plane (CSR framing checks) and the sidecar (certificate extensions, CSRs).
 * Pure: no I/O.
 *
 * Reader: definite lengths only, minimal length encodings of at most 4
 * bytes, single-byte tags, every element inside its parent. Input is hostile
 * (a peer's certificate, a client's CSR): any violation throws DerError and
 * nothing else; callers turn it into their own refusal.
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
    if (buf[start] === 0) throw new DerError("length with a leading zero byte is not DER");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[start + i] as number);
    if (len < 0x80) throw new DerError("long-form length below 128 is not DER");
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

/** The element, if it has `tag`; else DerError naming `what`. */
export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
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

/** PEM armour (RFC 7468): base64 in 64-character lines, ending with a newline so blocks concatenate. */
export function toPem(der: Uint8Array | ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der instanceof ArrayBuffer ? new Uint8Array(der) : der).toString("base64");
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, "$&\n")}-----END ${label}-----\n`;
}
