import { Readable, type Writable } from "node:stream";
import { DownstreamBase, REFUSED_EXTRA } from "../downstream.js";
import { Flag } from "../flags.js";
import { isGrpcContentType } from "../headers.js";
import { localReply, reasonPhrase } from "../local-reply.js";
import type { Downstream, HeaderMap } from "../types.js";
import { CONTENT_LENGTH, INVALID_VALUE_CHAR, TOKEN } from "./grammar.js";
import type { FastRequest } from "./parse.js";

/**
 * The Downstream of a request the fast front parsed: the response is
 * written straight to the connection as HTTP/1.1 bytes, as node:http's
 * ServerResponse would write it (status line, the fields, Date, then the
 * body with Content-Length when the upstream declared one, else chunked),
 * without a ServerResponse, its streams or its per-field validation calls.
 *
 * The object is its own body sink: `write` frames each chunk onto the
 * socket and `drain` is the socket's (all pump.ts and the route actions
 * use). One per request, methods on the prototype.
 */

/** What the connection does for its current exchange. */
export interface FastExchangeOwner {
  readonly socket: FastSocket;
  /** The response is complete (or the connection is being closed): next request, or close. */
  responseDone(close: boolean): void;
}

/** What of net.Socket / tls.TLSSocket the fast front uses. */
export type FastSocket = import("node:net").Socket;

/** Never relayed in a response head: this connection's framing is ours to write. */
const OWN_FIELDS: ReadonlySet<string> = new Set([
  "content-length",
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
]);

let dateSecond = 0;
let dateLine = "";
/** The Date field, formatted once per second (node:http caches it the same way). */
function dateField(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateLine = `date: ${new Date(now).toUTCString()}\r\n`;
  }
  return dateLine;
}

/** The field lines of `headers`, or undefined when one cannot be written (node:http would throw). */
function fieldLines(headers: HeaderMap): string | undefined {
  let s = "";
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || OWN_FIELDS.has(name)) continue;
    if (!TOKEN.test(name)) return undefined;
    if (typeof value === "string") {
      if (INVALID_VALUE_CHAR.test(value)) return undefined;
      s += `${name}: ${value}\r\n`;
    } else {
      for (const v of value) {
        if (INVALID_VALUE_CHAR.test(v)) return undefined;
        s += `${name}: ${v}\r\n`;
      }
    }
  }
  return s;
}

const flushLater = (d: FastH1Downstream): void => d.flush();

/** A whole response's body up to this size goes in the same string write as its head. */
const INLINE_BODY_BYTES = 4096;

enum Framing {
  None,
  Length,
  Chunked,
}

export class FastH1Downstream extends DownstreamBase implements Downstream {
  readonly method: string;
  /** A peer proxy's gRPC request (its unary calls cross on HTTP/1.1): local replies are gRPC statuses. */
  readonly grpc: boolean;
  readonly http1 = true;
  readonly body: Readable | undefined;
  /** Read whole with the head: what `body` carries, for a call that sends it with its head. */
  readonly wholeBody: Buffer | undefined;
  #headersSent = false;
  #framing = Framing.None;
  /** Content-Length declared in the response head, and what of it went out. */
  #declared = 0;
  #written = 0;
  #close: boolean;
  #corked = false;

  constructor(
    private readonly owner: FastExchangeOwner,
    req: FastRequest,
    private readonly closeAfter: () => boolean,
    private readonly peer: boolean,
  ) {
    super();
    this.method = req.method;
    this.grpc = peer && isGrpcContentType(req.headers["content-type"]);
    this.#close = req.close;
    this.wholeBody = req.body;
    if (req.body === undefined) this.body = undefined;
    else {
      // Received whole: one chunk, then the end.
      const body = new Readable({ read() {} });
      body.push(req.body);
      body.push(null);
      this.body = body;
    }
  }

  /** The connection closed: the client is gone unless the response was whole. */
  socketClosed(): void {
    this.closed(this.finished);
  }

  get sink(): Writable {
    return this as unknown as Writable;
  }

  trailers(): HeaderMap | undefined {
    return undefined;
  }

  bodyComplete(): boolean {
    return true;
  }

  get headersSent(): boolean {
    return this.#headersSent;
  }

  /** Whether this response closes the connection (the client asked, or the listener is draining). */
  #closing(): boolean {
    if (!this.#close && this.closeAfter()) this.#close = true;
    return this.#close;
  }

  respond(status: number, headers: HeaderMap, endStream: boolean): boolean {
    const head = this.#head(status, headers, endStream);
    if (head === undefined) return false;
    const socket = this.owner.socket;
    if (endStream) {
      socket.write(`${head}\r\n`, "latin1");
      this.#finish();
      return true;
    }
    // Held back so that the head and the body go out in one write: until the declared length is
    // written, the end, or this turn of the event loop is over (a stream that takes its time to its
    // first chunk still gets its head now). An upstream's body starts flowing a tick after its head.
    socket.cork();
    this.#corked = true;
    setImmediate(flushLater, this);
    socket.write(`${head}\r\n`, "latin1");
    return true;
  }

  /** A response that came whole: head, body and end in one write, nothing held back. */
  respondWhole(status: number, headers: HeaderMap, body: Buffer, trailers: HeaderMap | undefined): boolean {
    const head = this.#head(status, headers, false);
    if (head === undefined) return false;
    const socket = this.owner.socket;
    const n = body.length;
    if (this.#framing === Framing.Length && n === this.#declared && n <= INLINE_BODY_BYTES) {
      // A latin1 string carries bytes unchanged: a small body rides in the head's write.
      this.#written = n;
      socket.write(`${head}\r\n${body.toString("latin1")}`, "latin1");
      this.#finish();
      return true;
    }
    // Anything else the ordinary way (its framing, a wrong length closing the connection), corked.
    socket.cork();
    socket.write(`${head}\r\n`, "latin1");
    this.write(body);
    this.end(trailers);
    socket.uncork();
    return true;
  }

  /** The response head without its final empty line, the framing set; undefined when it cannot be sent. */
  #head(status: number, headers: HeaderMap, endStream: boolean): string | undefined {
    if (this.#headersSent || this.finished) return undefined;
    const cl = headers["content-length"];
    const declared = typeof cl === "string" && CONTENT_LENGTH.test(cl) ? cl : undefined;
    // A length that cannot frame this response (repeated, not a number): node:http would refuse it too.
    if (cl !== undefined && declared === undefined) return undefined;
    const lines = fieldLines(headers);
    if (lines === undefined) return undefined;
    let head = `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n${lines}`;
    // The upstream's Date when it sent one (node:http adds its own only when none was set).
    if (headers.date === undefined) head += dateField();
    const noBody = this.method === "HEAD" || status === 204 || status === 304 || status < 200;
    if (endStream || noBody) {
      this.#framing = Framing.None;
      // HEAD and 304 carry the length a GET would have had; any other response that could have a
      // body and has none says so (node:http does the same).
      if (this.method === "HEAD" || status === 304) {
        if (declared !== undefined) head += `content-length: ${declared}\r\n`;
      } else if (!noBody) head += "content-length: 0\r\n";
    } else if (declared !== undefined) {
      this.#framing = Framing.Length;
      this.#declared = Number(declared);
      head += `content-length: ${declared}\r\n`;
    } else {
      this.#framing = Framing.Chunked;
      head += "transfer-encoding: chunked\r\n";
    }
    if (this.#closing()) head += "connection: close\r\n";
    this.#headersSent = true;
    return head;
  }

  /** Sends what respond() held back. */
  flush(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.owner.socket.uncork();
  }

  /** The body sink's write (pump.ts, route actions): frames the chunk onto the connection. */
  write(chunk: Buffer | string): boolean {
    if (this.finished) return true;
    const socket = this.owner.socket;
    const n = typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length;
    if (n === 0 || this.#framing === Framing.None) return true;
    this.#written += n;
    if (this.#framing === Framing.Length) {
      if (this.#written > this.#declared) {
        // More than the declared length: the client would read the excess as the next response.
        this.reset();
        return true;
      }
      const ok = socket.write(chunk);
      if (this.#written >= this.#declared) this.flush();
      return ok;
    }
    socket.cork();
    socket.write(`${n.toString(16)}\r\n`, "latin1");
    socket.write(chunk);
    const ok = socket.write("\r\n", "latin1");
    socket.uncork();
    return ok;
  }

  once(event: string, fn: () => void): this {
    this.owner.socket.once(event, fn);
    return this;
  }

  removeListener(event: string, fn: () => void): this {
    this.owner.socket.removeListener(event, fn);
    return this;
  }

  end(trailers: HeaderMap | undefined): void {
    if (this.finished) return;
    if (this.#framing === Framing.Length && this.#written !== this.#declared) {
      // The upstream's body did not match its Content-Length: the client must not take it for whole.
      this.reset();
      return;
    }
    if (this.#framing === Framing.Chunked) {
      const t = trailers === undefined ? "" : (fieldLines(trailers) ?? "");
      this.owner.socket.write(`0\r\n${t}\r\n`, "latin1");
    }
    this.#finish();
  }

  #finish(): void {
    this.flush();
    this.finished = true;
    this.owner.responseDone(this.#close);
  }

  reset(): void {
    this.finished = true;
    this.#corked = false;
    this.owner.socket.destroy();
  }

  refuse(): boolean {
    if (!this.peer || this.#headersSent) return false;
    // A plain 503, gRPC or not: the peer reads the refusal from the status and REFUSED_HEADER.
    this.#reply(503, "upstream connect error", Flag.UpstreamConnectionFailure, false, REFUSED_EXTRA);
    return true;
  }

  localReply(status: number, body: string, flags: string, extra?: HeaderMap): void {
    this.#reply(status, body, flags, this.grpc, extra);
  }

  #reply(status: number, body: string, flags: string, grpc: boolean, extra?: HeaderMap): void {
    if (this.#headersSent) {
      this.reset();
      return;
    }
    if (this.finished) return;
    const reply = localReply(status, body, flags, grpc, extra);
    // A malformed request closes its connection: what follows it cannot be trusted.
    if (flags.includes(Flag.DownstreamProtocolError)) this.#close = true;
    const lines = fieldLines(reply.headers) ?? "";
    let head = `HTTP/1.1 ${reply.status} ${reasonPhrase(reply.status)}\r\n${lines}${dateField()}`;
    head += `content-length: ${Buffer.byteLength(reply.body)}\r\n`;
    if (this.#closing()) head += "connection: close\r\n";
    this.#headersSent = true;
    this.owner.socket.write(
      this.method === "HEAD" ? `${head}\r\n` : `${head}\r\n${reply.body}`,
      this.method === "HEAD" ? "latin1" : "utf8",
    );
    this.#finish();
  }
}
