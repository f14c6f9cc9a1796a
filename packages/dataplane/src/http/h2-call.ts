import type { OutgoingHttpHeaders } from "node:http";
import { type ClientHttp2Session, type Http2Stream, constants as h2c } from "node:http2";
import { cleanTrailers, responseHeaders } from "./headers.js";
import type { HeaderMap, IncomingHeaders, UpstreamCall, UpstreamEvents } from "./types.js";

/**
 * Whether a stream's readable side "ended" only because the stream was reset.
 * node:http2 ends the readable side of a stream closed by RST_STREAM CANCEL
 * (or by its connection closing) with a plain "end", exactly like END_STREAM:
 * taken at face value, a truncated body would be relayed as complete. At
 * "end" time a real END_STREAM leaves the stream open or closed with
 * NO_ERROR; a reset has already closed it with its code.
 */
/** How long an abandoned response may take to end by itself before its stream is reset. */
const DRAIN_BEFORE_RESET_MS = 250;

export function endedByReset(stream: Http2Stream): boolean {
  return stream.closed && stream.rstCode !== undefined && stream.rstCode !== h2c.NGHTTP2_NO_ERROR;
}

/**
 * An UpstreamCall on an HTTP/2 client session: the peer proxy (outbound) or
 * an h2c app (inbound). Reports exactly one of complete / fail.
 *
 * `session.request` throws when the session is closing; that is left to the
 * caller (relay reports it as "open-failed", so it can take a new session).
 */
export function openH2Call(
  session: ClientHttp2Session,
  headers: OutgoingHttpHeaders,
  endStream: boolean,
  events: UpstreamEvents,
  opts: { stripInternalResponse: boolean },
): UpstreamCall {
  const stream = session.request(
    headers,
    endStream ? { endStream: true } : { endStream: false, waitForTrailers: true },
  );
  let over = false;
  let responded = false;
  let requestEnded = endStream;
  let trailersIn: HeaderMap | undefined;
  let trailersOut: HeaderMap | undefined;
  let lastError = "";

  stream.on("error", (e: Error) => {
    lastError = e.message;
  });
  stream.once("response", (headers: IncomingHeaders, flags: number) => {
    if (over) return;
    responded = true;
    const status = Number(headers[":status"]);
    events.response(
      {
        status,
        headers: responseHeaders(headers, { stripInternal: opts.stripInternalResponse }),
        endStream: (flags & h2c.NGHTTP2_FLAG_END_STREAM) !== 0,
      },
      stream,
    );
  });
  stream.on("trailers", (t: IncomingHeaders) => {
    trailersIn = cleanTrailers(t);
  });
  stream.once("end", () => {
    if (over || !responded) return;
    over = true;
    if (endedByReset(stream)) events.fail("reset", `stream reset with code ${stream.rstCode}`);
    else events.complete(trailersIn);
  });
  stream.once("close", () => {
    if (over) return;
    over = true;
    const code = stream.rstCode;
    // REFUSED_STREAM (RFC 9113 §8.7): the peer guarantees it did not process the stream.
    const refused = code === h2c.NGHTTP2_REFUSED_STREAM || (!responded && stream.id === undefined);
    const detail = lastError || `stream closed with code ${code ?? "?"}`;
    events.fail(refused ? "refused" : "reset", detail);
  });
  let cancelled = false;
  stream.on("wantTrailers", () => {
    // After cancel() the body must end in RST_STREAM, never in END_STREAM: a truncated body would look complete.
    if (cancelled) return;
    try {
      stream.sendTrailers(trailersOut ?? {});
    } catch {
      stream.close(h2c.NGHTTP2_INTERNAL_ERROR);
    }
  });

  return {
    requestSink: endStream ? undefined : stream,
    endRequest(trailers) {
      if (endStream || stream.destroyed) return;
      trailersOut = trailers;
      requestEnded = true;
      stream.end();
    },
    cancel() {
      over = true;
      cancelled = true;
      // The client left after the response started while our request was whole: most often it had
      // everything already (it closes as soon as Content-Length bytes are in, a moment before the
      // peer's END_STREAM is read). A RST_STREAM per such exchange would count against the peer's
      // reset rate limit (nghttp2 answers a burst with GOAWAY, failing every stream on the session),
      // so the rest is drained for a moment and the stream reset only if it does not end by then.
      if (requestEnded && responded && !stream.destroyed) {
        stream.resume();
        const timer = setTimeout(() => {
          if (!stream.destroyed && !stream.closed) stream.close(h2c.NGHTTP2_CANCEL);
        }, DRAIN_BEFORE_RESET_MS);
        timer.unref();
        stream.once("close", () => clearTimeout(timer));
        return;
      }
      // CANCEL looks like a clean end of the body to a node:http2 server (see endedByReset); a request
      // body cut short is reset with INTERNAL_ERROR so that no app can take it for complete.
      if (!stream.destroyed) stream.close(requestEnded ? h2c.NGHTTP2_CANCEL : h2c.NGHTTP2_INTERNAL_ERROR);
    },
  };
}
