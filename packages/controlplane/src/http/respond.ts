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
  res.writeHead(status, { ...BASE_HEADERS, "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
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
