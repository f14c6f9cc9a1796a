import type { OutgoingHttpHeaders } from "node:http";
import type { HeaderMap, IncomingHeaders } from "./types.js";

/**
 * Header hygiene and HTTP/1.1 ↔ HTTP/2 translation. Every message crossing
 * the proxy passes through one of these functions, so the rules live in one
 * place: connection-specific fields never cross a hop (RFC 9110 §7.6.1,
 * RFC 9113 §8.2.2), fields the mesh owns (`x-weft-*`,
 * `x-forwarded-client-cert`) are never taken from a client, and anything
 * ambiguous is refused rather than guessed at.
 */

/** Connection-specific fields: meaningful only on one hop. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "http2-settings",
]);

/** Fields that must not appear in trailers (RFC 9110 §6.5.1): framing, routing, auth, content metadata. */
const NOT_IN_TRAILERS: ReadonlySet<string> = new Set([
  "content-length",
  "content-type",
  "content-encoding",
  "content-range",
  "host",
  "trailer",
  "authorization",
  "proxy-authorization",
  "cookie",
  "set-cookie",
]);

export const XFCC = "x-forwarded-client-cert";
/**
 * A peer proxy's "refused, not processed: try elsewhere" on an HTTP/1.1 503
 * (HTTP/2 says it with REFUSED_STREAM). Internal: an app cannot set it.
 */
export const REFUSED_HEADER = "x-weft-refused";
const INTERNAL_PREFIX = "x-weft-";

/** Fields only the mesh may set: stripped from whatever a client or app sends. */
export function isInternalHeader(name: string): boolean {
  return name.startsWith(INTERNAL_PREFIX) || name === XFCC;
}

/** One string for a possibly repeated field (", "-joined, as RFC 9110 §5.3 allows except for set-cookie). */
export function joinHeader(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  return typeof value === "string" ? value : value.join(", ");
}

function tokens(value: string | string[] | undefined): string[] {
  const joined = joinHeader(value);
  if (joined === undefined) return [];
  return joined
    .split(",")
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== "");
}

export interface CleanOptions {
  /** Drop `x-weft-*` and `x-forwarded-client-cert` (anything arriving from outside the mesh's control). */
  stripInternal: boolean;
  /** Names the caller sets itself (e.g. host, expect): dropped here. */
  drop?: ReadonlySet<string>;
}

/**
 * The end-to-end fields of a message: no pseudo-headers, no hop-by-hop
 * fields, none named in `Connection`. `te` survives only as "trailers"
 * (the one value HTTP/2 allows, which gRPC needs).
 */
export function endToEnd(headers: IncomingHeaders, opts: CleanOptions): HeaderMap {
  // Per request, on the hot path: no Set unless a Connection field nominates something, no entry arrays.
  const connection = headers.connection;
  const nominated = connection === undefined ? undefined : tokens(connection);
  const out: HeaderMap = {};
  for (const rawName in headers) {
    const value = headers[rawName];
    if (value === undefined) continue;
    const name = rawName.toLowerCase();
    if (name.charCodeAt(0) === 0x3a /* ":" */) continue;
    if (name === "te") {
      if (tokens(value).some((t) => t === "trailers" || t.startsWith("trailers;"))) out.te = "trailers";
      continue;
    }
    if (HOP_BY_HOP.has(name) || nominated?.includes(name)) continue;
    if (opts.stripInternal && isInternalHeader(name)) continue;
    if (opts.drop?.has(name)) continue;
    out[name] = Array.isArray(value) ? [...value] : value;
  }
  return out;
}

/** Trailers that may be relayed: end-to-end, not framing or routing fields, not the mesh's own. */
export function cleanTrailers(trailers: IncomingHeaders | undefined): HeaderMap | undefined {
  if (trailers === undefined) return undefined;
  const out = endToEnd(trailers, { stripInternal: true, drop: NOT_IN_TRAILERS });
  return Object.keys(out).length === 0 ? undefined : out;
}

/** A request as it travels between the proxies: HTTP/2 semantics, no hop-by-hop fields. */
export interface RequestHead {
  method: string;
  /** `:path`: origin-form target (or "*" for OPTIONS). */
  path: string;
  /** `:authority`, from Host or the absolute-form target. */
  authority: string | undefined;
  headers: HeaderMap;
}

export type HeadResult = { ok: true; head: RequestHead } | { ok: false; status: number; reason: string };

// RFC 3986 authority: reg-name or IP-literal, optional port. No userinfo: it has no business in Host.
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]{0,5})?$/;
// Origin-form: visible ASCII only (the parsers already refuse controls and spaces; this is the second opinion).
const ORIGIN_FORM = /^\/[\x21-\x7e]*$/;
const ABSOLUTE_FORM = /^http:\/\/([^/?#]*)([^#]*)$/i;

export function validAuthority(value: string): boolean {
  return value.length <= 255 && AUTHORITY.test(value);
}

export function validOriginTarget(target: string): boolean {
  return ORIGIN_FORM.test(target);
}

/**
 * Splits an HTTP/1.1 request-target into `:path` and, for absolute-form,
 * the authority (which then overrides Host, RFC 9112 §3.2.2).
 */
function parseTarget(
  method: string,
  url: string,
): { path: string; authority?: string } | { error: string; status: number } {
  if (url === "*") {
    return method === "OPTIONS" ? { path: "*" } : { error: "asterisk-form is only for OPTIONS", status: 400 };
  }
  if (url.startsWith("/")) {
    return validOriginTarget(url) ? { path: url } : { error: "invalid request-target", status: 400 };
  }
  const abs = ABSOLUTE_FORM.exec(url);
  if (abs) {
    const authority = abs[1] ?? "";
    let path = abs[2] ?? "";
    if (path === "" || path.startsWith("?")) path = `/${path}`;
    if (!validAuthority(authority) || !validOriginTarget(path)) {
      return { error: "invalid absolute-form request-target", status: 400 };
    }
    return { path, authority };
  }
  return { error: "unsupported request-target form", status: 400 };
}

function countRaw(rawHeaders: readonly string[], name: string): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === name) n++;
  }
  return n;
}

/** Fields an HTTP/1.1 request carries that the outbound side answers for itself. */
const H1_REQUEST_DROP: ReadonlySet<string> = new Set([
  "host",
  // node:http already sent "100 Continue" to the app; the peer must not wait for the body a second time.
  "expect",
]);

/**
 * An HTTP/1.1 request (as node:http's strict parser accepted it) in HTTP/2
 * form. What the parser lets through but is still ambiguous is refused: two
 * Host fields (which one routes?), a transfer-coding other than plain
 * `chunked` (the body's meaning would change on the way).
 */
export function h1RequestHead(
  req: {
    method?: string | undefined;
    url?: string | undefined;
    headers: IncomingHeaders;
    /** Absent: every field appeared once (the fast front hands repeated fields to node:http). */
    rawHeaders?: string[];
  },
  opts: { stripInternal: boolean },
): HeadResult {
  const method = req.method ?? "GET";
  if (method === "CONNECT") return { ok: false, status: 405, reason: "CONNECT is not supported" };
  if (req.rawHeaders !== undefined && countRaw(req.rawHeaders, "host") > 1)
    return { ok: false, status: 400, reason: "more than one Host" };
  const te = joinHeader(req.headers["transfer-encoding"]);
  if (te !== undefined && te.trim().toLowerCase() !== "chunked") {
    return { ok: false, status: 501, reason: "unsupported transfer-coding" };
  }
  const target = parseTarget(method, req.url ?? "");
  if ("error" in target) return { ok: false, status: target.status, reason: target.error };
  const host = joinHeader(req.headers.host);
  const authority = target.authority ?? host;
  if (authority !== undefined && !validAuthority(authority)) {
    return { ok: false, status: 400, reason: "invalid Host" };
  }
  const headers = endToEnd(req.headers, { stripInternal: opts.stripInternal, drop: H1_REQUEST_DROP });
  return { ok: true, head: { method, path: target.path, authority, headers } };
}

/** `host` is folded into the authority. */
const H2_REQUEST_DROP: ReadonlySet<string> = new Set(["host"]);

/**
 * An HTTP/2 request (as nghttp2 accepted it). `:authority` wins over `host`
 * (RFC 9113 §8.3.1). CONNECT, extended CONNECT (`:protocol`) and a missing
 * `:path` are refused.
 */
export function h2RequestHead(headers: IncomingHeaders, opts: { stripInternal: boolean }): HeadResult {
  const method = joinHeader(headers[":method"]) ?? "";
  if (method === "CONNECT" || headers[":protocol"] !== undefined) {
    return { ok: false, status: 405, reason: "CONNECT is not supported" };
  }
  const path = joinHeader(headers[":path"]);
  if (path === undefined || method === "")
    return { ok: false, status: 400, reason: "missing :path or :method" };
  if (!(path === "*" ? method === "OPTIONS" : validOriginTarget(path))) {
    return { ok: false, status: 400, reason: "invalid :path" };
  }
  const authority = joinHeader(headers[":authority"]) ?? joinHeader(headers.host);
  if (authority !== undefined && !validAuthority(authority)) {
    return { ok: false, status: 400, reason: "invalid :authority" };
  }
  const clean = endToEnd(headers, { stripInternal: opts.stripInternal, drop: H2_REQUEST_DROP });
  return { ok: true, head: { method, path, authority, headers: clean } };
}

/** The HTTP/2 request headers for a head (`:scheme` is "http": the app spoke plain HTTP). */
export function toH2RequestHeaders(head: RequestHead, fallbackAuthority: string): OutgoingHttpHeaders {
  return {
    ":method": head.method,
    ":path": head.path,
    ":scheme": "http",
    ":authority": head.authority ?? fallbackAuthority,
    ...head.headers,
  };
}

/** Response fields to relay: no pseudo-headers, nothing connection-specific. */
export function responseHeaders(headers: IncomingHeaders, opts: { stripInternal: boolean }): HeaderMap {
  return endToEnd(headers, opts);
}

/** Fields node:http keeps the first of when repeated (IncomingMessage.headers); the rest are joined. */
const FIRST_WINS: ReadonlySet<string> = new Set([
  "age",
  "authorization",
  "content-length",
  "content-type",
  "etag",
  "expires",
  "from",
  "host",
  "if-modified-since",
  "if-unmodified-since",
  "last-modified",
  "location",
  "max-forwards",
  "proxy-authorization",
  "referer",
  "retry-after",
  "server",
  "user-agent",
]);

/**
 * `responseHeaders` from a raw name/value list (the fast client's, read as
 * latin1 like node:http does), in one pass with no intermediate map. Repeats
 * follow node:http's IncomingMessage.headers, so both HTTP/1.1 clients give
 * the same result: set-cookie a list, cookie joined with "; ", FIRST_WINS
 * fields keep the first value, the rest joined with ", ".
 */
export function rawResponseHeaders(raw: readonly string[], opts: { stripInternal: boolean }): HeaderMap {
  const out: HeaderMap = {};
  let nominated: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    const value = raw[i + 1] as string;
    if (name === "connection") {
      nominated = nominated === undefined ? value : `${nominated}, ${value}`;
      continue;
    }
    if (name === "te") {
      if (tokens(value).some((t) => t === "trailers" || t.startsWith("trailers;"))) out.te = "trailers";
      continue;
    }
    if (HOP_BY_HOP.has(name) || (opts.stripInternal && isInternalHeader(name))) continue;
    const prev = out[name];
    if (prev === undefined) out[name] = name === "set-cookie" ? [value] : value;
    else if (typeof prev !== "string") prev.push(value);
    else if (!FIRST_WINS.has(name)) out[name] = `${prev}${name === "cookie" ? "; " : ", "}${value}`;
  }
  // Apps say "Connection: keep-alive" on nearly every response: it nominates no field.
  if (nominated !== undefined && nominated !== "keep-alive" && nominated !== "close") {
    for (const t of tokens(nominated)) delete out[t];
  }
  return out;
}

/** The header value as a single string, for authorization and hashing. */
export function headerGetter(headers: IncomingHeaders): (name: string) => string | undefined {
  return (name) => joinHeader(headers[name.toLowerCase()]);
}

/** gRPC requests are recognised by content type (application/grpc, application/grpc+proto, …). */
export function isGrpcContentType(value: string | string[] | undefined): boolean {
  const ct = joinHeader(value)?.toLowerCase();
  return (
    ct !== undefined &&
    (ct === "application/grpc" || ct.startsWith("application/grpc+") || ct.startsWith("application/grpc;"))
  );
}

/** Flattens a HeaderMap for node:http's rawHeaders-style APIs. */
export function toRawPairs(headers: HeaderMap): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, value);
  }
  return out;
}

/** HTTP statuses that never carry a body (RFC 9110 §6.4.1). */
export function bodilessStatus(status: number, method: string): boolean {
  return method === "HEAD" || status === 204 || status === 304 || (status >= 100 && status < 200);
}
