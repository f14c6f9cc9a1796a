/**
 * Tools for hostile-input tests against real listeners, below the level of
 * any client library (which would sanitise what we send): raw HTTP/1.1
 * exchanges on any socket, HTTP/2 frames written by hand (HPACK literals
 * only, no state), a frame reader that records what the server answered
 * (statuses, RST_STREAM codes, GOAWAY), and the socket count of a process.
 */
import { readdirSync, readlinkSync } from "node:fs";
import net from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every `stepMs` until it holds or `timeoutMs` passed; resolves to its last value. */
export async function until(cond: () => boolean, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(stepMs);
  }
  return cond();
}

/** TCP sockets the process holds open (listeners included); -1 when /proc cannot be read. */
export function socketCount(pid: number): number {
  let n = 0;
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) n++;
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return -1;
  }
  return n;
}

/** Whether the process is still there (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------ HTTP/1.1

export interface RawExchange {
  /** Status codes of every status line in the stream, in order. */
  statuses: number[];
  raw: string;
  /** The server closed (FIN or reset) before our deadline. */
  closed: boolean;
  /** How the connection ended: "EOF", an error code, or "timeout" (still open at the deadline). */
  end: string;
  ms: number;
}

/** Every `HTTP/1.x NNN` status line in a byte stream (catches a second, smuggled response too). */
export function statusLines(raw: string): number[] {
  return [...raw.matchAll(/(?:^|\r?\n)HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
}

/** A plain TCP connection to 127.0.0.1:port. */
export function tcp(port: number, allowHalfOpen = false): () => Duplex {
  return () => net.connect({ host: "127.0.0.1", port, allowHalfOpen });
}

/**
 * Writes `payload` on a fresh connection from `open`; collects what comes
 * back until the server closes, `expect` status lines arrived (then waits
 * `graceMs` more for a close), or `timeoutMs`.
 */
export function rawExchange(
  open: () => Duplex,
  payload: string | Buffer,
  opts: { expect?: number; timeoutMs?: number; graceMs?: number } = {},
): Promise<RawExchange> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const chunks: Buffer[] = [];
    const sock = open();
    let done = false;
    let grace: NodeJS.Timeout | undefined;
    const finish = (end: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(grace);
      sock.destroy();
      const raw = Buffer.concat(chunks).toString("latin1");
      resolve({ statuses: statusLines(raw), raw, closed: end !== "timeout", end, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish("timeout"), opts.timeoutMs ?? 5_000);
    sock.on("data", (c: Buffer) => {
      chunks.push(c);
      if (
        opts.expect !== undefined &&
        grace === undefined &&
        statusLines(Buffer.concat(chunks).toString("latin1")).length >= opts.expect
      ) {
        grace = setTimeout(() => finish("timeout"), opts.graceMs ?? 300);
      }
    });
    sock.on("end", () => finish("EOF"));
    sock.on("close", () => finish("closed"));
    sock.on("error", (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
    const write = () => sock.write(payload);
    if (sock instanceof tls.TLSSocket) sock.once("secureConnect", write);
    else write();
  });
}

// ------------------------------------------------------------------ HTTP/2 frames

export const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export const FrameType = {
  DATA: 0,
  HEADERS: 1,
  PRIORITY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PUSH_PROMISE: 5,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
} as const;

export const FrameFlag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

export const Setting = {
  HEADER_TABLE_SIZE: 1,
  ENABLE_PUSH: 2,
  MAX_CONCURRENT_STREAMS: 3,
  INITIAL_WINDOW_SIZE: 4,
  MAX_FRAME_SIZE: 5,
  MAX_HEADER_LIST_SIZE: 6,
} as const;

export const H2Error = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  STREAM_CLOSED: 5,
  FRAME_SIZE_ERROR: 6,
  REFUSED_STREAM: 7,
  CANCEL: 8,
  COMPRESSION_ERROR: 9,
  ENHANCE_YOUR_CALM: 11,
} as const;

export function frame(
  type: number,
  flags: number,
  streamId: number,
  payload: Buffer = Buffer.alloc(0),
): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

export function settingsFrame(entries: readonly (readonly [number, number])[] = []): Buffer {
  const p = Buffer.alloc(6 * entries.length);
  entries.forEach(([id, value], i) => {
    p.writeUInt16BE(id, 6 * i);
    p.writeUInt32BE(value, 6 * i + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, p);
}

export function rstFrame(streamId: number, code: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(FrameType.RST_STREAM, 0, streamId, p);
}

export function windowUpdateFrame(streamId: number, increment: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(increment & 0x7fffffff);
  return frame(FrameType.WINDOW_UPDATE, 0, streamId, p);
}

export function pingFrame(data = Buffer.alloc(8)): Buffer {
  return frame(FrameType.PING, 0, 0, data);
}

/** An HPACK integer with an N-bit prefix; `first` holds the representation's high bits. */
function hpackInt(value: number, prefixBits: number, first: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

function hpackString(s: string | Buffer): Buffer {
  const b = typeof s === "string" ? Buffer.from(s, "latin1") : s;
  return Buffer.concat([hpackInt(b.length, 7, 0x00), b]);
}

/**
 * A header block of literal fields without indexing and with literal names
 * (RFC 7541 §6.2.2): no dynamic-table state, so blocks can be reused and
 * sent on any connection, and names and values go out exactly as given
 * (uppercase, CR LF, NUL: whatever the test wants the server to see).
 */
export function hpack(headers: readonly (readonly [string, string | Buffer])[]): Buffer {
  return Buffer.concat(
    headers.map(([n, v]) => Buffer.concat([Buffer.from([0x00]), hpackString(n), hpackString(v)])),
  );
}

/** The request pseudo-headers in order, then `extra`. */
export function requestBlock(
  path: string,
  extra: readonly (readonly [string, string | Buffer])[] = [],
  method = "GET",
  authority = "api",
): Buffer {
  return hpack([
    [":method", method],
    [":scheme", "http"],
    [":authority", authority],
    [":path", path],
    ...extra,
  ]);
}

/** HEADERS with END_HEADERS (and END_STREAM unless `body`). */
export function headersFrame(streamId: number, block: Buffer, endStream = true): Buffer {
  return frame(
    FrameType.HEADERS,
    FrameFlag.END_HEADERS | (endStream ? FrameFlag.END_STREAM : 0),
    streamId,
    block,
  );
}

// The HPACK decoding needed to read a response's :status, and nothing more.

/** The static table entries that are `:status` (RFC 7541 Appendix A, indexes 8-14). */
const STATIC_STATUS: Record<number, number> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };

/** Huffman codes of the digits (RFC 7541 Appendix B): a status is digits only. */
const HUFFMAN_DIGITS: Record<string, string> = {
  "00000": "0",
  "00001": "1",
  "00010": "2",
  "011001": "3",
  "011010": "4",
  "011011": "5",
  "011100": "6",
  "011101": "7",
  "011110": "8",
  "011111": "9",
};

function huffmanDigits(b: Buffer): string | undefined {
  let bits = "";
  for (const byte of b) bits += byte.toString(2).padStart(8, "0");
  let out = "";
  let code = "";
  for (const bit of bits) {
    code += bit;
    const d = HUFFMAN_DIGITS[code];
    if (d !== undefined) {
      out += d;
      code = "";
    } else if (code.length > 6) {
      return undefined;
    }
  }
  // Padding is the most significant bits of EOS: all ones, under 8 bits.
  return /^1{0,7}$/.test(code) ? out : undefined;
}

/**
 * Decodes HPACK header blocks far enough to find `:status`: every
 * representation is parsed structurally (lengths are explicit); string
 * values are read raw, or Huffman-decoded when they are digits. The
 * dynamic table is tracked by insertion order only (eviction does not move
 * the entries an encoder still refers to), remembering `:status` values.
 */
export class StatusDecoder {
  /** Newest first: the `:status` value when the entry is one, else null. */
  private dynamic: (number | null)[] = [];

  status(block: Buffer): number | undefined {
    let i = 0;
    let status: number | undefined;
    const int = (prefixBits: number): number => {
      const max = (1 << prefixBits) - 1;
      let v = (block[i++] as number) & max;
      if (v < max) return v;
      let m = 0;
      for (;;) {
        const b = block[i++] as number;
        v += (b & 0x7f) * 2 ** m;
        m += 7;
        if ((b & 0x80) === 0 || i >= block.length) return v;
      }
    };
    const str = (): string | undefined => {
      const huffman = ((block[i] as number) & 0x80) !== 0;
      const len = int(7);
      const b = block.subarray(i, i + len);
      i += len;
      return huffman ? huffmanDigits(b) : b.toString("latin1");
    };
    const nameIsStatus = (index: number): boolean =>
      index in STATIC_STATUS ||
      (index > 61 && this.dynamic[index - 62] !== undefined && this.dynamic[index - 62] !== null);
    while (i < block.length) {
      const b = block[i] as number;
      if (b & 0x80) {
        const idx = int(7);
        const s = idx <= 61 ? STATIC_STATUS[idx] : this.dynamic[idx - 62];
        if (s !== undefined && s !== null) status = s;
      } else if (b & 0x40 || (b & 0xe0) === 0 || (b & 0xf0) === 0x10) {
        const indexing = (b & 0x40) !== 0;
        const nameIdx = int(indexing ? 6 : 4);
        let isStatus = false;
        if (nameIdx === 0) isStatus = str() === ":status";
        else isStatus = nameIsStatus(nameIdx);
        const value = str();
        const s = isStatus && value !== undefined && /^\d{3}$/.test(value) ? Number(value) : undefined;
        if (s !== undefined) status = s;
        if (indexing) this.dynamic.unshift(s ?? null);
      } else {
        // Dynamic table size update.
        const size = int(5);
        if (size === 0) this.dynamic = [];
      }
    }
    return status;
  }
}

// ------------------------------------------------------------------ a raw HTTP/2 client

export interface RawStream {
  /** The response :status, once its HEADERS arrived (0 when it could not be decoded). */
  status?: number;
  rst?: number;
  dataBytes: number;
  ended: boolean;
}

export interface RawH2Options {
  /** Our SETTINGS in the preface. */
  settings?: readonly (readonly [number, number])[];
  /** Do not read from the socket at all (a peer that never reads). */
  noRead?: boolean;
  /** Never acknowledge the server's SETTINGS (its limits then only bind as "pending"). */
  noAck?: boolean;
}

/**
 * An HTTP/2 client connection made of hand-written frames on any socket.
 * Acknowledges the server's SETTINGS (and nothing else automatically: no
 * WINDOW_UPDATE, no PING answers) and records every stream's outcome,
 * GOAWAY and the close.
 */
export class RawH2 {
  readonly streams = new Map<number, RawStream>();
  readonly frameCounts = new Map<number, number>();
  goaway: { lastStreamId: number; code: number } | undefined;
  closed = false;
  closedAt = 0;
  readonly openedAt = Date.now();
  bytesIn = 0;
  private buf: Buffer = Buffer.alloc(0);
  private headerBlock: { streamId: number; parts: Buffer[] } | undefined;
  private readonly decoder = new StatusDecoder();
  private readonly ack: boolean;

  constructor(
    readonly socket: Duplex,
    opts: RawH2Options = {},
  ) {
    this.ack = !opts.noAck;
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      this.closedAt = Date.now();
    });
    if (opts.noRead) socket.pause();
    else socket.on("data", (c: Buffer) => this.onData(c));
    socket.write(Buffer.concat([H2_PREFACE, settingsFrame(opts.settings ?? [])]));
  }

  /** Writes, resolving once the socket can take more (or is gone, or after `maxWaitMs`). */
  send(b: Buffer, maxWaitMs = 5_000): Promise<boolean> {
    if (this.closed || this.socket.destroyed) return Promise.resolve(false);
    if (this.socket.write(b)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(t);
        this.socket.off("drain", onDrain);
        this.socket.off("close", onClose);
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onClose = () => done(false);
      const t = setTimeout(() => done(false), maxWaitMs);
      this.socket.on("drain", onDrain);
      this.socket.on("close", onClose);
    });
  }

  stream(id: number): RawStream {
    let s = this.streams.get(id);
    if (!s) {
      s = { dataBytes: 0, ended: false };
      this.streams.set(id, s);
    }
    return s;
  }

  /** Resolves true once `cond` holds, false at `timeoutMs`. */
  waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
    return until(cond, timeoutMs, 10);
  }

  /** The stream has an outcome: a response head, a reset, or the connection is over. */
  settled(id: number): boolean {
    const s = this.streams.get(id);
    return (
      this.closed ||
      this.goaway !== undefined ||
      (s !== undefined && (s.status !== undefined || s.rst !== undefined))
    );
  }

  destroy(): void {
    this.socket.destroy();
  }

  private count(type: number): void {
    this.frameCounts.set(type, (this.frameCounts.get(type) ?? 0) + 1);
  }

  private onData(c: Buffer): void {
    this.bytesIn += c.length;
    this.buf = this.buf.length === 0 ? c : Buffer.concat([this.buf, c]);
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) break;
      const type = this.buf[3] as number;
      const flags = this.buf[4] as number;
      const id = this.buf.readUInt32BE(5) & 0x7fffffff;
      const payload = this.buf.subarray(9, 9 + len);
      this.buf = this.buf.subarray(9 + len);
      this.onFrame(type, flags, id, payload);
    }
  }

  private onFrame(type: number, flags: number, id: number, payload: Buffer): void {
    this.count(type);
    switch (type) {
      case FrameType.SETTINGS:
        if ((flags & FrameFlag.ACK) === 0 && this.ack && !this.socket.destroyed) {
          this.socket.write(frame(FrameType.SETTINGS, FrameFlag.ACK, 0));
        }
        break;
      case FrameType.GOAWAY:
        this.goaway = { lastStreamId: payload.readUInt32BE(0) & 0x7fffffff, code: payload.readUInt32BE(4) };
        break;
      case FrameType.RST_STREAM:
        this.stream(id).rst = payload.readUInt32BE(0);
        break;
      case FrameType.DATA: {
        const s = this.stream(id);
        s.dataBytes += payload.length;
        if (flags & FrameFlag.END_STREAM) s.ended = true;
        break;
      }
      case FrameType.HEADERS: {
        let p = payload;
        if (flags & FrameFlag.PADDED) p = p.subarray(1, p.length - (p[0] as number));
        if (flags & FrameFlag.PRIORITY) p = p.subarray(5);
        if (flags & FrameFlag.END_STREAM) this.stream(id).ended = true;
        this.headerBlock = { streamId: id, parts: [p] };
        if (flags & FrameFlag.END_HEADERS) this.endHeaders();
        break;
      }
      case FrameType.CONTINUATION:
        this.headerBlock?.parts.push(payload);
        if (flags & FrameFlag.END_HEADERS) this.endHeaders();
        break;
    }
  }

  private endHeaders(): void {
    const hb = this.headerBlock;
    this.headerBlock = undefined;
    if (!hb) return;
    const status = this.decoder.status(Buffer.concat(hb.parts));
    const s = this.stream(hb.streamId);
    // Trailers come as a second HEADERS: the first one holds the status.
    if (s.status === undefined) s.status = status ?? 0;
  }
}

export interface TlsClientOptions {
  port: number;
  key?: string;
  cert?: string;
  ca?: string[];
  alpn?: string[];
  servername?: string;
  minVersion?: tls.SecureVersion;
  maxVersion?: tls.SecureVersion;
}

/** A TLS connection to 127.0.0.1 that does not check the server (the sidecar's identity is not the point here). */
export function tlsSocket(o: TlsClientOptions): tls.TLSSocket {
  return tls.connect({
    host: "127.0.0.1",
    port: o.port,
    ...(o.key ? { key: o.key } : {}),
    ...(o.cert ? { cert: o.cert } : {}),
    ...(o.ca ? { ca: o.ca } : {}),
    ...(o.alpn ? { ALPNProtocols: o.alpn } : {}),
    ...(o.minVersion ? { minVersion: o.minVersion } : {}),
    ...(o.maxVersion ? { maxVersion: o.maxVersion } : {}),
    servername: o.servername ?? "api",
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
  });
}

/** Resolves with the socket once the TLS handshake completed, or rejects with why it did not. */
export function tlsConnected(o: TlsClientOptions, timeoutMs = 10_000): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsSocket(o);
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error("TLS handshake timeout"));
    }, timeoutMs);
    s.once("secureConnect", () => {
      clearTimeout(t);
      resolve(s);
    });
    s.once("error", (e) => {
      clearTimeout(t);
      s.destroy();
      reject(e);
    });
    s.once("close", () => {
      clearTimeout(t);
      reject(new Error("closed during the TLS handshake"));
    });
  });
}

/** A raw HTTP/2 client over mTLS (ALPN h2), connected and with our preface sent. */
export async function rawH2Tls(o: TlsClientOptions, h2: RawH2Options = {}): Promise<RawH2> {
  const s = await tlsConnected({ ...o, alpn: ["h2"] });
  return new RawH2(s, h2);
}
