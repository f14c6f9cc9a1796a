/**
 * An incremental HTTP/1.1 response parser for the fast client
 * (client.ts): one response at a time, fed what the connection reads.
 * Strict where a proxy must be (RFC 9112): a status line, token field
 * names directly followed by ':', no obs-fold, no bare CR or LF, one
 * framing (Content-Length, or chunked as the final coding, or the
 * connection's end), and nothing after a response that was not asked for.
 * Anything else is a protocol error: the connection is not reused.
 */

import { CONTENT_LENGTH, CRLF, CRLF_CRLF, FIELD, fieldLine } from "./grammar.js";

/** What the parser reports, in order: head, body chunks, end; or one error. */
export interface ResponseHandler {
  /**
   * The final response head (1xx heads are skipped). `raw`: name, value, name, value...
   * `empty`: no body follows (HEAD, 204, 304, Content-Length: 0), nor trailers.
   */
  onHead(status: number, raw: string[], empty: boolean): void;
  /** A body chunk; false asks the connection to stop reading until the handler reads on. */
  onBody(chunk: Buffer): boolean;
  /** The response is whole; `raw` trailers of a chunked body, if any. */
  onEnd(trailers: string[] | undefined): void;
  /** `closed`: the connection ended or broke first; else the upstream broke the protocol. */
  onError(detail: string, closed: boolean): void;
}

const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9][0-9]{2})(?: [\t\x20-\x7e\x80-\xff]*)?$/;
const KEEP_ALIVE_TIMEOUT = /(?:^|[,\s])timeout=([0-9]{1,6})\b/i;
const CHUNK_SIZE = /^([0-9a-fA-F]{1,12})[ \t]*(?:;[\t\x20-\x7e\x80-\xff]*)?$/;
/** An upstream sending 1xx heads without end would keep the parser busy forever. */
const MAX_INFORMATIONAL = 16;

enum State {
  /** No request outstanding: any byte is unsolicited. */
  Idle,
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkEnd,
  Trailers,
  /** Until the connection ends. */
  Eof,
}

export class ResponseParser {
  #state = State.Idle;
  #buf: Buffer | undefined;
  #remaining = 0;
  #headOnly = false;
  /** 1xx heads skipped for the current request. */
  #informational = 0;
  /** The response allows the connection to carry another request. */
  keepAlive = true;
  /** The upstream's `Keep-Alive: timeout=N` (ms), when it said it: how long it keeps an idle connection. */
  keepAliveHintMs: number | undefined;
  #handler: ResponseHandler | undefined;

  constructor(private readonly maxHeadBytes: number) {}

  /** Whether a response is being read. */
  get busy(): boolean {
    return this.#state !== State.Idle;
  }

  /** Expects the response to a request sent with `method`. */
  expect(method: string, handler: ResponseHandler): void {
    this.#state = State.Head;
    this.#headOnly = method === "HEAD";
    this.#informational = 0;
    this.#handler = handler;
    this.#buf = undefined;
  }

  /** Stops reporting to the current handler (its request was cancelled); the connection must not be reused. */
  detach(): void {
    this.#handler = undefined;
    this.#state = State.Idle;
    this.keepAlive = false;
  }

  /** Feeds bytes read from the connection. */
  execute(chunk: Buffer): void {
    let data = this.#buf === undefined ? chunk : Buffer.concat([this.#buf, chunk]);
    this.#buf = undefined;
    while (data.length > 0) {
      const used = this.#step(data);
      if (used < 0) return; // an error was reported, or more bytes are needed (kept in #buf)
      data = data.subarray(used);
    }
  }

  /** The connection ended: completes a body read to the end, else it is an error. */
  eof(): void {
    if (this.#state === State.Eof) {
      this.#done(undefined);
      return;
    }
    if (this.#state !== State.Idle) this.#fail("connection closed before the response was complete", true);
  }

  #fail(detail: string, closed = false): void {
    const h = this.#handler;
    this.#handler = undefined;
    this.#state = State.Idle;
    this.keepAlive = false;
    this.#buf = undefined;
    h?.onError(detail, closed);
  }

  #done(trailers: string[] | undefined): void {
    const h = this.#handler;
    this.#handler = undefined;
    this.#state = State.Idle;
    h?.onEnd(trailers);
  }

  /** Consumes from `data`; returns bytes used, or -1 to stop (error, or need more: kept in #buf). */
  #step(data: Buffer): number {
    switch (this.#state) {
      case State.Idle:
        this.#fail("unsolicited bytes from the upstream");
        return -1;
      case State.Head:
        return this.#head(data);
      case State.Length: {
        const n = Math.min(this.#remaining, data.length);
        this.#remaining -= n;
        const h = this.#handler;
        if (this.#remaining === 0) {
          h?.onBody(data.subarray(0, n));
          this.#done(undefined);
        } else h?.onBody(data.subarray(0, n));
        return n;
      }
      case State.Eof:
        this.#handler?.onBody(data);
        return data.length;
      case State.ChunkSize: {
        const end = data.indexOf(CRLF);
        if (end < 0) return this.#more(data, 256, "chunk size line too long");
        const m = CHUNK_SIZE.exec(data.toString("latin1", 0, end));
        if (m === null) {
          this.#fail("invalid chunk size line");
          return -1;
        }
        this.#remaining = Number.parseInt(m[1] as string, 16);
        this.#state = this.#remaining === 0 ? State.Trailers : State.ChunkData;
        return end + 2;
      }
      case State.ChunkData: {
        const n = Math.min(this.#remaining, data.length);
        this.#remaining -= n;
        if (this.#remaining === 0) this.#state = State.ChunkEnd;
        this.#handler?.onBody(data.subarray(0, n));
        return n;
      }
      case State.ChunkEnd: {
        if (data.length < 2) return this.#more(data, 2, "");
        if (data[0] !== 0x0d || data[1] !== 0x0a) {
          this.#fail("chunk not followed by CRLF");
          return -1;
        }
        this.#state = State.ChunkSize;
        return 2;
      }
      case State.Trailers: {
        if (data.length >= 2 && data[0] === 0x0d && data[1] === 0x0a) {
          this.#done(undefined);
          return 2;
        }
        const end = data.indexOf(CRLF_CRLF);
        if (end < 0) return this.#more(data, this.maxHeadBytes, "trailers too large");
        const raw = this.#fields(data.toString("latin1", 0, end), 0);
        if (raw === undefined) return -1;
        this.#done(raw);
        return end + 4;
      }
    }
  }

  /** Keeps `data` for the next read; an error when it is already `limit` bytes. */
  #more(data: Buffer, limit: number, what: string): number {
    if (data.length >= limit && what !== "") {
      this.#fail(what);
      return -1;
    }
    this.#buf = data;
    return -1;
  }

  /**
   * The field lines of `head` from offset `from` on as raw pairs, or undefined after reporting an
   * error. Scanned in place (no line strings, no match arrays): this runs for every response.
   */
  #fields(head: string, from: number): string[] | undefined {
    const raw: string[] = [];
    while (from <= head.length) {
      let eol = head.indexOf("\r\n", from);
      if (eol < 0) eol = head.length;
      if (!fieldLine(head, from, eol, true)) {
        this.#fail("invalid header field");
        return undefined;
      }
      raw.push(head.slice(from, FIELD.nameEnd), head.slice(FIELD.valueStart, FIELD.valueEnd));
      from = eol + 2;
    }
    return raw;
  }

  #head(data: Buffer): number {
    const end = data.indexOf(CRLF_CRLF);
    if (end < 0) return this.#more(data, this.maxHeadBytes, "response head too large");
    if (end + 4 > this.maxHeadBytes) {
      this.#fail("response head too large");
      return -1;
    }
    const head = data.toString("latin1", 0, end);
    let eol = head.indexOf("\r\n");
    if (eol < 0) eol = head.length;
    if (!STATUS_LINE.test(head.slice(0, eol))) {
      this.#fail("invalid status line");
      return -1;
    }
    // "HTTP/1.x NNN": the minor version at 7, the status at 9–11 (checked just above).
    const status = Number(head.slice(9, 12));
    const raw = this.#fields(head, eol + 2);
    if (raw === undefined) return -1;
    if (status < 200) {
      // Informational (100, 102, 103): skipped, the final response follows. 101 is not asked for here.
      if (status === 101) {
        this.#fail("unexpected 101 Switching Protocols");
        return -1;
      }
      if (++this.#informational > MAX_INFORMATIONAL) {
        this.#fail("too many informational responses");
        return -1;
      }
      return end + 4;
    }
    let length: number | undefined;
    let chunked = false;
    let keepAlive = head.charCodeAt(7) === 0x31;
    for (let i = 0; i < raw.length; i += 2) {
      const name = (raw[i] as string).toLowerCase();
      const value = raw[i + 1] as string;
      if (name === "content-length") {
        if (!CONTENT_LENGTH.test(value) || (length !== undefined && length !== Number(value))) {
          this.#fail("invalid Content-Length");
          return -1;
        }
        length = Number(value);
      } else if (name === "transfer-encoding") {
        const codings = value.toLowerCase().split(",");
        if (chunked || codings[codings.length - 1]?.trim() !== "chunked") {
          this.#fail("unsupported transfer-coding");
          return -1;
        }
        chunked = true;
      } else if (name === "keep-alive") {
        const t = KEEP_ALIVE_TIMEOUT.exec(value);
        if (t !== null) this.keepAliveHintMs = Number(t[1]) * 1000;
      } else if (name === "connection") {
        const v = value.toLowerCase();
        if (v.includes("close")) keepAlive = false;
        else if (v.includes("keep-alive")) keepAlive = true;
      }
    }
    if (chunked && length !== undefined) {
      this.#fail("both Content-Length and Transfer-Encoding");
      return -1;
    }
    this.keepAlive = keepAlive;
    const empty = this.#headOnly || status === 204 || status === 304 || length === 0;
    this.#handler?.onHead(status, raw, empty);
    if (this.#state !== State.Head) return -1; // the handler detached
    if (empty) this.#done(undefined);
    else if (chunked) this.#state = State.ChunkSize;
    else if (length !== undefined) {
      this.#state = State.Length;
      this.#remaining = length;
    } else {
      this.#state = State.Eof;
      this.keepAlive = false;
    }
    return end + 4;
  }
}
