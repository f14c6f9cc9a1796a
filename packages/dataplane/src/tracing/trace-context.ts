/**
 * Trace context propagation: W3C Trace Context (`traceparent`, `tracestate`)
 * and Zipkin B3 (the single `b3` header and the multi `x-b3-*` headers).
 * Pure functions over a header map, no SDK: the sidecar reads the context
 * a request came with, makes its own span a child of it, and writes the
 * child's context back in the same formats.
 *
 * Untrusted input: a header that does not parse is ignored (the request
 * starts a new trace), never an error and never a partial context. W3C wins
 * over B3 when both are present and valid (the W3C spec's advice to
 * multi-format proxies).
 */

import type { HeaderMap, IncomingHeaders } from "../http/types.js";

export const TRACEPARENT = "traceparent";
export const TRACESTATE = "tracestate";
export const B3 = "b3";
export const B3_TRACE_ID = "x-b3-traceid";
export const B3_SPAN_ID = "x-b3-spanid";
export const B3_PARENT_SPAN_ID = "x-b3-parentspanid";
export const B3_SAMPLED = "x-b3-sampled";
export const B3_FLAGS = "x-b3-flags";

/** One span's identity as it travels: ids in lowercase hex (trace 32, span 16), never all zeros. */
export interface TraceContext {
  traceId: string;
  spanId: string;
  sampled: boolean;
  /** The W3C `tracestate` received with it, passed on unchanged. */
  traceState?: string;
}

/** Which B3 form a request carried: the sidecar answers in the same one. */
export type B3Form = "single" | "multi";

export interface Extracted {
  /** The caller's span, when a usable context came with the request. */
  parent?: TraceContext;
  /** A sampling decision without a context (B3 `b3: 0`, `x-b3-sampled: 1` alone): honoured for the new trace. */
  sampled?: boolean;
  /** The B3 form the request used, if any (even when W3C was the one read). */
  b3?: B3Form;
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ZERO32 = "0".repeat(32);
const ZERO16 = "0".repeat(16);
/** W3C: at most 32 list members of at most 256 chars; a longer field is dropped rather than cut. */
const MAX_TRACESTATE = 32 * 257;
// Printable ASCII only (no control characters that could split a log line or a header).
const TRACESTATE_CHARS = /^[\x20-\x7e]*$/;

/** One value of a field, or undefined when absent or repeated (a repeated traceparent is ambiguous). */
function single(headers: IncomingHeaders | HeaderMap, name: string): string | undefined {
  const v = headers[name];
  return typeof v === "string" ? v : undefined;
}

/**
 * `version-traceid-parentid-flags`. Version 00 has exactly these four
 * fields; a later version may append fields after a "-" (parsed as 00, as
 * the spec asks); version ff is invalid.
 */
export function parseTraceparent(value: string | undefined): TraceContext | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (v.length < 55) return undefined;
  const version = v.slice(0, 2);
  if (!/^[0-9a-f]{2}$/.test(version) || version === "ff") return undefined;
  if (version === "00" ? v.length !== 55 : v.length > 55 && v[55] !== "-") return undefined;
  if (v[2] !== "-" || v[35] !== "-" || v[52] !== "-") return undefined;
  const traceId = v.slice(3, 35);
  const spanId = v.slice(36, 52);
  const flags = v.slice(53, 55);
  if (!HEX32.test(traceId) || traceId === ZERO32) return undefined;
  if (!HEX16.test(spanId) || spanId === ZERO16) return undefined;
  if (!/^[0-9a-f]{2}$/.test(flags)) return undefined;
  return { traceId, spanId, sampled: (Number.parseInt(flags, 16) & 1) === 1 };
}

export function formatTraceparent(ctx: TraceContext): string {
  return `00-${ctx.traceId}-${ctx.spanId}-${ctx.sampled ? "01" : "00"}`;
}

/** A repeated tracestate is one list (RFC 9110 §5.3); kept only when printable and not oversized. */
function traceState(headers: IncomingHeaders | HeaderMap): string | undefined {
  const v = headers[TRACESTATE];
  const joined = typeof v === "string" ? v : Array.isArray(v) ? v.join(",") : undefined;
  if (joined === undefined) return undefined;
  const t = joined.trim();
  if (t === "" || t.length > MAX_TRACESTATE || !TRACESTATE_CHARS.test(t)) return undefined;
  return t;
}

/** A B3 trace id: 16 or 32 hex (64-bit ids are left-padded to 128 bits), not all zeros. */
function b3TraceId(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const id = v.length === 16 ? `${ZERO16}${v}` : v;
  return HEX32.test(id) && id !== ZERO32 ? id : undefined;
}

function b3SpanId(v: string | undefined): string | undefined {
  return v !== undefined && HEX16.test(v) && v !== ZERO16 ? v : undefined;
}

/** "1"/"d" (debug) sample, "0" does not; anything else is no decision. */
function b3Sampling(v: string | undefined): boolean | undefined {
  if (v === "1" || v === "d" || v === "true") return true;
  if (v === "0" || v === "false") return false;
  return undefined;
}

/** `b3: {traceid}-{spanid}[-{sampling}[-{parentspanid}]]`, or a bare sampling decision. */
export function parseB3Single(value: string | undefined): { ctx?: TraceContext; sampled?: boolean } {
  if (value === undefined) return {};
  const parts = value.trim().split("-");
  if (parts.length === 1) {
    const s = b3Sampling(parts[0]);
    return s === undefined ? {} : { sampled: s };
  }
  if (parts.length > 4) return {};
  const traceId = b3TraceId(parts[0]);
  const spanId = b3SpanId(parts[1]);
  if (traceId === undefined || spanId === undefined) return {};
  let sampled: boolean | undefined;
  if (parts.length >= 3) {
    sampled = b3Sampling(parts[2]);
    if (sampled === undefined) return {};
  }
  if (parts.length === 4 && b3SpanId(parts[3]) === undefined) return {};
  // No decision with the ids: the caller defers it; we take it as sampled (B3's "accept" default for a propagated trace).
  return { ctx: { traceId, spanId, sampled: sampled ?? true } };
}

function parseB3Multi(headers: IncomingHeaders | HeaderMap): { ctx?: TraceContext; sampled?: boolean } {
  const debug = single(headers, B3_FLAGS) === "1";
  const sampled = debug ? true : b3Sampling(single(headers, B3_SAMPLED));
  const rawTrace = single(headers, B3_TRACE_ID);
  const rawSpan = single(headers, B3_SPAN_ID);
  if (rawTrace === undefined && rawSpan === undefined) return sampled === undefined ? {} : { sampled };
  const traceId = b3TraceId(rawTrace);
  const spanId = b3SpanId(rawSpan);
  if (traceId === undefined || spanId === undefined) return {};
  return { ctx: { traceId, spanId, sampled: sampled ?? true } };
}

/** Which B3 form the request used, judged by the presence of its fields. */
function b3FormOf(headers: IncomingHeaders | HeaderMap): B3Form | undefined {
  if (headers[B3] !== undefined) return "single";
  if (
    headers[B3_TRACE_ID] !== undefined ||
    headers[B3_SPAN_ID] !== undefined ||
    headers[B3_SAMPLED] !== undefined ||
    headers[B3_FLAGS] !== undefined
  ) {
    return "multi";
  }
  return undefined;
}

/** The context a request came with: W3C first, then B3 single, then B3 multi. */
export function extract(headers: IncomingHeaders | HeaderMap): Extracted {
  const b3 = b3FormOf(headers);
  const out: Extracted = b3 === undefined ? {} : { b3 };
  const w3c = parseTraceparent(single(headers, TRACEPARENT));
  if (w3c !== undefined) {
    const state = traceState(headers);
    out.parent = state === undefined ? w3c : { ...w3c, traceState: state };
    return out;
  }
  if (b3 === undefined) return out;
  const parsed = b3 === "single" ? parseB3Single(single(headers, B3)) : parseB3Multi(headers);
  if (parsed.ctx !== undefined) out.parent = parsed.ctx;
  else if (parsed.sampled !== undefined) out.sampled = parsed.sampled;
  return out;
}

/**
 * Writes `ctx` (the sidecar's span) into `headers` in place: `traceparent`
 * always, `tracestate` as received (removed when the context carries none),
 * and B3 in the form the request used, with `parentSpanId` the caller's span.
 */
export function inject(
  headers: HeaderMap,
  ctx: TraceContext,
  b3: B3Form | undefined,
  parentSpanId: string | undefined,
): void {
  headers[TRACEPARENT] = formatTraceparent(ctx);
  if (ctx.traceState !== undefined) headers[TRACESTATE] = ctx.traceState;
  else delete headers[TRACESTATE];
  if (b3 === "single") {
    headers[B3] =
      `${ctx.traceId}-${ctx.spanId}-${ctx.sampled ? "1" : "0"}` +
      (parentSpanId !== undefined ? `-${parentSpanId}` : "");
  } else if (b3 === "multi") {
    headers[B3_TRACE_ID] = ctx.traceId;
    headers[B3_SPAN_ID] = ctx.spanId;
    headers[B3_SAMPLED] = ctx.sampled ? "1" : "0";
    if (parentSpanId !== undefined) headers[B3_PARENT_SPAN_ID] = parentSpanId;
    else delete headers[B3_PARENT_SPAN_ID];
    // The decision is now explicit in x-b3-sampled; a debug flag would contradict a "0".
    delete headers[B3_FLAGS];
  }
}
