/**
 * A proxyless gRPC client's load report (Envoy LRS `LoadStatsRequest`, as
 * proto-loader decodes it: snake_case, uint64 as strings) -> golden-window
 * deltas: one outbound edge per destination service, from the reporting
 * node's service.
 *
 * Per cluster: the destination is the service part of the cluster's name
 * (`<service>[.<subset>][@<dc>][~<region>[/<zone>]]`, snapshot/cluster-refs.ts,
 * the names translate.ts gives Clusters), so subsets, datacenters and
 * localities of one service add up to one edge, as a sidecar's outbound
 * counts do. Completed requests are `total_successful_requests +
 * total_error_requests` over its localities (grpc-js-xds counts a call
 * failed when its status is not OK) plus `total_dropped_requests` (calls the
 * client's balancer dropped: failures the caller saw, as a sidecar counts
 * a request that never reached its destination). `total_issued_requests`
 * counts starts, whose ends come in this or a later report: not used.
 * Each report holds the counts since the client's previous one.
 *
 * Hand-checked (the decoder has typed the fields, not bounded them):
 * bounded lists and counts, a cluster name that names a service. Returns a
 * discriminated union; the caller turns `error` into INVALID_ARGUMENT.
 */
import { type EdgeStatsDelta, GOLDEN_BUCKET_COUNT, NAME_PATTERN, STATS_REPORT_LIMITS } from "@weft/api";

export const LOAD_REPORT_LIMITS = Object.freeze({
  /** Clusters in one report: as many as a sidecar's report has edges. */
  maxClusters: STATS_REPORT_LIMITS.maxEdges,
  /** Localities of one cluster in one report. */
  maxLocalities: 256,
  /** Any count, and any edge's total, in one report. */
  maxCount: STATS_REPORT_LIMITS.maxCount,
});

/** The fields of `envoy.config.endpoint.v3.UpstreamLocalityStats` read here. */
export interface UpstreamLocalityStats {
  total_successful_requests?: unknown;
  total_error_requests?: unknown;
  total_issued_requests?: unknown;
  total_requests_in_progress?: unknown;
}

/** The fields of `envoy.config.endpoint.v3.ClusterStats` read here. */
export interface ClusterStats {
  cluster_name?: unknown;
  cluster_service_name?: unknown;
  upstream_locality_stats?: unknown;
  total_dropped_requests?: unknown;
}

export type LoadReportResult = { ok: true; edges: EdgeStatsDelta[] } | { ok: false; error: string };

/** Zero buckets: a load report has no latency (golden.ts ignores them for proxyless reports). */
const NO_BUCKETS: readonly number[] = Object.freeze(new Array<number>(GOLDEN_BUCKET_COUNT).fill(0));

/** The service a cluster name serves, or undefined when the name is not one of ours. */
export function clusterService(name: string): string | undefined {
  const m = /^([a-z0-9-]{1,63})(?:[.@~]|$)/.exec(name);
  const service = m?.[1];
  return service !== undefined && NAME_PATTERN.test(service) ? service : undefined;
}

/** A uint64 as proto-loader gives it (a decimal string with `longs: String`, or a number); absent = 0. */
function count(v: unknown): number | undefined {
  if (v === undefined || v === null) return 0;
  let n: number;
  if (typeof v === "string") {
    if (!/^\d{1,16}$/.test(v)) return undefined;
    n = Number(v);
  } else if (typeof v === "number") n = v;
  else return undefined;
  return Number.isSafeInteger(n) && n >= 0 && n <= LOAD_REPORT_LIMITS.maxCount ? n : undefined;
}

const shown = (s: string) => JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}...` : s);

/** Converts one report of a node of `source` (its service) into outbound edge deltas. */
export function loadReportEdges(source: string, clusterStats: unknown): LoadReportResult {
  if (clusterStats === undefined || clusterStats === null) return { ok: true, edges: [] };
  if (!Array.isArray(clusterStats)) return { ok: false, error: "cluster_stats is not a list" };
  if (clusterStats.length > LOAD_REPORT_LIMITS.maxClusters) {
    return {
      ok: false,
      error: `cluster_stats has ${clusterStats.length} clusters (at most ${LOAD_REPORT_LIMITS.maxClusters})`,
    };
  }
  const byDestination = new Map<string, { requests: number; success: number }>();
  for (const [i, raw] of clusterStats.entries()) {
    const c = (raw ?? {}) as ClusterStats;
    const at = `cluster_stats[${i}]`;
    if (typeof c.cluster_name !== "string") return { ok: false, error: `${at}.cluster_name is missing` };
    const destination = clusterService(c.cluster_name);
    if (destination === undefined) {
      return {
        ok: false,
        error: `${at}.cluster_name ${shown(c.cluster_name)} is not a cluster of this mesh`,
      };
    }
    const localities = c.upstream_locality_stats ?? [];
    if (!Array.isArray(localities))
      return { ok: false, error: `${at}.upstream_locality_stats is not a list` };
    if (localities.length > LOAD_REPORT_LIMITS.maxLocalities) {
      return {
        ok: false,
        error: `${at} has ${localities.length} localities (at most ${LOAD_REPORT_LIMITS.maxLocalities})`,
      };
    }
    const dropped = count(c.total_dropped_requests);
    if (dropped === undefined)
      return { ok: false, error: `${at}.total_dropped_requests is not a bounded count` };
    let success = 0;
    let requests = dropped;
    for (const [j, rawL] of localities.entries()) {
      const l = (rawL ?? {}) as UpstreamLocalityStats;
      const ok = count(l.total_successful_requests);
      const failed = count(l.total_error_requests);
      // Not used (see the file comment), but checked: a report is well formed or refused whole.
      const issued = count(l.total_issued_requests);
      const inProgress = count(l.total_requests_in_progress);
      if (ok === undefined || failed === undefined || issued === undefined || inProgress === undefined) {
        return { ok: false, error: `${at}.upstream_locality_stats[${j}]: a count is not a bounded integer` };
      }
      success += ok;
      requests += ok + failed;
    }
    const acc = byDestination.get(destination) ?? { requests: 0, success: 0 };
    acc.requests += requests;
    acc.success += success;
    if (acc.requests > LOAD_REPORT_LIMITS.maxCount) {
      return {
        ok: false,
        error: `requests to "${destination}" exceed ${LOAD_REPORT_LIMITS.maxCount} in one report`,
      };
    }
    byDestination.set(destination, acc);
  }
  const edges: EdgeStatsDelta[] = [];
  for (const [destination, t] of [...byDestination].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (t.requests === 0) continue;
    edges.push({
      direction: "outbound",
      source,
      destination,
      requests: t.requests,
      success: t.success,
      buckets: [...NO_BUCKETS],
    });
  }
  return { ok: true, edges };
}
