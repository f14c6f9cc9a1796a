/**
 * The one place where a thrown value becomes an HTTP response (habit 3).
 * A WeftError keeps its catalogued status and code; anything else is a bug:
 * 500 WEFT_ERR_INTERNAL with a reference id, the stack goes to the log only.
 */
import type { ServerResponse } from "node:http";
import { isWeftError, shortId, WeftError, weftError } from "@weft/core";
import type { Logger } from "pino";

const BASE_HEADERS = {
  "content-type": "application/json; charset=utf-8",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
} as const;

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string | number> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  const extra: Record<string, string | number> = {};
  if (res.req !== undefined && !res.req.complete) {
    // Answered before the request's body was read (401/403/404/405/415/413...): close after the
    // answer instead of parsing the unread rest of the body on a kept-alive connection, where a
    // malformed body would draw a second, unsolicited response (HARDENING: smuggling, pipelining).
    res.shouldKeepAlive = false;
    extra.connection = "close";
    lingerAfter(res);
  }
  res.writeHead(status, { ...BASE_HEADERS, "content-length": Buffer.byteLength(text), ...extra, ...headers });
  res.end(text);
}

/** After an early answer: how long, and how many bytes, the unread rest of a body is still drained. */
const LINGER_MS = 2_000;
const LINGER_BYTES = 8 * 1024 * 1024;

/**
 * Lingering close (as Apache and nginx do). Node destroys the socket as soon as a
 * `connection: close` answer is flushed; with request bytes still arriving, the kernel then
 * answers them with a reset that can discard our answer before the client has read it (a 413
 * seen as ECONNRESET). Instead, after our FIN, read and discard what still comes (at most
 * LINGER_BYTES, then stop reading) and destroy after LINGER_MS or when the client closes. Parse errors meanwhile destroy at once (server.ts).
 */
function lingerAfter(res: ServerResponse): void {
  const req = res.req;
  const socket = req.socket;
  res.once("finish", () => {
    // Node's own "finish" listener ran first and called socket.destroySoon(): end(), then
    // once("finish", destroy). Keep the end(), replace the immediate destroy with a bounded one.
    socket.removeListener("finish", socket.destroy);
    const cut = () => socket.destroy();
    const timer = setTimeout(cut, LINGER_MS);
    timer.unref();
    socket.once("close", () => clearTimeout(timer));
    // Past LINGER_BYTES stop reading (TCP backpressure) rather than destroy: a destroy with
    // unread bytes sends a reset at once, and a reset makes the client's kernel drop our answer
    // if the client has not read it yet. Only the time bound destroys.
    let drained = 0;
    req.on("data", (c: Buffer) => {
      drained += c.length;
      if (drained > LINGER_BYTES) req.pause();
    });
    req.resume();
  });
}

/** Maps any thrown value to its status and `{error: {code, message}}` body, logging what must be logged. */
export function errorResponse(
  err: unknown,
  log: Logger | undefined,
): { status: number; body: unknown; error: WeftError } {
  if (isWeftError(err)) {
    if (err.status >= 500) log?.error({ err, code: err.code }, "request failed");
    return { status: err.status, body: err.toJSON(), error: err };
  }
  const ref = shortId();
  log?.error({ err, ref }, "unhandled error while serving a request");
  const e = weftError("WEFT_ERR_INTERNAL", { ref });
  return { status: e.status, body: e.toJSON(), error: e };
}

export function sendError(
  res: ServerResponse,
  err: unknown,
  log: Logger | undefined,
  headers: Record<string, string | number> = {},
): void {
  const { status, body, error } = errorResponse(err, log);
  if (res.headersSent) {
    // Too late for a status: cut the response so the client sees a failure, not a truncated success.
    res.destroy(error);
    return;
  }
  const extra: Record<string, string | number> = { ...headers };
  if (error.code === "WEFT_ERR_METHOD_NOT_ALLOWED" && typeof error.params.allowed === "string") {
    extra.allow = error.params.allowed;
  }
  if (error.status === 503) extra["retry-after"] = 1;
  sendJson(res, status, body, extra);
}

export { WeftError };
