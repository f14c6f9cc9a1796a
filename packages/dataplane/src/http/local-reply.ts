import { STATUS_CODES } from "node:http";
import { FLAGS_HEADER, NO_FLAGS } from "./flags.js";
import type { HeaderMap } from "./types.js";

/**
 * Responses the proxy makes itself (Envoy's sendLocalReply): one shape for
 * every refusal, with the response flags in a header. A gRPC client gets a
 * trailers-only response carrying the equivalent grpc-status instead of an
 * HTTP error it would turn into a vague UNKNOWN. Bodies are fixed texts:
 * never a stack trace, never an internal address.
 */

export interface LocalReply {
  status: number;
  headers: HeaderMap;
  /** Empty for gRPC: everything is in the (trailers-only) head. */
  body: string;
  /** The head ends the stream (gRPC trailers-only). */
  endStream: boolean;
}

// https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md, with the more telling
// codes where the proxy knows the cause (timeouts, limits).
const GRPC_FOR_HTTP: Readonly<Record<number, number>> = {
  400: 13,
  401: 16,
  403: 7,
  404: 12,
  405: 12,
  408: 4,
  413: 8,
  // The proxy's own 429 is a local rate limit: RESOURCE_EXHAUSTED tells the client it was refused
  // for quota, not that the service is down (UNAVAILABLE would invite an immediate retry).
  429: 8,
  431: 8,
  501: 12,
  502: 14,
  503: 14,
  504: 4,
};

export function grpcStatusFor(httpStatus: number): number {
  return GRPC_FOR_HTTP[httpStatus] ?? 2;
}

/** grpc-message is percent-encoded UTF-8: everything outside 0x20–0x7E, and '%' itself. */
export function encodeGrpcMessage(message: string): string {
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    if (byte >= 0x20 && byte <= 0x7e && byte !== 0x25) out += String.fromCharCode(byte);
    else out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** `extra` fields (retry-after) go in the head, for gRPC too: a trailers-only response is all head. */
export function localReply(
  status: number,
  body: string,
  flags: string,
  grpc: boolean,
  extra?: HeaderMap,
): LocalReply {
  const headers: HeaderMap = { ...extra };
  if (flags !== "" && flags !== NO_FLAGS) headers[FLAGS_HEADER] = flags;
  if (grpc) {
    headers["content-type"] = "application/grpc";
    headers["grpc-status"] = String(grpcStatusFor(status));
    headers["grpc-message"] = encodeGrpcMessage(body);
    return { status: 200, headers, body: "", endStream: true };
  }
  headers["content-type"] = "text/plain; charset=utf-8";
  headers["content-length"] = String(Buffer.byteLength(body));
  return { status, headers, body, endStream: false };
}

/** A whole HTTP/1.1 response for a raw socket (upgrade paths), closing the connection. */
export function rawLocalReply(status: number, body: string, flags: string, extra?: HeaderMap): string {
  const reply = localReply(status, body, flags, false, extra);
  return rawReply(status, reply.headers, body);
}

/** Any response as raw HTTP/1.1 bytes, closing the connection (a route's redirect on an upgrade path). */
export function rawReply(status: number, headers: HeaderMap, body: string): string {
  let head = `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    for (const v of Array.isArray(value) ? value : [value]) head += `${name}: ${v}\r\n`;
  }
  return `${head}connection: close\r\n\r\n${body}`;
}

export function reasonPhrase(status: number): string {
  return STATUS_CODES[status] ?? "Unknown";
}
