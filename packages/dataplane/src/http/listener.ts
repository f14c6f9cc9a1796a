import http, { type IncomingMessage, type ServerResponse } from "node:http";
import http2, { type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { tracer } from "@weft/core";
import type { DrainTracker } from "./drain.js";
import { Flag } from "./flags.js";
import { watchLiveness } from "./liveness.js";
import { rawLocalReply } from "./local-reply.js";
import type { HttpLimits } from "./types.js";
import { endWith } from "./upgrade.js";

/**
 * The protocol servers of both sides, created but never listening: the
 * sidecar owns the sockets (plain TCP from the app, verified mTLS from
 * peers) and hands them in with `emit("connection", socket)`. Limits from
 * HARDENING.md are applied here, once, for every listener.
 */

const trace = tracer("http");
const noop = (): void => {};

export interface H1Handlers {
  request(req: IncomingMessage, res: ServerResponse): void;
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

const CLIENT_ERROR_TEXT: Record<number, string> = {
  400: "malformed HTTP request",
  408: "request headers not received in time",
  431: "request headers too large",
};

export function createH1Server(limits: HttpLimits, tracker: DrainTracker, handlers: H1Handlers): http.Server {
  const server = http.createServer({
    // Strict llhttp: CL+TE, duplicate Content-Length, obfuscated Transfer-Encoding, obs-fold, bare LF → clientError.
    insecureHTTPParser: false,
    maxHeaderSize: limits.maxHeaderBytes,
    requireHostHeader: true,
    headersTimeout: limits.headersTimeoutMs,
    // No whole-request limit from node:http: long uploads are legitimate; idle ones hit `timeout`.
    requestTimeout: 0,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 2))),
    noDelay: true,
  });
  // Inactivity on a connection, inside or between requests (slow bodies, silent clients).
  server.timeout = limits.idleTimeoutMs;
  // node:http silently drops headers beyond maxHeadersCount; we count them ourselves and refuse with 431.
  server.maxHeadersCount = 0;
  // node:http starts its headers-timeout sweeper on "listening"; this server never listens, so start it here.
  server.emit("listening");

  const tooManyHeaders = (req: IncomingMessage): boolean => req.rawHeaders.length / 2 > limits.maxHeaderCount;

  // The latest exchange per connection: a parse error in its body must not get a second response.
  const lastExchange = new WeakMap<Duplex, { req: IncomingMessage; res: ServerResponse }>();
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    lastExchange.set(req.socket, { req, res });
    if (tooManyHeaders(req)) {
      res.writeHead(431, { "content-type": "text/plain; charset=utf-8", connection: "close" });
      res.end(CLIENT_ERROR_TEXT[431]);
      return;
    }
    handlers.request(req, res);
  });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", noop);
    if (tracker.busy(socket)) {
      // Pipelined behind a response still being written: a 101 would be interleaved with it.
      socket.destroy();
      return;
    }
    const refuse = (status: number, text: string): void =>
      endWith(socket, rawLocalReply(status, text, Flag.DownstreamProtocolError));
    if (tooManyHeaders(req)) {
      refuse(431, CLIENT_ERROR_TEXT[431] ?? "");
      return;
    }
    if (req.headers["transfer-encoding"] !== undefined || (req.headers["content-length"] ?? "0") !== "0") {
      // Its body would travel unframed inside the tunnel, past the parsers.
      refuse(400, "an upgrade request cannot carry a body");
      return;
    }
    if (onlyH2c(req)) {
      // h2c upgrade would tunnel a whole HTTP/2 connection past per-request authorization ("h2c
      // smuggling"). Clients that offer it fall back to HTTP/1.1: serve it as a plain request.
      let res: ServerResponse;
      try {
        res = plainResponse(req, socket);
      } catch {
        socket.destroy();
        return;
      }
      handlers.request(req, res);
      return;
    }
    handlers.upgrade(req, socket, head);
  });
  // CONNECT is no business of a sidecar listener.
  server.on("connect", (_req: IncomingMessage, socket: Duplex) => {
    socket.on("error", noop);
    endWith(socket, rawLocalReply(405, "CONNECT is not supported", Flag.DownstreamProtocolError));
  });
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    trace("client error", { code: err.code, reason: (err as { reason?: string }).reason });
    if (err.code === "ECONNRESET" || !socket.writable || tracker.busy(socket)) {
      // Nothing can be written without corrupting a response in progress: close.
      socket.destroy();
      return;
    }
    const last = lastExchange.get(socket);
    if (last !== undefined && !last.req.complete) {
      // The error is in the body of a request already answered (a local reply): no second response.
      if (last.res.writableEnded) endWith(socket, "");
      else socket.destroy();
      return;
    }
    const status =
      err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
    endWith(socket, rawLocalReply(status, CLIENT_ERROR_TEXT[status] ?? "", Flag.DownstreamProtocolError));
  });
  return server;
}

/** HTTP/2 server settings for both sides: bounded streams, windows, header lists and session memory. */
export function createH2Server(
  limits: HttpLimits,
  tracker: DrainTracker,
  onSession: (session: ServerHttp2Session) => void,
  onStream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number) => void,
): http2.Http2Server {
  const server = http2.createServer({
    settings: {
      maxConcurrentStreams: limits.maxConcurrentStreams,
      maxHeaderListSize: limits.maxHeaderBytes,
      initialWindowSize: 256 * 1024,
      enableConnectProtocol: false,
    },
    // MB of nghttp2 state and queued output per session; beyond, new streams are refused.
    maxSessionMemory: 32,
    // Pseudo-headers count too.
    maxHeaderListPairs: limits.maxHeaderCount + 8,
    maxOutstandingPings: 10,
    maxSettings: 32,
    maxSessionRejectedStreams: 100,
    maxSessionInvalidFrames: 100,
    peerMaxConcurrentStreams: limits.maxConcurrentStreams,
    unknownProtocolTimeout: 5_000,
  });
  server.on("session", (session: ServerHttp2Session) => {
    session.on("error", (e: Error) => trace("h2 session error", { error: e.message }));
    let open = 0;
    session.on("stream", (stream: ServerHttp2Stream) => {
      open++;
      stream.once("close", () => open--);
    });
    watchLiveness(session, () => open);
    session.setTimeout(limits.idleTimeoutMs, () => session.close());
    try {
      session.setLocalWindowSize(1024 * 1024);
    } catch {
      // The session is already gone.
    }
    tracker.addSession(session);
    onSession(session);
  });
  server.on("sessionError", noop);
  server.on("stream", (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number) => {
    // A stream with no frame either way for this long is reset (Envoy's stream idle timeout): slow or
    // stuck bodies cannot pin one of the session's streams, or the app connection behind it, forever.
    // INTERNAL_ERROR, not CANCEL: node:http2 clients take a CANCEL for a clean end of the response.
    stream.setTimeout(limits.idleTimeoutMs, () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    onStream(stream, headers, flags);
  });
  return server;
}

function onlyH2c(req: IncomingMessage): boolean {
  const offered = String(req.headers.upgrade ?? "")
    .split(",")
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== "");
  return offered.length > 0 && offered.every((t) => t === "h2c");
}

/** A response on an upgrade's raw socket (node:http detached its parser): one response, then the connection ends. */
function plainResponse(req: IncomingMessage, socket: Duplex): ServerResponse {
  const res = new http.ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  res.once("finish", () => {
    res.detachSocket(socket as Socket);
    endWith(socket, "");
  });
  return res;
}
