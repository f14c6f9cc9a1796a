import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { constants as h2c, type ServerHttp2Stream } from "node:http2";
import { endedByReset } from "./h2-call.js";
import { cleanTrailers, isGrpcContentType } from "./headers.js";
import { localReply } from "./local-reply.js";
import type { Downstream, HeaderMap, IncomingHeaders } from "./types.js";

/**
 * The two shapes a client of the proxy can have, behind one interface:
 * an HTTP/1.1 request/response pair, or an HTTP/2 stream. Neither adapter
 * throws: a response that cannot be written resets the exchange instead.
 */

const noop = (): void => {};

/** Whether an HTTP/1.1 request carries a body: chunked, or a non-zero Content-Length (parsed and validated by llhttp). */
function h1HasBody(headers: IncomingHeaders): boolean {
  if (headers["transfer-encoding"] !== undefined) return true;
  const cl = headers["content-length"];
  return cl !== undefined && cl !== "0";
}

export interface H1DownstreamOptions {
  /** Whether the response should close the connection (the listener is draining). */
  closeAfter(): boolean;
}

export function h1Downstream(
  req: IncomingMessage,
  res: ServerResponse,
  opts: H1DownstreamOptions,
): Downstream {
  req.on("error", noop);
  res.on("error", noop);
  const hasBody = h1HasBody(req.headers);
  // A request without a body is consumed now, so that its "end" comes and node:http moves to the next one.
  if (!hasBody) req.resume();
  let finished = false;
  const gone: (() => void)[] = [];
  res.once("close", () => {
    if (finished && res.writableFinished) return;
    for (const fn of gone.splice(0)) fn();
  });

  const writeHead = (status: number, headers: HeaderMap): void => {
    const out: OutgoingHttpHeaders = { ...headers };
    if (opts.closeAfter()) out.connection = "close";
    res.writeHead(status, out);
  };

  const down: Downstream = {
    method: req.method ?? "GET",
    grpc: false,
    body: hasBody ? req : undefined,
    trailers: () => (req.complete ? cleanTrailers(req.trailers) : undefined),
    bodyComplete: () => req.complete,
    get headersSent() {
      return res.headersSent;
    },
    respond(status, headers, endStream) {
      try {
        writeHead(status, headers);
      } catch {
        // A value node:http refuses to write (it validates every header): nothing went out.
        return false;
      }
      if (endStream) {
        finished = true;
        res.end();
      }
      return true;
    },
    sink: res,
    end(trailers) {
      if (finished) return;
      finished = true;
      try {
        // node:http sends trailers only with chunked coding; with Content-Length they cannot be expressed.
        if (trailers !== undefined && res.chunkedEncoding) res.addTrailers(trailers);
        res.end();
      } catch {
        down.reset();
      }
    },
    reset() {
      finished = true;
      res.destroy();
    },
    refuse() {
      return false;
    },
    localReply(status, body, flags, extra) {
      if (res.headersSent) {
        down.reset();
        return;
      }
      const reply = localReply(status, body, flags, false, extra);
      const headers: OutgoingHttpHeaders = { ...reply.headers };
      // A body we did not read would otherwise have to be drained before the next request.
      if (!req.complete || opts.closeAfter()) headers.connection = "close";
      finished = true;
      try {
        res.writeHead(reply.status, headers);
        res.end(reply.body);
      } catch {
        res.destroy();
      }
    },
    onGone(fn) {
      gone.push(fn);
    },
  };
  return down;
}

export function h2Downstream(stream: ServerHttp2Stream, headers: IncomingHeaders, flags: number): Downstream {
  stream.on("error", noop);
  const endStream = (flags & h2c.NGHTTP2_FLAG_END_STREAM) !== 0;
  if (endStream) stream.resume();
  let trailersIn: HeaderMap | undefined;
  stream.on("trailers", (t: IncomingHeaders) => {
    trailersIn = cleanTrailers(t);
  });
  let finished = false;
  let trailersOut: HeaderMap | undefined;
  let wasReset = false;
  stream.on("wantTrailers", () => {
    // A reset response must end in RST_STREAM: trailers (END_STREAM) would make the truncation look complete.
    if (wasReset) return;
    try {
      // Empty trailers go out as an empty DATA frame with END_STREAM (node:http2 does this for {}).
      stream.sendTrailers(trailersOut ?? {});
    } catch {
      down.reset();
    }
  });
  const gone: (() => void)[] = [];
  stream.once("close", () => {
    if (finished && stream.rstCode === h2c.NGHTTP2_NO_ERROR) return;
    for (const fn of gone.splice(0)) fn();
  });

  /**
   * After a complete response to a request whose body is still coming, ask
   * the client to stop sending (RFC 9113 §8.1: RST_STREAM NO_ERROR). Only for
   * local replies: they have no trailers that a reset could overtake.
   */
  const stopRequestBody = (): void => {
    if (!stream.readableEnded && !stream.destroyed) stream.close(h2c.NGHTTP2_NO_ERROR);
  };

  const down: Downstream = {
    method: String(headers[":method"] ?? "GET"),
    grpc: isGrpcContentType(headers["content-type"]),
    body: endStream ? undefined : stream,
    trailers: () => trailersIn,
    bodyComplete: () => !endedByReset(stream),
    get headersSent() {
      return stream.headersSent;
    },
    respond(status, headers, endStream) {
      // A stream already gone: the "close" handler reports it.
      if (stream.destroyed || stream.closed) return true;
      try {
        stream.respond(
          { ...headers, ":status": status },
          endStream ? { endStream: true } : { waitForTrailers: true },
        );
      } catch {
        // A field node:http2 refuses (e.g. connection-specific): nothing went out.
        return false;
      }
      if (endStream) finished = true;
      return true;
    },
    sink: stream,
    end(trailers) {
      if (finished) return;
      finished = true;
      trailersOut = trailers;
      if (!stream.destroyed) stream.end();
    },
    reset() {
      finished = true;
      wasReset = true;
      if (!stream.destroyed) stream.close(h2c.NGHTTP2_INTERNAL_ERROR);
    },
    refuse() {
      if (stream.headersSent || stream.destroyed || stream.closed) return false;
      finished = true;
      // RFC 9113 §8.7: REFUSED_STREAM promises the request was not processed, so the peer
      // proxy may send it to another endpoint (its outbound retries bodiless requests).
      stream.close(h2c.NGHTTP2_REFUSED_STREAM);
      return true;
    },
    localReply(status, body, flags, extra) {
      if (stream.headersSent) {
        down.reset();
        return;
      }
      if (stream.destroyed || stream.closed) return;
      const reply = localReply(status, body, flags, down.grpc, extra);
      finished = true;
      try {
        if (reply.endStream || reply.body === "" || down.method === "HEAD") {
          stream.respond({ ...reply.headers, ":status": reply.status }, { endStream: true });
          stopRequestBody();
        } else {
          stream.respond({ ...reply.headers, ":status": reply.status });
          stream.end(reply.body, stopRequestBody);
        }
      } catch {
        if (!stream.destroyed) stream.close(h2c.NGHTTP2_INTERNAL_ERROR);
      }
    },
    onGone(fn) {
      gone.push(fn);
    },
  };
  return down;
}
