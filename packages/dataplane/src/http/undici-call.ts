import { PassThrough, Readable } from "node:stream";
import type { Dispatcher } from "undici";
import { cleanTrailers, type RequestHead, rawResponseHeaders } from "./headers.js";
import type { HeaderMap, UpstreamCall, UpstreamEvents, UpstreamFailure } from "./types.js";

/**
 * One HTTP/1.1 request through undici's handler-level `dispatch`, shared by
 * the two places that speak HTTP/1.1 upstream: the local app (app-client.ts,
 * an undici Pool) and the peer proxy (h1-peer-call.ts, one kept-alive mTLS
 * connection). The object is both undici's dispatch handler (its native
 * callback API, no wrapper) and the relay's UpstreamCall, so a request costs
 * one object, not a set of closures. Reports exactly one of complete / fail.
 */

/** Errors that mean the connection was never made: nothing reached the upstream. */
export const CONNECT_ERRORS = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "ENOTFOUND",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/** The connection broke under a request that got no response: on a kept-alive socket, most likely stale. */
export const STALE_ERRORS = new Set(["UND_ERR_SOCKET", "ECONNRESET", "EPIPE"]);

/** RFC 9110 §9.2.2: only these may be sent again without the client asking. */
export const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/** What undici accepts in a request head (it refuses the rest, later and asynchronously). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const ORIGIN_PATH = /^\/[\x21-\xff]*$/;

/**
 * Whether undici can send this request as it is. It cannot send a body
 * without Content-Length with trailers (it never writes request trailers),
 * refuses `Expect`, and wants a path starting with "/" (no `OPTIONS *`).
 */
export function undiciCanSend(head: RequestHead, endStream: boolean): boolean {
  return (
    (endStream || head.headers["content-length"] !== undefined) &&
    head.headers.expect === undefined &&
    head.path !== "*"
  );
}

/** One error object for every cancel: undici only passes it back to the call that cancelled. */
export const CANCELLED = Object.assign(new Error("request cancelled by the proxy"), {
  code: "WEFT_CANCELLED",
});

/**
 * The response body as a Readable for the relay. undici's parser pushes into
 * it and is paused when it is full (`push` → false), resumed when it is read.
 */
class UndiciResponseBody extends Readable {
  readonly #resume: () => void;
  paused = false;

  constructor(resume: () => void) {
    super({ highWaterMark: 64 * 1024 });
    this.#resume = resume;
  }

  override _read(): void {
    if (!this.paused) return;
    this.paused = false;
    try {
      this.#resume();
    } catch {
      // The connection is already gone: its error reaches the call's onError.
    }
  }
}

export abstract class UndiciCall implements UpstreamCall, Dispatcher.DispatchHandler {
  readonly requestSink: PassThrough | undefined;
  protected readonly events: UpstreamEvents;
  protected readonly dispatchOptions: Dispatcher.DispatchOptions;
  /** Settled: complete or fail was reported (or the call was cancelled). */
  protected over = false;
  readonly #stripInternal: boolean;
  #abort: ((err?: Error) => void) | undefined;
  #body: UndiciResponseBody | undefined;
  #trailers: HeaderMap | undefined;
  #cancelled = false;

  /**
   * Throws (code ERR_INVALID_CHAR) when the head cannot be written: a value
   * or target that would break framing. Nothing goes out then, and the caller
   * sees a call that could not be opened (→ 400), as node:http did.
   */
  constructor(
    head: RequestHead,
    host: string,
    endStream: boolean,
    events: UpstreamEvents,
    opts: { stripInternalResponse: boolean },
  ) {
    this.events = events;
    this.#stripInternal = opts.stripInternalResponse;
    let invalid = !TOKEN.test(head.method) || !ORIGIN_PATH.test(head.path) || BAD_VALUE.test(host);
    const headers: string[] = ["host", host];
    for (const name in head.headers) {
      // TE is hop-by-hop in HTTP/1.1 and would have to be nominated in Connection; apps do not need it.
      if (name === "te") continue;
      if (!TOKEN.test(name)) invalid = true;
      const value = head.headers[name] as string | string[];
      if (typeof value === "string") {
        if (BAD_VALUE.test(value)) invalid = true;
        headers.push(name, value);
      } else {
        for (const v of value) {
          if (BAD_VALUE.test(v)) invalid = true;
          headers.push(name, v);
        }
      }
    }
    if (invalid) {
      throw Object.assign(new TypeError("request head cannot be written upstream"), {
        code: "ERR_INVALID_CHAR",
      });
    }
    this.requestSink = endStream ? undefined : new PassThrough();
    this.dispatchOptions = { method: head.method, path: head.path, headers, body: this.requestSink ?? null };
  }

  /** The request failed before any response head: report it, or send it again. */
  protected abstract failedEarly(err: Error, code: string): void;

  /** A response head the subclass takes for a failure (not relayed); its body is read and dropped. */
  protected refusedResponse(_status: number, _rawHeaders: Buffer[]): UpstreamFailure | undefined {
    return undefined;
  }

  /** undici is done with the request and its connection is free again (a response read whole). */
  protected released(): void {}

  /** Reports a failure once. */
  protected fail(kind: UpstreamFailure, detail: string): void {
    if (this.over) return;
    this.over = true;
    this.events.fail(kind, detail);
  }

  // ------------------------------------------------------------ UpstreamCall

  endRequest(_trailers: HeaderMap | undefined): void {
    // With Content-Length, trailers cannot be expressed in HTTP/1.1 (see undiciCanSend).
    if (!this.over) this.requestSink?.end();
  }

  cancel(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.over = true;
    const abort = this.#abort;
    this.#abort = undefined;
    // In flight: undici fails the request and closes its connection (the upstream sees the request
    // end early). Queued in undici: onConnect drops it before a byte is written. Not handed over yet: never.
    abort?.(CANCELLED);
    this.requestSink?.destroy();
    const body = this.#body;
    this.#body = undefined;
    body?.destroy();
  }

  // ------------------------------------------------------------ undici's handler

  onConnect(abort: (err?: Error) => void): void {
    // Cancelled while waiting for a connection. Thrown, not abort(): undici then drops the request
    // before writing a byte and keeps the connection, where abort() would close it. A flood of
    // streams reset as soon as opened (rapid reset) would otherwise cost a connection each.
    if (this.over) throw CANCELLED;
    this.#abort = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // 1xx (102, 103): informational, not relayed, as node:http did.
    if (this.over || statusCode < 200) return true;
    const refused = this.refusedResponse(statusCode, rawHeaders);
    if (refused !== undefined) {
      // Its (small) body is read by undici and dropped; the connection stays usable.
      this.fail(refused, `upstream refused the request (${statusCode})`);
      return true;
    }
    const body = new UndiciResponseBody(resume);
    this.#body = body;
    body.once("end", () => {
      if (this.over) return;
      this.over = true;
      this.#abort = undefined;
      this.events.complete(this.#trailers);
    });
    this.events.response(
      {
        status: statusCode,
        headers: rawResponseHeaders(rawHeaders, { stripInternal: this.#stripInternal }),
        endStream: false,
      },
      body,
    );
    return true;
  }

  onData(chunk: Buffer): boolean {
    const body = this.#body;
    if (body === undefined) return true;
    if (body.push(chunk)) return true;
    body.paused = true;
    return false;
  }

  onComplete(rawTrailers: Buffer[] | string[] | null): void {
    this.#abort = undefined;
    this.released();
    const body = this.#body;
    if (this.over || body === undefined) return;
    if (rawTrailers !== null && rawTrailers.length > 0) {
      this.#trailers = cleanTrailers(rawResponseHeaders(rawTrailers, { stripInternal: false }));
    }
    // complete() follows the body's "end": after everything pushed has been read.
    body.push(null);
  }

  onError(err: Error): void {
    this.#abort = undefined;
    if (this.over) return;
    const body = this.#body;
    if (body !== undefined) {
      this.#body = undefined;
      this.fail("reset", err.message);
      body.destroy();
      return;
    }
    this.failedEarly(err, (err as NodeJS.ErrnoException).code ?? "");
  }
}
