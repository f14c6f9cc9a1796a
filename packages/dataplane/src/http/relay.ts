import { performance } from "node:perf_hooks";
import type { Readable } from "node:stream";
import { Flag, FlagSet } from "./flags.js";
import { CONTENT_LENGTH } from "./h1-fast/grammar.js";
import { bodilessStatus } from "./headers.js";
import { pump } from "./pump.js";
import { grpcStatusOf, type TryFailure } from "./retry-policy.js";
import type {
  Downstream,
  HeaderMap,
  UpstreamCall,
  UpstreamEvents,
  UpstreamFailure,
  UpstreamResponseHead,
} from "./types.js";

/**
 * One exchange between a Downstream and an UpstreamCall: the request body
 * flows up, the response (head, body, trailers) flows down, both with
 * backpressure (pipe), never buffered whole. Every way an exchange can end
 * goes through `settle` exactly once:
 *
 * - the upstream completes → the response is ended with its trailers;
 * - the upstream fails before the response head → a local reply (503…);
 *   after it → the downstream is reset, never truncated silently;
 * - the timeout fires → 504 (UT), or a reset once the head is out;
 * - the body exceeds the limit → 413, or a reset;
 * - the downstream goes away → the upstream call is cancelled (DC);
 * - a retry policy (`retry`) takes a failed try back before anything of
 *   the response reached the downstream → "retry", nothing replied.
 */

export interface RelayOptions {
  /** Time left for the whole exchange; none = no limit. */
  timeoutMs?: number;
  maxRequestBodyBytes?: number;
  /** A stream the upstream refused (it did not process it) ends the relay with "retry" when no byte was sent. */
  retryRefused?: boolean;
  /**
   * When the upstream cannot be connected at all (the local app is down), refuse the
   * downstream stream (REFUSED_STREAM) instead of answering 503, so that the peer proxy
   * can retry another endpoint. Falls back to the 503 where refusing is not possible.
   */
  refuseOnConnectFailure?: boolean;
  /**
   * This try's own limit (a retry policy's per-try timeout). Counted until the
   * response head is relayed; past it, only `timeoutMs` applies (a stream
   * that started answering is not cut for being slow to finish).
   */
  perTryTimeoutMs?: number;
  /**
   * Asked, synchronously, when the try failed while nothing of the response
   * reached the downstream: a response head (before it is relayed), a reset,
   * a refused stream, or the per-try timeout. True = the caller retries:
   * the call is cancelled and the relay ends with "retry". Must not throw.
   */
  retry?: (failure: TryFailure) => boolean;
  /**
   * A route's idle timeout: no byte in either direction (request body,
   * response head or body) for this long ends the exchange with 504 UT, or
   * a reset once the head is out. Checked lazily: activity only stamps a time.
   */
  idleTimeoutMs?: number;
  /** Sees each request body chunk as it goes up (to keep a copy for a retry). */
  onBodyChunk?: (chunk: Buffer) => void;
  /** The request body ended completely (not by a reset), with these trailers. */
  onBodyEnd?: (trailers: HeaderMap | undefined) => void;
}

export type RelayOutcome =
  | { kind: "done"; status: number; flags: FlagSet }
  /**
   * The upstream refused the stream before anything was sent (no `failure`), or the
   * `retry` option took the failed try back (`failure` says why): the caller tries again.
   */
  | { kind: "retry"; detail: string; failure?: TryFailure }
  /** The call could not even be opened (e.g. the session is closing); nothing was sent or replied. */
  | { kind: "open-failed"; error: unknown };

const EMPTY = Buffer.alloc(0);

const MESSAGES: Record<UpstreamFailure, { status: number; text: string; flag: string }> = {
  connect: { status: 503, text: "upstream connect error", flag: Flag.UpstreamConnectionFailure },
  refused: { status: 503, text: "upstream refused the stream", flag: Flag.UpstreamRemoteReset },
  reset: { status: 503, text: "upstream reset before response headers", flag: Flag.UpstreamRemoteReset },
  protocol: { status: 502, text: "upstream sent an invalid response", flag: Flag.UpstreamProtocolError },
};

export function relay(
  down: Downstream,
  open: (events: UpstreamEvents) => UpstreamCall,
  opts: RelayOptions = {},
): Promise<RelayOutcome> {
  const idleMs = opts.idleTimeoutMs !== undefined && opts.idleTimeoutMs > 0 ? opts.idleTimeoutMs : undefined;
  return new Promise((resolve) => {
    const flags = new FlagSet();
    let status = 0;
    let settled = false;
    let requestBytes = 0;
    let requestEnded = down.body === undefined;
    /** The body went whole to the call (sendWhole): its Readable is never read. */
    let bodyTaken = false;
    /** Stops the response body's pump (set once the head is relayed). */
    let stopResponse: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    let tryTimer: NodeJS.Timeout | undefined;
    let idleTimer: NodeJS.Timeout | undefined;
    let lastActivity = 0;
    /** The response's declared length, and what of it was relayed: a client leaving after all of it did not cut anything. */
    let declaredLength: number | undefined;
    let relayedBytes = 0;
    const stamp = (): void => {
      lastActivity = performance.now();
    };
    let call: UpstreamCall | undefined;

    const settle = (outcome: RelayOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(tryTimer);
      clearTimeout(idleTimer);
      const body = down.body;
      // "open-failed": nothing was read from the body, and the caller may try another upstream with it.
      if (outcome.kind !== "open-failed" && body !== undefined && !bodyTaken && !body.readableEnded) {
        // Whatever the client still sends is read and dropped, so its connection stays usable.
        body.unpipe();
        body.resume();
      }
      resolve(outcome);
    };

    /** Ends the exchange on the proxy's own terms: a local reply if nothing was sent yet, else a reset. */
    const abort = (httpStatus: number, text: string, flag: string): void => {
      if (settled) return;
      flags.add(flag);
      call?.cancel();
      stopResponse?.();
      if (down.headersSent) {
        down.reset();
      } else {
        status = httpStatus;
        down.localReply(httpStatus, text, flag);
      }
      settle({ kind: "done", status, flags });
    };

    /** Offers a failed try to the retry policy; true when it was taken back (the relay is over). */
    const retried = (failure: TryFailure, detail: string, body?: Readable): boolean => {
      if (settled || down.headersSent || opts.retry === undefined) return false;
      let again = false;
      try {
        again = opts.retry(failure);
      } catch {
        again = false;
      }
      if (!again) return false;
      body?.resume();
      call?.cancel();
      settle({ kind: "retry", detail, failure });
      return true;
    };

    /** A response head reached the relay: true when the retry policy took the try back (over). */
    const takenBack = (head: UpstreamResponseHead, body?: Readable): boolean => {
      const grpcStatus = head.endStream ? grpcStatusOf(head.headers["grpc-status"]) : undefined;
      if (head.status >= 300 || (grpcStatus !== undefined && grpcStatus !== 0)) {
        const failure: TryFailure =
          grpcStatus === undefined
            ? { kind: "response", status: head.status }
            : { kind: "response", status: head.status, grpcStatus };
        if (retried(failure, `upstream answered ${head.status}`, body)) return true;
      }
      clearTimeout(tryTimer);
      status = head.status;
      return false;
    };
    const invalidResponse = (): void =>
      abort(502, "upstream sent an invalid response", Flag.UpstreamProtocolError);
    /** The response is whole and relayed: the downstream is ended with its trailers. */
    const completed = (trailers: HeaderMap | undefined): void => {
      if (!down.headersSent) {
        abort(502, "upstream ended without a response", Flag.UpstreamProtocolError);
        return;
      }
      down.end(trailers);
      // The response is whole; a request still streaming (the server answered early) is abandoned.
      if (!requestEnded) call?.cancel();
      settle({ kind: "done", status, flags });
    };

    const events: UpstreamEvents = {
      response(head, body) {
        if (settled) {
          body.resume();
          return;
        }
        if (takenBack(head, body)) return;
        if (idleMs !== undefined) {
          stamp();
          body.on("data", stamp);
        }
        const bodiless = head.endStream || bodilessStatus(head.status, down.method);
        if (!down.respond(head.status, head.headers, bodiless)) {
          body.resume();
          invalidResponse();
          return;
        }
        if (bodiless) body.resume();
        else {
          const cl = head.headers["content-length"];
          if (typeof cl === "string" && CONTENT_LENGTH.test(cl)) declaredLength = Number(cl);
          stopResponse = pump(
            body,
            down.sink,
            declaredLength === undefined
              ? undefined
              : (n) => {
                  relayedBytes += n;
                },
          );
        }
      },
      complete(trailers) {
        if (settled) return;
        completed(trailers);
      },
      whole(head, body, trailers) {
        if (settled || takenBack(head)) return;
        const { status: code, headers } = head;
        if (head.endStream || bodilessStatus(code, down.method)) {
          if (down.respond(code, headers, true)) completed(trailers);
          else invalidResponse();
          return;
        }
        const bytes = body ?? EMPTY;
        if (down.respondWhole !== undefined) {
          if (!down.respondWhole(code, headers, bytes, trailers)) {
            invalidResponse();
            return;
          }
        } else {
          if (!down.respond(code, headers, false)) {
            invalidResponse();
            return;
          }
          if (bytes.length > 0) down.sink.write(bytes);
        }
        completed(trailers);
      },
      fail(kind, detail) {
        if (settled) return;
        if (kind === "refused" && opts.retryRefused && down.body === undefined && !down.headersSent) {
          settle({ kind: "retry", detail });
          return;
        }
        const failure: TryFailure | undefined =
          kind === "connect"
            ? { kind: "connect-failure" }
            : kind === "refused"
              ? { kind: "refused-stream" }
              : kind === "reset"
                ? { kind: "reset" }
                : undefined;
        if (failure !== undefined && retried(failure, detail)) return;
        const m = MESSAGES[kind];
        if (kind === "connect" && opts.refuseOnConnectFailure && down.refuse()) {
          flags.add(m.flag);
          call?.cancel();
          settle({ kind: "done", status: m.status, flags });
          return;
        }
        abort(m.status, m.text, m.flag);
      },
    };

    try {
      call = open(events);
    } catch (error) {
      settle({ kind: "open-failed", error });
      return;
    }
    if (settled) {
      call.cancel();
      return;
    }

    down.onGone(() => {
      if (settled) return;
      if (declaredLength !== undefined && relayedBytes >= declaredLength) {
        // Every byte the response declared went out; the client closed before the upstream's end of
        // stream arrived. Nothing was cut: a whole response, not DC.
        call?.cancel();
        settle({ kind: "done", status, flags });
        return;
      }
      flags.add(Flag.DownstreamConnectionTermination);
      call?.cancel();
      settle({ kind: "done", status, flags });
    });

    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(
        () => abort(504, "upstream request timeout", Flag.UpstreamRequestTimeout),
        Math.max(0, opts.timeoutMs),
      );
    }
    if (idleMs !== undefined) {
      stamp();
      const check = (): void => {
        const quiet = performance.now() - lastActivity;
        if (quiet >= idleMs) abort(504, "upstream idle timeout", Flag.UpstreamRequestTimeout);
        else idleTimer = setTimeout(check, idleMs - quiet);
      };
      idleTimer = setTimeout(check, idleMs);
    }
    if (opts.perTryTimeoutMs !== undefined && opts.perTryTimeoutMs > 0) {
      tryTimer = setTimeout(() => {
        if (retried({ kind: "per-try-timeout" }, "per-try timeout")) return;
        abort(504, "upstream request timeout", Flag.UpstreamRequestTimeout);
      }, opts.perTryTimeoutMs);
    }

    const body = down.body;
    const limit = opts.maxRequestBodyBytes;
    const whole = down.wholeBody;
    if (body !== undefined && whole !== undefined && call.sendWhole !== undefined) {
      // All in hand: handed over at once, no stream (the body Readable is left unread).
      requestBytes = whole.length;
      if (limit !== undefined && requestBytes > limit) {
        abort(413, "request body too large", "");
        return;
      }
      bodyTaken = true;
      requestEnded = true;
      opts.onBodyChunk?.(whole);
      opts.onBodyEnd?.(undefined);
      call.sendWhole(whole);
      return;
    }
    const sink = call.requestSink;
    if (body === undefined || sink === undefined) {
      call.endRequest(undefined);
      return;
    }
    body.on("data", (chunk: Buffer) => {
      requestBytes += chunk.length;
      if (idleMs !== undefined) stamp();
      opts.onBodyChunk?.(chunk);
      if (limit !== undefined && requestBytes > limit) {
        abort(413, "request body too large", "");
      }
    });
    body.once("end", () => {
      if (settled) return;
      if (!down.bodyComplete()) {
        // The client reset or dropped mid-body: the upstream must see a reset, never a complete request.
        flags.add(Flag.DownstreamConnectionTermination);
        call?.cancel();
        settle({ kind: "done", status, flags });
        return;
      }
      requestEnded = true;
      const trailers = down.trailers();
      opts.onBodyEnd?.(trailers);
      call?.endRequest(trailers);
    });
    body.pipe(sink, { end: false });
  });
}
