/**
 * Resource fields in the shapes the snapshot carries, shared by the inbound
 * (intention permissions), cluster and route parts of the builder.
 */
import type {
  HeaderMatch,
  HttpMatch,
  Retries,
  RetriesConfig,
  SnapshotHeaderMatch,
  SnapshotHttpMatch,
} from "@weft/api";

/** Path, methods (upper-cased) and headers of an HTTP match; query parameters are the route builder's. */
export function toHttpMatch(
  m: Pick<HttpMatch, "pathExact" | "pathPrefix" | "pathRegex" | "methods" | "headers">,
): SnapshotHttpMatch {
  const http: SnapshotHttpMatch = {};
  if (m.pathExact !== undefined) http.pathExact = m.pathExact;
  if (m.pathPrefix !== undefined) http.pathPrefix = m.pathPrefix;
  if (m.pathRegex !== undefined) http.pathRegex = m.pathRegex;
  // The schema normalises case already; the snapshot contract promises it, so say it here too.
  if (m.methods !== undefined) http.methods = m.methods.map((x) => x.toUpperCase());
  if (m.headers !== undefined) http.headers = m.headers.map(toHeaderMatch);
  return http;
}

export function toHeaderMatch(h: HeaderMatch): SnapshotHeaderMatch {
  // Member order name, match kind, invert: what a person reading the golden files expects.
  const m: Omit<SnapshotHeaderMatch, "invert"> = { name: h.name.toLowerCase() };
  if (h.exact !== undefined) m.exact = h.exact;
  if (h.prefix !== undefined) m.prefix = h.prefix;
  if (h.suffix !== undefined) m.suffix = h.suffix;
  if (h.regex !== undefined) m.regex = h.regex;
  if (h.present !== undefined) m.present = h.present;
  return { ...m, invert: h.invert ?? false };
}

/** ServiceDefaults.retries as the proxy reads it; a zero per-try timeout means none. */
export function retriesConfig(r: Retries): RetriesConfig {
  // Member order follows the schema, so the golden files read like the resource.
  return {
    numRetries: r.numRetries,
    retryOn: [...r.retryOn],
    ...(r.retryOnStatusCodes !== undefined ? { retryOnStatusCodes: [...r.retryOnStatusCodes] } : {}),
    ...(r.perTryTimeout !== undefined && r.perTryTimeout > 0 ? { perTryTimeoutMs: r.perTryTimeout } : {}),
    backoff: { baseIntervalMs: r.backoff.baseInterval, maxIntervalMs: r.backoff.maxInterval },
    budget: { percent: r.budget.percent, minRetriesPerSecond: r.budget.minRetriesPerSecond },
    retryNonIdempotent: r.retryNonIdempotent,
  };
}
