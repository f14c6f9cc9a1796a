/**
 * The pieces of HTTP/1.1's grammar (RFC 9110 §5, RFC 9112) that the fast
 * front, the fast client and the relay check, defined once.
 */

/** A field name, method or other token. */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A character node:http refuses in a field value (its checkInvalidHeaderChar): controls but HTAB, DEL. */
export const INVALID_VALUE_CHAR = /[^\t\x20-\x7e\x80-\xff]/;
/** A Content-Length we take: decimal digits, at most 15 (a safe integer). */
export const CONTENT_LENGTH = /^[0-9]{1,15}$/;
export const CRLF = Buffer.from("\r\n");
export const CRLF_CRLF = Buffer.from("\r\n\r\n");
