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

/** tchar (RFC 9110 §5.6.2) by char code, for the field-line scanner. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
  TCHAR[c.charCodeAt(0)] = 1;

/**
 * Where the parts of the last field line `fieldLine` accepted are: one object
 * reused by every call (the parsers run one at a time on the one JavaScript
 * thread), so a header costs no match array and no line string.
 */
export const FIELD = { nameEnd: 0, valueStart: 0, valueEnd: 0 };

/**
 * Checks the field line `head[from, to)` (without its CRLF): a token name,
 * ':', optional whitespace, a value of HTAB / SP / visible ASCII (and
 * obs-text 0x80–0xff when `obsText`), optional whitespace. True with FIELD
 * filled (the value without the whitespace around it), or false.
 * The same grammar as the regular expression
 * `^(token):[ \t]*([\t\x20-\x7e(\x80-\xff)]*?)[ \t]*$`, without allocating.
 */
export function fieldLine(head: string, from: number, to: number, obsText: boolean): boolean {
  let i = from;
  for (; i < to; i++) {
    const c = head.charCodeAt(i);
    if (c >= 128 || TCHAR[c] === 0) break;
  }
  if (i === from || i === to || head.charCodeAt(i) !== 0x3a) return false;
  FIELD.nameEnd = i;
  i++;
  while (i < to && (head.charCodeAt(i) === 0x20 || head.charCodeAt(i) === 0x09)) i++;
  FIELD.valueStart = i;
  let valueEnd = i;
  const max = obsText ? 0xff : 0x7e;
  for (; i < to; i++) {
    const c = head.charCodeAt(i);
    if (c === 0x20 || c === 0x09) continue;
    if (c < 0x21 || c > max || c === 0x7f) return false;
    valueEnd = i + 1;
  }
  FIELD.valueEnd = valueEnd;
  return true;
}
