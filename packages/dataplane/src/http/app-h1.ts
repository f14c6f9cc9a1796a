import net from "node:net";
import { performance } from "node:perf_hooks";
import { PassThrough } from "node:stream";
import { tracer } from "@weft/core";
import {
  ClientCall,
  type ClientCallOptions,
  ClientConnection,
  CONNECT_ERRORS,
  requestHead,
} from "./h1-fast/client.js";
import type { RequestHead } from "./headers.js";
import { isIdempotent } from "./retry-policy.js";
import type {
  HeaderMap,
  UpstreamCall,
  UpstreamEvents,
  UpstreamFailure,
  UpstreamResponseHead,
} from "./types.js";

/**
 * HTTP/1.1 to the local app on loopback through the fast client
 * (h1-fast/client.ts): kept-alive connections, one request at a time each,
 * reused last-in first-out, at most MAX_CONNECTIONS (beyond, requests wait
 * for one to come free). What undici's Pool did here, for less CPU per
 * request (bench/node-floor.mjs).
 */

const trace = tracer("http");

const MAX_CONNECTIONS = 1024;
/** Idle connections are dropped before common app keep-alive timeouts (node:http's is 5 s). */
const KEEP_ALIVE_MS = 4_000;
/** An app's `Keep-Alive: timeout=N` is honoured minus this, so that we always close first. */
const KEEP_ALIVE_MARGIN_MS = 1_000;
const CONNECT_TIMEOUT_MS = 5_000;

type Waiter = (conn: ClientConnection | Error) => void;

export class AppH1Pool {
  readonly #idle: ClientConnection[] = [];
  readonly #live = new Set<ClientConnection>();
  readonly #waiters: Waiter[] = [];
  #connecting = 0;
  #closed = false;

  /** What every call through this pool is told (one object, not one per request). */
  readonly callOptions: ClientCallOptions = {
    stripInternalResponse: true,
    release: (c) => this.release(c),
  };

  constructor(private readonly app: { host: string; port: number }) {}

  /** A connection for one request: the freshest idle one, a new one, or the next to come free. */
  acquire(done: Waiter): void {
    if (this.#closed) {
      done(new Error("app client closed"));
      return;
    }
    for (let c = this.#idle.pop(); c !== undefined; c = this.#idle.pop()) {
      if (this.#fresh(c)) {
        done(c);
        return;
      }
      c.socket.destroy();
    }
    if (this.#live.size + this.#connecting >= MAX_CONNECTIONS) {
      this.#waiters.push(done);
      return;
    }
    this.#connect(done);
  }

  #fresh(c: ClientConnection): boolean {
    const hint = c.parser.keepAliveHintMs;
    const limit = hint === undefined ? KEEP_ALIVE_MS : Math.min(KEEP_ALIVE_MS, hint - KEEP_ALIVE_MARGIN_MS);
    return c.usable && performance.now() - c.idleSince < limit;
  }

  #connect(done: Waiter): void {
    this.#connecting++;
    const socket = net.connect({ host: this.app.host, port: this.app.port, noDelay: true });
    let settled = false;
    const timer = setTimeout(() => {
      socket.destroy(Object.assign(new Error("connect timeout"), { code: "ETIMEDOUT" }));
    }, CONNECT_TIMEOUT_MS);
    const finish = (r: ClientConnection | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      this.#connecting--;
      done(r);
    };
    socket.once("error", (e: Error) => {
      finish(e);
      // A connection slot is free again: the next waiter tries for itself.
      this.#next();
    });
    socket.once("connect", () => {
      const conn = new ClientConnection(socket);
      this.#live.add(conn);
      socket.once("close", () => {
        this.#live.delete(conn);
        const i = this.#idle.indexOf(conn);
        if (i !== -1) this.#idle.splice(i, 1);
        this.#next();
      });
      if (this.#closed) socket.destroy();
      finish(conn);
    });
  }

  /** A waiting request gets a connection slot. */
  #next(): void {
    if (this.#closed || this.#waiters.length === 0) return;
    if (this.#live.size + this.#connecting >= MAX_CONNECTIONS) return;
    const w = this.#waiters.shift() as Waiter;
    this.#connect(w);
  }

  /** The exchange on `conn` is over (it was closed if it cannot carry another request). */
  release(conn: ClientConnection): void {
    if (this.#closed || !conn.usable) {
      conn.socket.destroy();
      return;
    }
    conn.idleSince = performance.now();
    const w = this.#waiters.shift();
    if (w !== undefined) w(conn);
    else this.#idle.push(conn);
  }

  destroy(): void {
    this.#closed = true;
    for (const w of this.#waiters.splice(0)) w(new Error("app client closed"));
    for (const c of this.#live) c.socket.destroy();
    this.#idle.length = 0;
  }
}

/**
 * One request to the app. Handed over in the check phase, not at once: a
 * stream reset in the same read as its HEADERS (rapid reset) is seen
 * before anything is written, and such a request never reaches the app.
 * A kept-alive connection the app closed as we reused it gets the request
 * once more, on another connection, when it is idempotent and has no body.
 */
export class AppH1Call implements UpstreamCall, UpstreamEvents {
  /** The body streamed by the relay (made when first asked for), or whole (sendWhole). */
  #sink: PassThrough | undefined;
  #wholeBody: Buffer | undefined;
  #call: ClientCall | undefined;
  #over = false;
  #retried = false;
  #responded = false;
  readonly #bodyless: boolean;
  readonly #text: string;
  /** Passed on when the relay takes whole responses (the ClientCall looks for it). */
  readonly whole: UpstreamEvents["whole"];

  /** Throws (ERR_INVALID_CHAR) when the head cannot be written: nothing is sent. */
  constructor(
    private readonly pool: AppH1Pool,
    private readonly head: RequestHead,
    host: string,
    endStream: boolean,
    private readonly events: UpstreamEvents,
  ) {
    this.#text = requestHead(head, host);
    this.#bodyless = endStream;
    this.whole = events.whole === undefined ? undefined : this.#passWhole;
    setImmediate(AppH1Call.#dispatch, this);
  }

  /**
   * Where a streamed body goes (Content-Length framed): piped to the connection once there is one;
   * until then it waits here, with backpressure to the client.
   */
  get requestSink(): PassThrough | undefined {
    if (this.#bodyless) return undefined;
    if (this.#sink === undefined) this.#sink = new PassThrough();
    return this.#sink;
  }

  /** A body all in hand: kept until there is a connection, then written with the head. */
  sendWhole(body: Buffer): void {
    this.#wholeBody = body;
  }

  static #dispatch(call: AppH1Call): void {
    if (call.#over) return;
    call.pool.acquire((conn) => call.#start(conn));
  }

  #start(conn: ClientConnection | Error): void {
    if (conn instanceof Error) {
      const code = (conn as NodeJS.ErrnoException).code ?? "";
      this.fail(CONNECT_ERRORS.has(code) || code === "" ? "connect" : "reset", conn.message);
      return;
    }
    if (this.#over) {
      this.pool.release(conn);
      return;
    }
    const call = new ClientCall(
      conn,
      this.head.method,
      this.#text,
      this.#bodyless,
      this,
      this.pool.callOptions,
    );
    this.#call = call;
    if (this.#wholeBody !== undefined) {
      call.sendWhole(this.#wholeBody);
      return;
    }
    const sink = this.#sink;
    if (sink !== undefined && call.requestSink !== undefined) sink.pipe(call.requestSink, { end: false });
  }

  // ------------------------------------------------------------ events from the ClientCall

  response(head: UpstreamResponseHead, body: Parameters<UpstreamEvents["response"]>[1]): void {
    this.#responded = true;
    this.events.response(head, body);
  }

  complete(trailers: HeaderMap | undefined): void {
    if (this.#over) return;
    this.#over = true;
    this.events.complete(trailers);
  }

  /** `whole`, when the relay takes whole responses (called as this call's method). */
  #passWhole(head: UpstreamResponseHead, body: Buffer | undefined, trailers: HeaderMap | undefined): void {
    this.#responded = true;
    if (this.#over) return;
    this.#over = true;
    this.events.whole?.(head, body, trailers);
  }

  fail(kind: UpstreamFailure, detail: string): void {
    if (this.#over) return;
    const call = this.#call;
    // Closed before any response on a reused connection: nothing was processed when idempotent and bodiless.
    if (
      kind === "reset" &&
      call?.closedBeforeResponse === true &&
      !this.#responded &&
      !this.#retried &&
      this.#bodyless &&
      isIdempotent(this.head.method)
    ) {
      this.#retried = true;
      this.#call = undefined;
      trace("app keep-alive socket was stale; retrying once", {});
      setImmediate(AppH1Call.#dispatch, this);
      return;
    }
    this.#over = true;
    this.events.fail(kind, detail);
  }

  // ------------------------------------------------------------ UpstreamCall

  endRequest(trailers: HeaderMap | undefined): void {
    const sink = this.#sink;
    if (sink === undefined) return;
    sink.once("end", () => this.#call?.endRequest(trailers));
    sink.end();
  }

  cancel(): void {
    if (this.#over && this.#call === undefined) return;
    this.#over = true;
    this.#call?.cancel();
    this.#sink?.destroy();
  }
}
