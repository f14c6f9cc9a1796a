/**
 * The request-head parser of the fast HTTP/1.1 front (connection.ts). It
 * takes only what it is sure of and hands everything else to node:http
 * (llhttp, strict): a request it returns is a complete HTTP/1.1 request in
 * the buffer, head and body, with nothing a strict parser could read
 * differently. `undefined` means "not mine": the connection goes to node:http
 * with the bytes unread, and node:http answers (or refuses) exactly as it
 * would have. So no error response is ever made here, and request smuggling
 * defences stay llhttp's.
 *
 * Taken: `METHOD /origin-form HTTP/1.1`, token field names followed directly
 * by ':', values of visible ASCII, SP and HTAB, each name once, a Host,
 * no body or a Content-Length body already received whole, Connection
 * keep-alive or close. Handed over: HTTP/1.0, absolute-form, `OPTIONS *`,
 * CONNECT, Transfer-Encoding, Expect, Upgrade, HTTP2-Settings, any other
 * Connection value, obs-fold, bare CR or LF, obs-text and control
 * characters, repeated fields, more fields or bytes than the limits, and a
 * head or body not yet received whole (a slow client is node:http's to time).
 */

import { CONTENT_LENGTH, CRLF_CRLF, FIELD, fieldLine } from "./grammar.js";

/** A request as node:http would present it (headers: lowercase names, one string each). */
export interface FastRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  /** The body, whole; undefined when the request has none. */
  body: Buffer | undefined;
  /** The client asked to close the connection after this exchange. */
  close: boolean;
  /** Bytes of the buffer this request took (head and body). */
  size: number;
}

export interface ParseLimits {
  maxHeaderBytes: number;
  maxHeaderCount: number;
}

const REQUEST_LINE = /^([A-Z]{1,20}) (\/[\x21-\x7e]*) HTTP\/1\.1$/;

/** Fields whose presence sends the request to node:http (framing or protocol changes it handles). */
const HANDED_OVER: ReadonlySet<string> = new Set([
  "transfer-encoding",
  "expect",
  "upgrade",
  "http2-settings",
  "__proto__",
]);

/**
 * The request at the start of `buf`, or undefined when it is not one the fast
 * front takes (see above). Never throws.
 */
export function parseRequest(buf: Buffer, limits: ParseLimits): FastRequest | undefined {
  const end = buf.indexOf(CRLF_CRLF);
  if (end < 0 || end + 4 > limits.maxHeaderBytes) return undefined;
  const head = buf.toString("latin1", 0, end);
  let eol = head.indexOf("\r\n");
  if (eol < 0) eol = head.length;
  const start = REQUEST_LINE.exec(head.slice(0, eol));
  if (start === null || start[1] === "CONNECT") return undefined;
  const headers: Record<string, string> = {};
  let count = 0;
  // Field lines scanned in place (no line strings, no match arrays): this runs for every request.
  for (let from = eol + 2; from <= head.length; from = eol + 2) {
    eol = head.indexOf("\r\n", from);
    if (eol < 0) eol = head.length;
    if (++count > limits.maxHeaderCount || !fieldLine(head, from, eol, false)) return undefined;
    const name = head.slice(from, FIELD.nameEnd).toLowerCase();
    if (headers[name] !== undefined || HANDED_OVER.has(name)) return undefined;
    headers[name] = head.slice(FIELD.valueStart, FIELD.valueEnd);
  }
  if (headers.host === undefined) return undefined;
  let close = false;
  const connection = headers.connection;
  if (connection !== undefined) {
    const c = connection.toLowerCase();
    if (c === "close") close = true;
    else if (c !== "keep-alive") return undefined;
  }
  let size = end + 4;
  let body: Buffer | undefined;
  const cl = headers["content-length"];
  if (cl !== undefined) {
    if (!CONTENT_LENGTH.test(cl)) return undefined;
    const n = Number(cl);
    if (n > 0) {
      if (buf.length < size + n) return undefined;
      body = buf.subarray(size, size + n);
      size += n;
    }
  }
  return { method: start[1] as string, url: start[2] as string, headers, body, close, size };
}
