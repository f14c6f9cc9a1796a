/**
 * The one canonical form of an HTTP request path: the form the inbound
 * authorizer matches AND the form forwarded to the application, so the two
 * can never disagree about which resource was asked for (HARDENING.md,
 * "Authorization bypass by normalization").
 *
 * Input is the raw request-target of an origin-form request (`/a/b?q`).
 * Refused, with a reason for the 400:
 * - not starting with "/" (absolute-form `http://h/x`, authority-form
 *   `h:443`, asterisk-form `*`: the caller handles CONNECT and OPTIONS *);
 * - longer than MAX_TARGET_LENGTH;
 * - control characters, space, DEL or non-ASCII anywhere (RFC 3986 allows none
 *   of them raw; a client must percent-encode);
 * - in the path: an encoded control character (`%00`..`%1F`, `%7F`), an
 *   encoded slash `%2F` or backslash `%5C` (Envoy's "reject" action for
 *   escaped slashes: servers disagree on whether they separate segments),
 *   a raw backslash (some servers treat it as "/"), invalid percent-encoding;
 * - dot-segments that climb above the root (`/..`, `/a/../..`), and dot
 *   segments carrying parameters (`/..;x/admin`: Tomcat and friends strip
 *   the parameter and then resolve the `..`, a classic bypass).
 *
 * Transformed:
 * - the query is split off at the first "?" and returned verbatim, with its
 *   "?" (so the forwarded target is `path + query`); a "#fragment" is dropped;
 * - percent-escapes of unreserved characters (ALPHA DIGIT - . _ ~) are
 *   decoded, the remaining escapes are normalised to uppercase hex; `%25`
 *   stays `%25`, so nothing is ever decoded twice;
 * - repeated slashes are merged;
 * - "." and ".." segments are resolved (RFC 3986 remove_dot_segments),
 *   including percent-encoded ones (`%2e%2E`), since those are decoded first.
 *
 * Left alone, on purpose:
 * - case: paths are case-sensitive (RFC 3986); `/ADMIN` is not `/admin`. An
 *   application that folds case must be protected with a pathRegex that does
 *   too (`/[aA][dD][mM][iI][nN]`).
 * - matrix parameters (`/admin;x`): they stay part of the path, so they do not
 *   match pathExact `/admin` but do match pathPrefix `/admin`. A deny rule
 *   should therefore use a prefix without a trailing slash (`/admin`, not
 *   `/admin/`), since `/admin;x/secret` reaches `/admin/secret` on servers
 *   that strip parameters.
 * - other reserved or unsafe ASCII characters (`| { } " < >`): forwarded as
 *   sent; they cannot change how segments split.
 *
 * Never throws; the result is idempotent: canonicalPath(p).path === p for a
 * canonical p. The common case (nothing to decode, no dots, no double slash)
 * returns a slice of the input without further work.
 */

/** Longest request-target accepted (Envoy's default max request header size is 60 KiB; paths past 8 KiB are abuse). */
export const MAX_TARGET_LENGTH = 8 * 1024;

export type CanonicalPath = { ok: true; path: string; query: string } | { ok: false; reason: string };

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const BACKSLASH = 0x5c;
const QUESTION = 0x3f;
const HASH = 0x23;

/** Hex digit value, or -1. */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/** RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(b: number): boolean {
  return (
    (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x61 && b <= 0x7a) ||
    (b >= 0x30 && b <= 0x39) ||
    b === 0x2d ||
    b === DOT ||
    b === 0x5f ||
    b === 0x7e
  );
}

const HEX = "0123456789ABCDEF";

function refuse(reason: string): CanonicalPath {
  return { ok: false, reason };
}

export function canonicalPath(rawTarget: string): CanonicalPath {
  const n = rawTarget.length;
  if (n > MAX_TARGET_LENGTH) return refuse(`request-target longer than ${MAX_TARGET_LENGTH} bytes`);
  if (n === 0) return refuse("empty request-target");
  if (rawTarget.charCodeAt(0) !== SLASH) {
    if (rawTarget === "*") return refuse("asterisk-form request-target is not a path");
    return /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(rawTarget)
      ? refuse("absolute-form request-target; expected a path starting with /")
      : refuse('request-target must start with "/"');
  }

  // One pass: find the end of the path, refuse bad bytes, and note whether
  // the path needs the slow path (escapes, dot segments, repeated slashes).
  let pathEnd = n;
  let queryEnd = n;
  let needsWork = false;
  for (let i = 0; i < n; i++) {
    const c = rawTarget.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) {
      return refuse(
        c === 0
          ? "NUL in request-target"
          : c >= 0x80
            ? "non-ASCII character in request-target"
            : "control character or space in request-target",
      );
    }
    if (i >= pathEnd) {
      // In the query or fragment: only the byte checks above apply.
      if (c === HASH && queryEnd === n) queryEnd = i;
      continue;
    }
    if (c === QUESTION || c === HASH) {
      pathEnd = i;
      if (c === HASH) queryEnd = i;
      continue;
    }
    if (c === BACKSLASH) return refuse("backslash in path");
    if (c === PERCENT) needsWork = true;
    else if (c === SLASH) {
      const next = i + 1 < n ? rawTarget.charCodeAt(i + 1) : -1;
      if (next === SLASH || next === DOT) needsWork = true;
    }
  }
  const query =
    pathEnd < n && rawTarget.charCodeAt(pathEnd) === QUESTION ? rawTarget.slice(pathEnd, queryEnd) : "";
  if (!needsWork) return { ok: true, path: rawTarget.slice(0, pathEnd), query };

  const decoded = decodePath(rawTarget, pathEnd);
  if (typeof decoded !== "string") return decoded;
  const path = removeDotSegments(decoded);
  if (path === undefined) return refuse("dot-segments climb above the root");
  if (path === null) return refuse("dot-segment with parameters");
  return { ok: true, path, query };
}

/** Decodes unreserved escapes and uppercases the others; a refusal on anything unsafe. */
function decodePath(raw: string, end: number): string | CanonicalPath {
  let out = "";
  let from = 0;
  for (let i = 0; i < end; i++) {
    if (raw.charCodeAt(i) !== PERCENT) continue;
    const hi = i + 2 < end ? hexValue(raw.charCodeAt(i + 1)) : -1;
    const lo = hi >= 0 ? hexValue(raw.charCodeAt(i + 2)) : -1;
    if (lo < 0) return refuse("invalid percent-encoding in path");
    const b = hi * 16 + lo;
    if (b < 0x20 || b === 0x7f)
      return refuse(b === 0 ? "encoded NUL in path" : "encoded control character in path");
    if (b === SLASH) return refuse("encoded slash (%2F) in path");
    if (b === BACKSLASH) return refuse("encoded backslash (%5C) in path");
    out += raw.slice(from, i);
    out += isUnreserved(b) ? String.fromCharCode(b) : `%${HEX[hi]}${HEX[lo]}`;
    from = i + 3;
    i += 2;
  }
  return out + raw.slice(from, end);
}

/**
 * Merges repeated slashes and resolves "." and ".." segments. `undefined`
 * when ".." would climb above the root, `null` for a dot segment with
 * parameters (`..;x`, `.;x`).
 */
function removeDotSegments(path: string): string | undefined | null {
  // path starts with "/", so segments[0] is "".
  const segments = path.split("/");
  const out: string[] = [];
  let trailingSlash = false;
  const last = segments.length - 1;
  for (let i = 1; i <= last; i++) {
    const seg = segments[i] as string;
    const isLast = i === last;
    if (seg === "" || seg === ".") {
      // An empty segment is a repeated (or trailing) slash; "." names the directory.
      if (isLast) trailingSlash = true;
      continue;
    }
    if (seg === "..") {
      if (out.pop() === undefined) return undefined;
      if (isLast) trailingSlash = true;
      continue;
    }
    if (seg.charCodeAt(0) === DOT) {
      const semi = seg.indexOf(";");
      if (semi === 1 || (semi === 2 && seg.charCodeAt(1) === DOT)) return null;
    }
    out.push(seg);
    if (isLast) trailingSlash = false;
  }
  if (out.length === 0) return "/";
  return "/" + out.join("/") + (trailingSlash ? "/" : "");
}
