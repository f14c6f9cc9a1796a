import type { Server } from "node:http";
import { Flag } from "../flags.js";
import { rawLocalReply } from "../local-reply.js";
import type { HttpLimits } from "../types.js";
import { endWith } from "../upgrade.js";
import { FastH1Downstream, type FastSocket } from "./downstream.js";
import { type FastRequest, parseRequest } from "./parse.js";

/**
 * The fast HTTP/1.1 front: serves a connection's plain requests with its
 * own parser (parse.ts) and response writer (downstream.ts), and hands the
 * connection to the node:http server of the listener (listener.ts) at the
 * first request it does not take, with the unread bytes put back. From then
 * on node:http serves the connection as it would have from the start, with
 * its limits, timeouts and error responses; what the fast front takes never
 * needs them (a complete, unambiguous request already in hand).
 *
 * Why: node:http's IncomingMessage / ServerResponse and their streams were
 * most of a sidecar's own CPU per request (bench/node-floor.mjs). One
 * request at a time per connection; pipelined bytes wait in the buffer
 * (reading pauses beyond PIPELINE_BUFFER_BYTES).
 *
 * Timeouts match node:http's: a connection that sends nothing gets a 408
 * after `headersTimeoutMs`; one idle between requests closes after
 * `keepAliveTimeoutMs` (or `idleTimeoutMs` if shorter); one with no traffic
 * during a request after `idleTimeoutMs` (server.timeout). A head that
 * arrives slowly is handed over, and node:http times it. A half-closed client gets its
 * connection closed, as node:http (httpAllowHalfOpen false) does.
 */

/** HARDENING's bound on what a connection may have buffered before backpressure (~32 KiB). */
const PIPELINE_BUFFER_BYTES = 32 * 1024;

/** node:http closes a connection idle between requests at whichever of its two timeouts comes first. */
const betweenRequestsMs = (limits: HttpLimits): number =>
  Math.min(limits.keepAliveTimeoutMs, limits.idleTimeoutMs);

export interface FastH1Options {
  limits: HttpLimits;
  /** The listener's node:http server: it takes over the connection at the first request not taken here. */
  slow: Server;
  /** Whether responses close their connection (the listener is draining). */
  closeAfter(): boolean;
  /** The client is a peer proxy (refusals are 503 + REFUSED_HEADER). */
  peer: boolean;
  /** One request; its response goes through `down`. Must not throw. */
  request(req: FastRequest, down: FastH1Downstream, socket: FastSocket): void;
}

/** Whether listeners use the fast front unless told otherwise: yes, unless WEFT_FAST_H1=0 (for comparisons). */
export function fastH1Default(): boolean {
  return process.env.WEFT_FAST_H1 !== "0";
}

/** Serves `socket` (already tracked by the listener's DrainTracker). */
export function serveFastH1(socket: FastSocket, opts: FastH1Options): void {
  new FastH1Connection(socket, opts);
}

class FastH1Connection {
  #buf: Buffer | undefined;
  #current: FastH1Downstream | undefined;
  /** The socket's inactivity timeout now; re-armed only when it must change (rarely). */
  #armedMs = 0;
  /** The timeout fired inside a request and was extended to reach idleTimeoutMs. */
  #extended = false;
  /** A request was taken (before the first, node:http's headersTimeout applies). */
  #served = false;
  readonly #onData = (chunk: Buffer): void => this.#data(chunk);
  readonly #onTimeout = (): void => this.#timeout();
  readonly #onClose = (): void => this.#current?.socketClosed();
  readonly #onEnd = (): void => {
    if (this.socket.writable) this.socket.end();
  };

  constructor(
    readonly socket: FastSocket,
    private readonly opts: FastH1Options,
  ) {
    socket.on("data", this.#onData);
    socket.on("end", this.#onEnd);
    socket.on("close", this.#onClose);
    socket.on("timeout", this.#onTimeout);
    this.#arm(Math.min(opts.limits.headersTimeoutMs, opts.limits.idleTimeoutMs));
  }

  #arm(ms: number): void {
    if (ms === this.#armedMs) return;
    this.#armedMs = ms;
    this.socket.setTimeout(ms);
  }

  #data(chunk: Buffer): void {
    this.#buf = this.#buf === undefined ? chunk : Buffer.concat([this.#buf, chunk]);
    if (this.#current === undefined) this.#next();
    else if (this.#buf.length > PIPELINE_BUFFER_BYTES) this.socket.pause();
  }

  /** At a request boundary with bytes in hand: serve the next request, or hand the connection over. */
  #next(): void {
    const buf = this.#buf;
    if (buf === undefined) return;
    const socket = this.socket;
    // A request on a connection we already ended (idle close, drain) is never processed.
    if (socket.writableEnded || socket.destroyed) {
      socket.destroy();
      return;
    }
    const req = parseRequest(buf, this.opts.limits);
    if (req === undefined) {
      this.#handOver();
      return;
    }
    this.#buf = req.size === buf.length ? undefined : buf.subarray(req.size);
    this.#served = true;
    const down = new FastH1Downstream(this, req, this.opts.closeAfter, this.opts.peer);
    this.#current = down;
    this.opts.request(req, down, socket);
  }

  responseDone(close: boolean): void {
    this.#current = undefined;
    const socket = this.socket;
    if (close) {
      socket.end();
      return;
    }
    this.#extended = false;
    this.#arm(betweenRequestsMs(this.opts.limits));
    if (socket.writableNeedDrain) {
      // The client is not reading its responses: no further request is read until it does (node:http
      // does the same), or one that pipelines without reading would have us hold every response.
      socket.pause();
      socket.once("drain", this.#onDrain);
      return;
    }
    this.#readOn();
  }

  readonly #onDrain = (): void => {
    if (this.#current === undefined) this.#readOn();
  };

  /** Reads on: the next pipelined request, once this response's writes are queued (never re-entrantly). */
  #readOn(): void {
    const socket = this.socket;
    if (socket.isPaused()) socket.resume();
    if (this.#buf !== undefined) process.nextTick(() => this.#current === undefined && this.#next());
  }

  #timeout(): void {
    const socket = this.socket;
    if (this.#current !== undefined) {
      // Quiet inside a request: allowed up to idleTimeoutMs in all (node:http's server.timeout).
      const rest = this.opts.limits.idleTimeoutMs - this.#armedMs;
      if (!this.#extended && rest > 0) {
        this.#extended = true;
        this.#armedMs = rest;
        socket.setTimeout(rest);
        return;
      }
      socket.destroy();
    } else if (!this.#served && this.#buf === undefined) {
      // Nothing ever came: node:http's answer to a connection that sends no request in time.
      endWith(
        socket,
        rawLocalReply(408, "request headers not received in time", Flag.DownstreamProtocolError),
      );
    } else socket.destroy();
  }

  #handOver(): void {
    const socket = this.socket;
    socket.removeListener("data", this.#onData);
    socket.removeListener("end", this.#onEnd);
    socket.removeListener("close", this.#onClose);
    socket.removeListener("timeout", this.#onTimeout);
    socket.setTimeout(0);
    socket.pause();
    if (this.#buf !== undefined) socket.unshift(this.#buf);
    this.#buf = undefined;
    // node:http reads a fresh socket's handle directly (parser.consume), past the stream where the
    // unread bytes were put back: they would come after newer ones, and pausing would no longer stop
    // the reads (no backpressure on a body). Marked consumed, it reads through the stream.
    const handle = (socket as unknown as { _handle?: { _consumed?: boolean } | null })._handle;
    if (handle) handle._consumed = true;
    this.opts.slow.emit("connection", socket);
    socket.resume();
  }
}
