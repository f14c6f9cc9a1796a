import type { Socket } from "node:net";
import { Readable, type Writable } from "node:stream";
import { cleanTrailers, type RequestHead, rawResponseHeaders } from "../headers.js";
import type {
  HeaderMap,
  UpstreamCall,
  UpstreamEvents,
  UpstreamFailure,
  UpstreamResponseHead,
} from "../types.js";
import { INVALID_VALUE_CHAR, TOKEN } from "./grammar.js";
import { type ResponseHandler, ResponseParser } from "./response.js";

/**
 * The fast HTTP/1.1 client: one request at a time on a kept-alive
 * connection we connected ourselves (a verified mTLS socket to a peer
 * proxy), the request head written in one piece, the response read by
 * response.ts. What undici's Client did on the mesh hop, without its
 * dispatcher, queue, request objects and WebAssembly parser round trips.
 */

const MAX_RESPONSE_HEAD_BYTES = 64 * 1024;

/** Errors that mean the connection was never made: nothing reached the upstream. */
export const CONNECT_ERRORS: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "ENOTFOUND",
  "ETIMEDOUT",
]);

/**
 * Whether the fast client can send this request as it is: a body needs
 * Content-Length (it writes no chunked bodies, where trailers could follow),
 * and `Expect` and asterisk-form `OPTIONS *` go through node:http.
 */
export function h1CanSend(head: RequestHead, endStream: boolean): boolean {
  return (
    (endStream || head.headers["content-length"] !== undefined) &&
    head.headers.expect === undefined &&
    head.path !== "*"
  );
}
const ORIGIN_PATH = /^\/[\x21-\x7e\x80-\xff]*$/;

const noop = (): void => {};

/** One connection and its response parser; the call in flight reads through it. */
export class ClientConnection {
  readonly parser = new ResponseParser(MAX_RESPONSE_HEAD_BYTES);
  /** The upstream ended the connection (FIN): no request may be sent on it any more. */
  ended = false;
  /** When the connection last went idle (performance.now()), for the pool's keep-alive limit. */
  idleSince = 0;
  /** A call whose response head came in this read, held back in case the whole response did. */
  pending: ClientCall | undefined;

  constructor(readonly socket: Socket) {
    socket.on("error", noop);
    socket.on("data", (chunk: Buffer) => {
      this.parser.execute(chunk);
      const held = this.pending;
      if (held !== undefined) {
        // The read ended before the response did: its head goes out now, its body as a stream.
        this.pending = undefined;
        held.streamHead();
      }
      // Over, and it may not carry another request (Connection: close, bytes never asked for): closed.
      if (!this.parser.keepAlive && !this.parser.busy) socket.destroy();
    });
    socket.once("end", () => {
      this.ended = true;
      this.parser.eof();
    });
    socket.once("close", () => this.parser.eof());
  }

  /** Whether a new request may be sent on it. */
  get usable(): boolean {
    return !this.ended && !this.socket.destroyed && this.parser.keepAlive && !this.parser.busy;
  }
}

/** The response body for the relay; reading is paused on the connection while it is full. */
class ResponseBody extends Readable {
  paused = false;

  constructor(private readonly socket: Socket) {
    super({ highWaterMark: 64 * 1024 });
  }

  override _read(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket.resume();
  }
}

export interface ClientCallOptions {
  /** Drop `x-weft-*` and `x-forwarded-client-cert` from the response (an app's answer). */
  stripInternalResponse: boolean;
  /** A response the caller takes for a failure (not relayed): its body is read and dropped. */
  refused?(status: number, raw: readonly string[]): UpstreamFailure | undefined;
  /** The call is over with the connection (closed already when it cannot be reused). Called once. */
  release(conn: ClientConnection): void;
  /**
   * A request that failed because the upstream had ended the connection first was not processed:
   * reported as "refused" (a peer proxy, which never processes a request on a connection it ended).
   */
  staleIsRefused?: boolean;
}

const uncork = (socket: Socket): void => {
  socket.uncork();
};

/**
 * The HTTP/1.1 request head for `head` (request line, Host, the fields; no
 * final empty line). Throws (code ERR_INVALID_CHAR) when it cannot be
 * written: a value or target that would break framing. Nothing goes out then,
 * and the caller sees a call that could not be opened (→ 400).
 */
export function requestHead(head: RequestHead, host: string): string {
  let invalid = !TOKEN.test(head.method) || !ORIGIN_PATH.test(head.path) || INVALID_VALUE_CHAR.test(host);
  let text = `${head.method} ${head.path} HTTP/1.1\r\nhost: ${host}\r\n`;
  for (const name in head.headers) {
    // TE is hop-by-hop in HTTP/1.1 and would have to be nominated in Connection; apps do not need it.
    if (name === "te") continue;
    if (!TOKEN.test(name)) invalid = true;
    const value = head.headers[name] as string | string[];
    if (typeof value === "string") {
      if (INVALID_VALUE_CHAR.test(value)) invalid = true;
      text += `${name}: ${value}\r\n`;
    } else {
      for (const v of value) {
        if (INVALID_VALUE_CHAR.test(v)) invalid = true;
        text += `${name}: ${v}\r\n`;
      }
    }
  }
  if (invalid) {
    throw Object.assign(new TypeError("request head cannot be written upstream"), {
      code: "ERR_INVALID_CHAR",
    });
  }
  return text;
}

/**
 * One request on a ClientConnection, as the relay's UpstreamCall. Reports
 * exactly one of response+complete or fail. The connection goes back to
 * the caller (`release`) when the response was read whole and the request
 * written whole; otherwise it is closed (a cancelled or broken exchange
 * leaves it in an unknown state).
 */
export class ClientCall implements UpstreamCall, ResponseHandler {
  readonly requestSink: Writable | undefined;
  /** The request failed only because its connection had been ended by the upstream (nothing was processed). */
  stale = false;
  /** The connection closed (or broke) before any response head. */
  closedBeforeResponse = false;
  /** The connection was gone before anything was written. */
  #unsent = false;
  #over = false;
  #released = false;
  #requestDone: boolean;
  #body: ResponseBody | undefined;
  #discard = false;
  /** The head held back while the rest of the response may come in the same read (see onHead). */
  #head: UpstreamResponseHead | undefined;
  /** Body bytes read while the head is held back. */
  #early: Buffer[] | undefined;

  /** `text`: the request head from requestHead(), without its final empty line. */
  constructor(
    private readonly conn: ClientConnection,
    method: string,
    text: string,
    endStream: boolean,
    private readonly events: UpstreamEvents,
    private readonly opts: ClientCallOptions,
  ) {
    const socket = conn.socket;
    this.#requestDone = endStream;
    if (socket.destroyed || conn.ended) {
      // Closed between the pool and here: nothing is written, the failure comes as the relay expects it.
      this.#unsent = true;
      this.requestSink = undefined;
      queueMicrotask(() => this.onError("connection closed before the request", true));
      return;
    }
    conn.parser.expect(method, this);
    if (endStream) {
      this.requestSink = undefined;
      socket.write(`${text}\r\n`, "latin1");
    } else {
      // Content-Length framing (the caller checked): the body's bytes go to the socket as they are,
      // with the head when the first chunk comes in this turn of the event loop.
      this.requestSink = socket;
      socket.cork();
      setImmediate(uncork, socket);
      socket.write(`${text}\r\n`, "latin1");
    }
  }

  #fail(kind: UpstreamFailure, detail: string): void {
    if (this.#over) return;
    this.#over = true;
    this.events.fail(kind, detail);
  }

  /** The exchange is over with the connection: back to the caller, or closed when it cannot be reused. */
  #release(): void {
    if (this.#released) return;
    this.#released = true;
    const socket = this.conn.socket;
    if (!this.#requestDone || this.#unsent) socket.destroy();
    else if (socket.isPaused()) {
      // Paused for a full body that is now all read: the next exchange must be heard.
      if (this.#body !== undefined) this.#body.paused = false;
      socket.resume();
    }
    this.opts.release(this.conn);
  }

  // ------------------------------------------------------------ UpstreamCall

  endRequest(_trailers: HeaderMap | undefined): void {
    // With Content-Length, trailers cannot be expressed in HTTP/1.1 (the caller sends those elsewhere).
    this.#requestDone = true;
  }

  sendWhole(body: Buffer): void {
    const socket = this.requestSink;
    if (socket === undefined) return;
    this.#requestDone = true;
    // The head waits corked (constructor): head and body leave in one write now.
    socket.write(body);
    socket.uncork();
  }

  cancel(): void {
    this.#unhold();
    if (this.#released) {
      // The response was read whole and the connection may already carry another exchange: only
      // what is left of this one (a body not yet read to its end) goes.
      this.#over = true;
      this.#body?.destroy();
      return;
    }
    this.#over = true;
    this.conn.parser.detach();
    this.conn.socket.destroy();
    const body = this.#body;
    this.#body = undefined;
    body?.destroy();
    this.#release();
  }

  // ------------------------------------------------------------ the parser's handler

  onHead(status: number, raw: string[], empty: boolean): void {
    if (this.#over) return;
    const refused = this.opts.refused?.(status, raw);
    if (refused !== undefined) {
      // Its (small) body is read and dropped; the connection stays usable.
      this.#discard = true;
      this.#fail(refused, `upstream refused the request (${status})`);
      return;
    }
    const head: UpstreamResponseHead = {
      status,
      headers: rawResponseHeaders(raw, { stripInternal: this.opts.stripInternalResponse }),
      // Nothing follows: relayed as such (over HTTP/2, END_STREAM on the HEADERS: a gRPC trailers-only answer).
      endStream: empty,
    };
    if (this.events.whole !== undefined) {
      // Most answers are small and arrive whole in one read: held back until the read is parsed,
      // they are relayed in one piece (no body stream, no event-loop turns). The connection
      // streams the head at the end of the read if the response is not over by then.
      this.#head = head;
      this.conn.pending = this;
      return;
    }
    this.#stream(head);
  }

  /** The held-back head, relayed with its body as a stream (the response did not end in its read). */
  streamHead(): void {
    if (this.#over) return;
    const held = this.#unhold();
    if (held !== undefined) this.#stream(held.head, held.early);
  }

  /** Takes the held-back head and the body bytes read with it: nothing is held afterwards. */
  #unhold(): { head: UpstreamResponseHead; early: Buffer[] | undefined } | undefined {
    const head = this.#head;
    if (head === undefined) return undefined;
    const early = this.#early;
    this.#head = undefined;
    this.#early = undefined;
    if (this.conn.pending === this) this.conn.pending = undefined;
    return { head, early };
  }

  #stream(head: UpstreamResponseHead, early?: Buffer[]): void {
    const body = new ResponseBody(this.conn.socket);
    this.#body = body;
    body.once("end", () => {
      if (this.#over) return;
      this.#over = true;
      this.events.complete(this.#trailers);
    });
    if (early !== undefined) for (const chunk of early) body.push(chunk);
    this.events.response(head, body);
  }

  #trailers: HeaderMap | undefined;

  onBody(chunk: Buffer): boolean {
    if (this.#head !== undefined) {
      // At most one read's worth: the head is streamed at the end of the read.
      if (this.#early === undefined) this.#early = [chunk];
      else this.#early.push(chunk);
      return true;
    }
    const body = this.#body;
    if (body === undefined || this.#discard) return true;
    if (body.push(chunk)) return true;
    body.paused = true;
    this.conn.socket.pause();
    return false;
  }

  onEnd(trailers: string[] | undefined): void {
    this.#release();
    const held = this.#unhold();
    if (held !== undefined) {
      if (this.#over) return;
      this.#over = true;
      const { head, early } = held;
      const body = early === undefined ? undefined : early.length === 1 ? early[0] : Buffer.concat(early);
      const t =
        trailers !== undefined && trailers.length > 0
          ? cleanTrailers(rawResponseHeaders(trailers, { stripInternal: false }))
          : undefined;
      (this.events.whole as NonNullable<UpstreamEvents["whole"]>)(head, body, t);
      return;
    }
    const body = this.#body;
    if (this.#over || body === undefined) return;
    if (trailers !== undefined && trailers.length > 0) {
      this.#trailers = cleanTrailers(rawResponseHeaders(trailers, { stripInternal: false }));
    }
    // complete() follows the body's "end": after everything pushed has been read.
    body.push(null);
  }

  onError(detail: string, closed: boolean): void {
    this.conn.socket.destroy();
    this.#release();
    if (this.#over) return;
    // Broken after a head held back in the same read: relayed as before, a head and then a reset.
    this.streamHead();
    const body = this.#body;
    if (body !== undefined) {
      this.#body = undefined;
      this.#fail("reset", detail);
      body.destroy();
      return;
    }
    if (closed) this.closedBeforeResponse = true;
    if (closed && (this.#unsent || this.conn.ended)) {
      // The upstream had ended the connection (or it was gone): the request was not processed.
      this.stale = true;
      this.#fail(
        this.opts.staleIsRefused ? "refused" : "reset",
        `connection closed before the request: ${detail}`,
      );
      return;
    }
    this.#fail(closed ? "reset" : "protocol", detail);
  }
}
