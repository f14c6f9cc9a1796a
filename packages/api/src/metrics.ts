/**
 * Golden metrics on the wire (zod-free: the sidecar loads this through
 * `@weft/api/client`; the control plane validates report bodies with its
 * own schema in controlplane/src/metrics/report-schema.ts).
 *
 * Data flow: each sidecar counts requests per edge (direction, source
 * service, destination service) and every ~2 s POSTs the deltas since its
 * last accepted push (`POST /v1/proxy/stats/:instanceId`, a
 * `ProxyStatsReport`). The control plane adds them to a sliding window and
 * answers `GET /v1/metrics/services`, `/v1/metrics/services/:name` and
 * `/v1/metrics/edges` with rates, success rates and latency percentiles
 * over that window.
 */

/**
 * Upper bounds (milliseconds, inclusive) of the latency histogram every
 * sidecar reports; one more count follows for "above the last bound". Fixed
 * so reports from any proxy version add up bucket by bucket. The same
 * bounds as the sidecar's Prometheus histogram (in seconds there).
 */
export const GOLDEN_BUCKETS_MS: readonly number[] = Object.freeze([
  0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000,
]);

/** Number of counts in a report's `buckets`: one per bound plus the overflow. */
export const GOLDEN_BUCKET_COUNT = GOLDEN_BUCKETS_MS.length + 1;

/** Bounds of one report, enforced by the control plane (and respected by the reporter). */
export const STATS_REPORT_LIMITS = Object.freeze({
  /** Edges in one report; a sidecar sees few peers, so this is generous. */
  maxEdges: 512,
  /** Any one count in one report. */
  maxCount: 1_000_000_000,
});

export type EdgeDirection = "inbound" | "outbound";

/**
 * Requests on one edge since the reporter's previous accepted push.
 * `inbound`: seen by the destination's sidecar (source = the verified peer);
 * `outbound`: seen by the source's sidecar, including requests that never
 * reached the destination (connect failures, no healthy endpoint).
 */
export interface EdgeStatsDelta {
  direction: EdgeDirection;
  source: string;
  destination: string;
  requests: number;
  /** Requests answered below 500 without a proxy failure flag. */
  success: number;
  /** GOLDEN_BUCKET_COUNT latency counts; they sum to `requests`. */
  buckets: number[];
}

export interface ProxyStatsReport {
  /** Random per reporter run: `seq` restarts with it. */
  session: string;
  /** Increases by one per report; a resent report keeps its number, so a repeat is not counted twice. */
  seq: number;
  edges: EdgeStatsDelta[];
}

export interface ProxyStatsAck {
  /** False when the report was a repeat of one already counted. */
  accepted: boolean;
  edges: number;
}

export interface LatencyPercentiles {
  /** Milliseconds; null without requests in the window. */
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface GoldenStats {
  /** Requests in the window. */
  requests: number;
  success: number;
  /** success / requests; null without requests. */
  successRate: number | null;
  /** Requests per second over the window. */
  rps: number;
  /**
   * Percentiles of the requests a sidecar timed: requests reported only by
   * proxyless clients (`proxylessRequests`) have no latency, so an edge or
   * service seen only by them has null percentiles.
   */
  latencyMs: LatencyPercentiles;
  /**
   * Requests (of `requests`) that proxyless gRPC clients reported through
   * the xDS Load Reporting Service: counted in rate and success rate, not in
   * latency. Absent when none.
   */
  proxylessRequests?: number;
}

export interface ServiceGolden extends GoldenStats {
  service: string;
}

export interface EdgeGolden extends GoldenStats {
  source: string;
  destination: string;
}

export interface MetricsWindowInfo {
  /** Length of the window the figures cover (shorter right after the control plane starts). */
  seconds: number;
  /** Width of one slot: how coarse the window's edge is. */
  slotSeconds: number;
  /** ISO time of the answer. */
  at: string;
}

/**
 * GET /v1/metrics/services: every service in the catalog or with traffic in
 * the window (inbound view; for a service no sidecar reports for, its
 * proxyless callers' load reports, marked `proxylessRequests`).
 */
export interface ServicesMetricsResponse {
  window: MetricsWindowInfo;
  services: ServiceGolden[];
}

/** GET /v1/metrics/services/:name: the service (inbound view) and the edges it is part of. */
export interface ServiceMetricsResponse {
  window: MetricsWindowInfo;
  service: ServiceGolden;
  /** Edges into the service, as its callers' sidecars saw them. */
  inbound: EdgeGolden[];
  /** Edges out of the service, as its own sidecars saw them. */
  outbound: EdgeGolden[];
}

/** GET /v1/metrics/edges: every edge with traffic in the window (outbound view: the caller's sidecar). */
export interface EdgesMetricsResponse {
  window: MetricsWindowInfo;
  edges: EdgeGolden[];
}

/** Index into GOLDEN_BUCKETS_MS (or the overflow) for a latency. */
export function bucketIndex(ms: number): number {
  const b = GOLDEN_BUCKETS_MS;
  // 16 bounds: a linear scan beats a binary search at this size.
  for (let i = 0; i < b.length; i++) if (ms <= (b[i] as number)) return i;
  return b.length;
}

/**
 * The q-quantile (0..1) of a latency histogram, in milliseconds, by linear
 * interpolation inside the bucket that holds the rank (as Prometheus's
 * histogram_quantile does): the result is exact to within the width of that
 * bucket, no better. The first bucket interpolates from 0; a rank in the
 * overflow bucket answers the last bound (the histogram knows nothing above
 * it). Null for an empty histogram.
 */
export function quantileFromBuckets(counts: ArrayLike<number>, q: number): number | null {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i] as number;
  if (total <= 0) return null;
  const rank = Math.min(1, Math.max(0, q)) * total;
  const bounds = GOLDEN_BUCKETS_MS;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] as number;
    if (c > 0 && seen + c >= rank) {
      if (i >= bounds.length) return bounds[bounds.length - 1] as number;
      const lower = i === 0 ? 0 : (bounds[i - 1] as number);
      const upper = bounds[i] as number;
      return lower + ((upper - lower) * (rank - seen)) / c;
    }
    seen += c;
  }
  return bounds[bounds.length - 1] as number;
}

/** One request as `weft tap` shows it (the sidecar admin's `/tap` NDJSON lines). */
export interface TapRecord {
  /** ISO time the request completed. */
  time: string;
  direction: EdgeDirection;
  source: string;
  destination: string;
  /** Absent while the sidecar's request events do not carry it. */
  method?: string;
  /** Path without the query string; absent while the events do not carry it. */
  path?: string;
  status: number;
  latencyMs: number;
  /** Envoy-style response flags, "-" when none. */
  flags: string;
  /** The upstream instance that answered (outbound only). */
  endpoint?: string;
}

/** A `/tap` line that is not a request: how many records the stream dropped for a slow reader. */
export interface TapDropNotice {
  dropped: number;
}
