/**
 * Snapshot -> xDS: a pure function from one proxy's `ProxySnapshot` to the
 * Listener, RouteConfiguration, Cluster and ClusterLoadAssignment resources
 * a proxyless gRPC client (or Envoy) needs for the same upstreams (Consul's
 * `xds/resources.go`). Golden files pin its output (translate.test.ts).
 *
 * Data flow: each HTTP-family upstream listener -> an `api_listener`
 * Listener named after the service (`xds:///SERVICE` asks for exactly that
 * name) whose HttpConnectionManager fetches its routes over ADS ->
 * RouteConfiguration of the same name (the listener's routes, then a
 * catch-all to its cluster or split) -> every snapshot cluster -> an EDS
 * Cluster and a ClusterLoadAssignment (localities at priority 0, the
 * Resolver's failover clusters at the next priorities).
 *
 * Where gRPC and Envoy differ, the resources stay valid Envoy config and
 * say what grpc-js-xds honours:
 *  - lb: only ROUND_ROBIN and RING_HASH are accepted by gRPC, so
 *    least_request / random / weighted become ROUND_ROBIN (gRPC would NACK
 *    the whole cluster otherwise).
 *  - timeouts: gRPC reads `max_stream_duration`, Envoy `timeout`; both set.
 *  - redirect / direct_response routes are Envoy-only: gRPC NACKs the route
 *    configuration that carries one and keeps its last good one (the NACK
 *    is recorded, see ads-stream.ts).
 *  - tcp upstreams have no xDS form for gRPC and are left out (noted).
 *  - gRPC accepts only IP endpoints: an endpoint with a host name is left
 *    out (noted) rather than have the client refuse the whole assignment.
 *
 * mTLS is per node: a node whose bootstrap has a certificate provider
 * instance (`weft bootstrap grpc --cert-dir`) gets every cluster with an
 * UpstreamTlsContext: its own certificate from that provider, the mesh
 * roots from it too, and the cluster's SPIFFE ID as the only accepted
 * server SAN (the sidecars' inbound listeners speak exactly that). A node
 * without one gets plaintext clusters (proxyless servers on their own
 * addresses).
 */
import { isIP } from "node:net";
import type { ClusterConfig, EndpointConfig, LbConfig, ProxySnapshot, UpstreamListener } from "@weft/api";
import {
  CLUSTER_TYPE,
  duration,
  ENDPOINT_TYPE,
  FAULT_FILTER_NAME,
  FAULT_TYPE,
  HCM_TYPE,
  LISTENER_TYPE,
  type NamedResource,
  providerTlsContext,
  ROUTER_FILTER_NAME,
  ROUTER_TYPE,
  UPSTREAM_TLS_TYPE,
  type XdsResource,
  type XdsResources,
} from "./resources.js";
import { routeConfiguration } from "./translate-routes.js";

const ADS_SOURCE = { ads: {}, resource_api_version: "V3" } as const;

export interface TranslateOptions {
  /** The node's certificate provider instance name (its bootstrap's certificate_providers): clusters use mTLS. */
  certificateProvider?: string | undefined;
}

/** Translates one snapshot. Never throws for a snapshot that passed `checkSnapshot`. */
export function translateSnapshot(snapshot: ProxySnapshot, opts: TranslateOptions = {}): XdsResources {
  const notes: string[] = [];
  const listeners: NamedResource[] = [];
  const routeConfigurations: NamedResource[] = [];
  for (const u of snapshot.upstreams) {
    if (u.protocol === "tcp") {
      notes.push(`upstream "${u.service}" is tcp: no xDS listener (gRPC speaks HTTP/2 only)`);
      continue;
    }
    listeners.push({ name: u.service, resource: listener(u) });
    routeConfigurations.push({ name: u.service, resource: routeConfiguration(u, snapshot.clusters) });
  }
  const names = Object.keys(snapshot.clusters).sort();
  const clusters = names.map((n) => ({
    name: n,
    resource: cluster(snapshot.clusters[n] as ClusterConfig, opts),
  }));
  const clusterLoadAssignments = names.map((n) => ({
    name: n,
    resource: loadAssignment(snapshot.clusters[n] as ClusterConfig, snapshot.clusters, notes),
  }));
  return { listeners, routeConfigurations, clusters, clusterLoadAssignments, notes };
}

function usesFault(u: UpstreamListener): boolean {
  return (u.routes ?? []).some((r) => r.forward?.fault !== undefined);
}

function listener(u: UpstreamListener): XdsResource {
  const filters: XdsResource[] = [];
  // The fault filter runs only where a route configures it (typed_per_filter_config); an empty
  // top-level config injects nothing by itself. Present only when needed, so clients without it are not asked for it.
  if (usesFault(u)) filters.push({ name: FAULT_FILTER_NAME, typed_config: { "@type": FAULT_TYPE } } as never);
  filters.push({ name: ROUTER_FILTER_NAME, typed_config: { "@type": ROUTER_TYPE } } as never);
  return {
    "@type": LISTENER_TYPE,
    name: u.service,
    api_listener: {
      api_listener: {
        "@type": HCM_TYPE,
        stat_prefix: u.service,
        rds: { config_source: ADS_SOURCE, route_config_name: u.service },
        http_filters: filters,
      },
    },
  };
}

/** gRPC accepts ROUND_ROBIN and RING_HASH only (see the file comment). */
function lbPolicy(lb: LbConfig): "ROUND_ROBIN" | "RING_HASH" {
  return lb.policy === "ring_hash" ? "RING_HASH" : "ROUND_ROBIN";
}

/** The client side of the mesh's mTLS, with the cluster's identity as the one SAN accepted. */
function upstreamTls(c: ClusterConfig, provider: string): Record<string, unknown> {
  return {
    name: "envoy.transport_sockets.tls",
    typed_config: {
      "@type": UPSTREAM_TLS_TYPE,
      common_tls_context: { ...providerTlsContext(provider, [c.spiffeId]), alpn_protocols: ["h2"] },
    },
  };
}

function cluster(c: ClusterConfig, opts: TranslateOptions): XdsResource {
  const out: XdsResource = {
    "@type": CLUSTER_TYPE,
    name: c.name,
    type: "EDS",
    eds_cluster_config: { eds_config: ADS_SOURCE, service_name: c.name },
    connect_timeout: duration(c.connectTimeoutMs),
    lb_policy: lbPolicy(c.lb),
    // Load reports (calls, failures, drops) to this control plane's LRS (lrs-server.ts): golden metrics for proxyless callers.
    lrs_server: { self: {} },
  };
  if (c.lb.policy === "ring_hash") {
    out.ring_hash_lb_config = {
      hash_function: "XX_HASH",
      ...(c.lb.ringSize !== undefined ? { minimum_ring_size: { value: String(c.lb.ringSize) } } : {}),
    };
  }
  const cb = c.circuitBreaker;
  out.circuit_breakers = {
    thresholds: [
      {
        priority: "DEFAULT",
        max_connections: { value: cb.maxConnections },
        max_pending_requests: { value: cb.maxPendingRequests },
        max_requests: { value: cb.maxRequests },
        max_retries: { value: cb.maxRetries },
      },
    ],
  };
  out.common_http_protocol_options = { idle_timeout: duration(c.idleTimeoutMs) };
  if (opts.certificateProvider) out.transport_socket = upstreamTls(c, opts.certificateProvider);
  if (c.outlierDetection) {
    const o = c.outlierDetection;
    // Consecutive-error ejection as the sidecar does it. Success-rate ejection defaults to
    // enforcing in both Envoy and gRPC: switched off so the two data planes eject alike.
    out.outlier_detection = {
      consecutive_5xx: { value: o.consecutive5xx },
      consecutive_gateway_failure: { value: o.consecutiveGatewayErrors },
      enforcing_consecutive_5xx: { value: 100 },
      enforcing_consecutive_gateway_failure: { value: 100 },
      enforcing_success_rate: { value: 0 },
      interval: duration(o.intervalMs),
      base_ejection_time: duration(o.baseEjectionTimeMs),
      max_ejection_time: duration(o.maxEjectionTimeMs),
      max_ejection_percent: { value: Math.round(o.maxEjectionPercent) },
    };
  }
  return out;
}

type Locality = { region?: string; zone?: string };

function localityKey(l: Locality | undefined): string {
  return `${l?.region ?? ""}/${l?.zone ?? ""}`;
}

/**
 * Endpoints of `c` at priority 0 and of its failover clusters at the next
 * priorities, grouped by locality. Priorities are contiguous (gRPC refuses a
 * gap): an empty cluster takes no priority. An address already listed at a
 * higher priority is not repeated (gRPC refuses duplicates).
 */
function loadAssignment(
  c: ClusterConfig,
  all: Readonly<Record<string, ClusterConfig>>,
  notes: string[],
): XdsResource {
  const seen = new Set<string>();
  const groups: XdsResource[] = [];
  let priority = 0;
  const tiers = [c, ...(c.failover ?? []).map((n) => all[n]).filter((x): x is ClusterConfig => !!x)];
  for (const tier of tiers) {
    const byLocality = new Map<string, { locality: Locality | undefined; eps: EndpointConfig[] }>();
    for (const e of tier.endpoints) {
      if (isIP(e.address) === 0) {
        notes.push(
          `cluster "${c.name}": endpoint "${e.id}" has a host name (${e.address}); gRPC takes IPs only`,
        );
        continue;
      }
      const key = `${e.address}|${e.port}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const lk = localityKey(e.locality);
      const g = byLocality.get(lk) ?? { locality: e.locality, eps: [] };
      g.eps.push(e);
      byLocality.set(lk, g);
    }
    if (byLocality.size === 0) continue;
    for (const lk of [...byLocality.keys()].sort()) {
      const g = byLocality.get(lk) as { locality: Locality | undefined; eps: EndpointConfig[] };
      groups.push({
        locality: {
          ...(g.locality?.region !== undefined ? { region: g.locality.region } : {}),
          ...(g.locality?.zone !== undefined ? { zone: g.locality.zone } : {}),
        },
        // gRPC skips a locality without a weight; its share is the sum of its endpoints' weights.
        load_balancing_weight: { value: g.eps.reduce((s, e) => s + e.weight, 0) },
        priority,
        lb_endpoints: g.eps.map((e) => ({
          endpoint: { address: { socket_address: { address: e.address, port_value: e.port } } },
          // gRPC uses HEALTHY (and UNKNOWN) only; Envoy uses DEGRADED hosts when too few are healthy.
          health_status: e.health === "passing" ? "HEALTHY" : "DEGRADED",
          load_balancing_weight: { value: e.weight },
        })),
      } as never);
    }
    priority += 1;
  }
  return { "@type": ENDPOINT_TYPE, cluster_name: c.name, endpoints: groups };
}
