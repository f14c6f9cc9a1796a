/**
 * The cluster part of an explanation: which clusters a request can reach
 * (its targets, then their failover clusters), each as the snapshot has it,
 * with the critical instances the snapshot left out and the cluster that
 * takes its traffic now.
 *
 * `servedBy` is the sidecar's failover rule (dataplane ClusterSet.resolve),
 * applied to the snapshot's endpoints: a cluster serves itself while it has
 * an endpoint, else its first failover cluster with one, else itself (503
 * UH). The sidecar also fails over when outlier detection has ejected every
 * endpoint; ejections live in each proxy and are not seen here.
 */
import type {
  ClusterConfig,
  ExplainCluster,
  ExplainExcluded,
  Instance,
  ProxySnapshot,
  Resolver,
  SplitTarget,
} from "@weft/api";
import { servingCluster } from "@weft/api/routing";
import type { Catalog } from "../catalog/catalog.js";
import type { ConfigService } from "../config/config.js";
import { inLocality, inSubset } from "../snapshot/build.js";

export interface ClusterSources {
  catalog: Pick<Catalog, "serviceInstances">;
  config: Pick<ConfigService, "parsed">;
}

/**
 * The clusters to explain: `cluster` and the split targets, each once, then
 * each one's failover clusters (in order, each once). Empty without a target.
 */
export function clustersToExplain(
  s: ProxySnapshot,
  target: { cluster: string; splits: readonly SplitTarget[] | undefined } | undefined,
): string[] {
  if (target === undefined) return [];
  const names = new Set([target.cluster, ...(target.splits ?? []).map((t) => t.cluster)]);
  for (const n of [...names]) for (const f of s.clusters[n]?.failover ?? []) names.add(f);
  return [...names];
}

/** ClusterSet.resolve on catalog health: see the file comment. */
export function servedBy(s: ProxySnapshot, name: string): string {
  return (
    servingCluster(name, {
      get: (n) => s.clusters[n],
      failover: (c) => c.failover,
      available: (c) => c.endpoints.length > 0,
    })?.name ?? name
  );
}

/** The cluster's datacenter and locality restrictions (build.ts), for the instances it left out. */
function inScope(i: Instance, c: ClusterConfig, homeDatacenter: string): boolean {
  return i.datacenter === (c.datacenter ?? homeDatacenter) && inLocality(i, c.locality);
}

function noHealthyNote(c: ClusterConfig, by: string): string {
  if (by !== c.name) return `no healthy instance: its traffic goes to ${by} (failover)`;
  if (c.failover !== undefined) {
    return `no healthy instance, nor in its failover clusters (${c.failover.join(", ")}): the proxy answers 503 (UH)`;
  }
  return "no healthy instance and no failover configured: the proxy answers 503 (UH)";
}

export function explainCluster(src: ClusterSources, s: ProxySnapshot, name: string): ExplainCluster {
  const c = s.clusters[name] as ClusterConfig;
  const resolver = src.config.parsed("Resolver", c.service) as Resolver | undefined;
  const filter = c.subset === undefined ? undefined : resolver?.subsets[c.subset];
  let subsetFilter: ExplainCluster["subsetFilter"] = null;
  if (c.subset !== undefined) {
    subsetFilter = filter
      ? {
          ...(filter.tags !== undefined ? { tags: filter.tags } : {}),
          ...(filter.meta !== undefined ? { meta: filter.meta } : {}),
        }
      : "undefined-subset";
  }
  const excluded = src.catalog
    .serviceInstances(c.service, "critical")
    .filter((i) => c.subset === undefined || (filter !== undefined && inSubset(i, filter)))
    .filter((i) => inScope(i, c, s.proxy.datacenter))
    .map(
      (i): ExplainExcluded => ({
        id: i.id,
        address: i.address,
        port: i.port,
        status: "critical",
        checks: i.checks.map((k) => ({ id: k.id, name: k.name, status: k.status, output: k.output })),
      }),
    );
  const by = servedBy(s, name);
  const notes: string[] = [];
  if (subsetFilter === "undefined-subset") {
    notes.push(`Resolver "${c.service}" does not define subset "${c.subset}": it selects no instance`);
  }
  if (c.endpoints.length === 0) notes.push(noHealthyNote(c, by));
  return {
    name: c.name,
    service: c.service,
    subset: c.subset ?? null,
    subsetFilter,
    protocol: c.protocol,
    lb: c.lb,
    connectTimeoutMs: c.connectTimeoutMs,
    idleTimeoutMs: c.idleTimeoutMs,
    requestTimeoutMs: c.requestTimeoutMs ?? null,
    circuitBreaker: c.circuitBreaker,
    retries: c.retries ?? null,
    endpoints: c.endpoints,
    excluded,
    notes,
    failover: c.failover ?? [],
    servedBy: by,
  };
}
