/**
 * Just enough protobuf and gRPC framing for grpc.health.v1 (health.proto):
 *
 *   message HealthCheckRequest  { string service = 1; }
 *   message HealthCheckResponse { ServingStatus status = 1; }
 *   enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
 *
 * Written by hand so the sidecar needs no protobuf runtime. The response
 * comes from the app, so the decoder treats it as hostile: every read is
 * bounds-checked, unknown fields (all wire types, groups included) are
 * skipped, and malformed input gives an error result, never an exception.
 */

/** Refuse response messages above this size (a health answer is 2 bytes). */
export const MAX_GRPC_MESSAGE_BYTES = 64 * 1024;

/** Nesting limit for skipping (deprecated) groups, so a crafted message cannot recurse deeply. */
const MAX_GROUP_DEPTH = 16;

export const SERVING_STATUS = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;

const SERVING_STATUS_NAMES = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

/** "SERVING", or "status 7" for a value health.proto does not define. */
export function servingStatusName(status: number): string {
  return SERVING_STATUS_NAMES[status] ?? `status ${status}`;
}

// --- encoding --------------------------------------------------------------

function varintBytes(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** HealthCheckRequest; the empty service is the proto3 default and is left out, as protoc does. */
export function encodeHealthCheckRequest(service: string): Buffer {
  if (service === "") return Buffer.alloc(0);
  const name = Buffer.from(service, "utf8");
  return Buffer.concat([Buffer.from([0x0a, ...varintBytes(name.length)]), name]);
}

/** One length-prefixed gRPC message: compressed flag 0, 4-byte big-endian length, the bytes. */
export function grpcFrame(message: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt8(0, 0);
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

// --- decoding --------------------------------------------------------------

export type FrameRead =
  | { kind: "incomplete" }
  | { kind: "frame"; compressed: boolean; message: Buffer /** bytes after the frame */; extra: number }
  | { kind: "error"; error: string };

/**
 * The first message of a gRPC response body. "incomplete" until the whole
 * frame is there; an oversized length is refused as soon as the 5-byte
 * prefix is, so the caller can stop reading.
 */
export function readGrpcFrame(buf: Uint8Array, maxBytes = MAX_GRPC_MESSAGE_BYTES): FrameRead {
  if (buf.length < 5) return { kind: "incomplete" };
  const flag = buf[0]!;
  if (flag > 1) return { kind: "error", error: `invalid compressed flag ${flag}` };
  const length = ((buf[1]! << 24) | (buf[2]! << 16) | (buf[3]! << 8) | buf[4]!) >>> 0;
  if (length > maxBytes) {
    return { kind: "error", error: `response message of ${length} bytes exceeds the limit of ${maxBytes}` };
  }
  if (buf.length < 5 + length) return { kind: "incomplete" };
  const message = Buffer.from(buf.buffer, buf.byteOffset + 5, length);
  return { kind: "frame", compressed: flag === 1, message, extra: buf.length - 5 - length };
}

interface Varint {
  /** The low 32 bits, unsigned. */
  lo: number;
  /** Whether any bit above the 32nd is set. */
  big: boolean;
  next: number;
}

/** A base-128 varint of at most 10 bytes (64 bits); undefined when truncated or too long. */
function readVarint(b: Uint8Array, pos: number): Varint | undefined {
  let lo = 0;
  let big = false;
  for (let i = 0; i < 10; i++) {
    const byte = b[pos + i];
    if (byte === undefined) return undefined;
    const bits = byte & 0x7f;
    if (i < 4) lo |= bits << (7 * i);
    else if (i === 4) {
      lo |= (bits & 0x0f) << 28;
      if (bits >> 4 !== 0) big = true;
    } else if (bits !== 0) big = true;
    // The 10th byte carries bit 63 only; more would overflow 64 bits.
    if (i === 9 && byte > 1) return undefined;
    if ((byte & 0x80) === 0) return { lo: lo >>> 0, big, next: pos + i + 1 };
  }
  return undefined;
}

type Skip = { ok: true; next: number } | { ok: false; error: string };

/** Skips the value of a field whose tag ended at `pos`. */
function skipField(b: Uint8Array, pos: number, field: number, wireType: number, depth: number): Skip {
  switch (wireType) {
    case 0: {
      const v = readVarint(b, pos);
      return v ? { ok: true, next: v.next } : { ok: false, error: `bad varint in field ${field}` };
    }
    case 1:
      return pos + 8 <= b.length
        ? { ok: true, next: pos + 8 }
        : { ok: false, error: `truncated field ${field}` };
    case 5:
      return pos + 4 <= b.length
        ? { ok: true, next: pos + 4 }
        : { ok: false, error: `truncated field ${field}` };
    case 2: {
      const len = readVarint(b, pos);
      if (!len || len.big) return { ok: false, error: `bad length in field ${field}` };
      if (len.next + len.lo > b.length) return { ok: false, error: `truncated field ${field}` };
      return { ok: true, next: len.next + len.lo };
    }
    case 3: {
      if (depth >= MAX_GROUP_DEPTH) return { ok: false, error: "groups nested too deeply" };
      let p = pos;
      for (;;) {
        const tag = readTag(b, p);
        if (!tag.ok) return tag;
        if (tag.wireType === 4) {
          if (tag.field !== field)
            return { ok: false, error: `group ${field} closed by end of group ${tag.field}` };
          return { ok: true, next: tag.next };
        }
        const s = skipField(b, tag.next, tag.field, tag.wireType, depth + 1);
        if (!s.ok) return s;
        p = s.next;
      }
    }
    case 4:
      return { ok: false, error: `unexpected end of group ${field}` };
    default:
      return { ok: false, error: `invalid wire type ${wireType} in field ${field}` };
  }
}

type Tag = { ok: true; field: number; wireType: number; next: number } | { ok: false; error: string };

function readTag(b: Uint8Array, pos: number): Tag {
  if (pos >= b.length) return { ok: false, error: "truncated message" };
  const v = readVarint(b, pos);
  if (!v || v.big) return { ok: false, error: "bad field tag" };
  const field = v.lo >>> 3;
  if (field === 0) return { ok: false, error: "field number 0" };
  return { ok: true, field, wireType: v.lo & 7, next: v.next };
}

export type HealthResponseDecode = { ok: true; status: number } | { ok: false; error: string };

/**
 * HealthCheckResponse.status; an absent field is UNKNOWN (proto3 default),
 * a repeated one takes the last value (protobuf's merge rule). Enum values
 * are int32, so a 64-bit varint is truncated as protobuf does.
 */
export function decodeHealthCheckResponse(b: Uint8Array): HealthResponseDecode {
  let status: number = SERVING_STATUS.UNKNOWN;
  let pos = 0;
  while (pos < b.length) {
    const tag = readTag(b, pos);
    if (!tag.ok) return tag;
    if (tag.field === 1) {
      if (tag.wireType !== 0)
        return { ok: false, error: `field 1 (status) has wire type ${tag.wireType}, expected 0` };
      const v = readVarint(b, tag.next);
      if (!v) return { ok: false, error: "bad varint in field 1 (status)" };
      status = v.lo | 0;
      pos = v.next;
      continue;
    }
    const s = skipField(b, tag.next, tag.field, tag.wireType, 0);
    if (!s.ok) return s;
    pos = s.next;
  }
  return { ok: true, status };
}
