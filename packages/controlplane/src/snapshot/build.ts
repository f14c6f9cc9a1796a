/**
 * The per-proxy snapshot builder: a pure function from what the control
 * plane knows to the `ProxySnapshot` one sidecar receives (Consul's
 * `proxycfg` snapshot, computed instead of accumulated).
 *
 * Data flow: own instance -> inbound (protocol, authz from its Intention)
 * -> upstream listeners (declared order) -> cluster refs (one per distinct
 * upstream service; routes, splits and failover will add refs to subsets and
 * other services here) -> clusters (lb, timeouts, breaker, healthy endpoints)
 * -> version (digest of the content) -> `checkSnapshot`.
 *
 * Every read goes through a recording reader, so `deps` is exactly what the
 * result depends on, including resources looked up and found absent
 * (creating one later changes the snapshot). The output does not depend on
 * the order the inputs list instances in: endpoints are sorted by id and
 * protocol votes are counted, so a re-build with no real change gives the
 * same bytes and the same version, and the caller can skip sending it.
 */

import { createHash } from "node:crypto";
import {
  ACCESS_LOG_DEFAULTS,
  type AccessLogConfig,
  type AuthzPermission,
  type AuthzSource,
  CIRCUIT_BREAKER_DEFAULTS,
  type CircuitBreakerConfig,
  type ClusterConfig,
  checkSnapshot,
  type EndpointConfig,
  type Gateway,
  type HashPolicy,
  type InboundConfig,
  type InboundRateLimit,
  type Instance,
  type Intention,
  type IntentionPermission,
  type IntentionSource,
  type LbConfig,
  type Mesh,
  type OutlierDetectionConfig,
  type ProxySnapshot,
  type Resolver,
  type Route,
  type RouteRateLimit,
  type ServiceDefaults,
  SNAPSHOT_FORMAT,
  type SnapshotProtocol,
  type Split,
  TIMEOUTS_DEFAULTS,
  type UpstreamListener,
  workloadId,
} from "@weft/api";
import { type WeftError, weftError } from "@weft/core";
import { stableJson } from "../state/stable-json.js";
import { type ClusterRef, ClusterRefs, type Locality } from "./cluster-refs.js";
import { compareStrings, memo, RecordingReader, sorted } from "./reader.js";
import { routesConfig, splitTargets } from "./routes.js";
import { retriesConfig, toHttpMatch } from "./shapes.js";

export interface SnapshotInputs {
  /** The proxy's own catalog instance (its `proxy` field lists upstreams and protocol). */
  instance: Instance;
  /** Parsed, defaults applied. */
  mesh: Mesh;
  intention(service: string): Intention | undefined;
  serviceDefaults(service: string): ServiceDefaults | undefined;
  resolver(service: string): Resolver | undefined;
  split(service: string): Split | undefined;
  route(service: string): Route | undefined;
  /** The Gateway resource named like the proxy's service, when the proxy is that gateway. */
  gateway(name: string): Gateway | undefined;
  /** All instances of a service, any health status. Must not be mutated by the callee (it is not). */
  instances(service: string): readonly Instance[];
}

export interface SnapshotDeps {
  /**
   * Services whose instances the snapshot reflects, sorted: every service
   * whose instance list was read, plus the proxy's own service (its own
   * instance is an input, so a change to it must re-build too).
   */
  services: string[];
  /** Config resources read, present or not, as "Kind/name", sorted: "Intention/api", "Mesh/mesh". */
  config: string[];
}

export interface BuiltSnapshot {
  snapshot: ProxySnapshot;
  /** What was read, so the caller re-builds only proxies affected by a change. */
  deps: SnapshotDeps;
}

/**
 * A build that failed `checkSnapshot` still reports what it read: the caller
 * keeps sending the last good snapshot, and must re-build when one of these
 * changes (say, the upstream with too many endpoints shrinks).
 */
export type SnapshotBuild =
  | ({ ok: true } & BuiltSnapshot)
  | { ok: false; error: WeftError; deps: SnapshotDeps };

type Content = Omit<ProxySnapshot, "version">;

/** Builds and checks a proxy's snapshot; throws WEFT_ERR_VALIDATION when it would not pass `checkSnapshot`. */
export function buildSnapshot(inputs: SnapshotInputs): BuiltSnapshot {
  const r = tryBuildSnapshot(inputs);
  if (!r.ok) throw r.error;
  return { snapshot: r.snapshot, deps: r.deps };
}

/** `buildSnapshot` as a result: an invalid snapshot is an expected outcome, with its deps. */
export function tryBuildSnapshot(inputs: SnapshotInputs): SnapshotBuild {
  const { instance, mesh } = inputs;
  const reader = new RecordingReader(inputs);
  const protocols = new ServiceProtocols(reader);

  const refs = new ClusterRefs(reader, {
    datacenter: instance.datacenter,
    locality: instance.locality ?? undefined,
  });
  const upstreams = (instance.proxy?.upstreams ?? []).map((u): UpstreamListener => {
    const cluster = refs.add(u.service, undefined);
    // A Resolver redirect sends the listener to another service: that service's protocol is spoken.
    const protocol = protocols.of(refs.serviceOf(cluster) ?? u.service);
    const listener: UpstreamListener = { service: u.service, localPort: u.localPort, protocol, cluster };
    const split = reader.split(u.service);
    if (split) listener.splits = splitTargets(split, refs);
    // Routes are HTTP: a tcp listener has none (Consul ignores routers for tcp services too).
    const route = protocol === "tcp" ? undefined : reader.route(u.service);
    if (route) listener.routes = routesConfig(route.routes, u.service, reader, refs);
    return listener;
  });
  // An ingress gateway routes to subsets by name: their clusters must be in its snapshot too.
  for (const l of reader.gateway(instance.service)?.listeners ?? []) {
    for (const rt of l.routes) if (rt.subset !== undefined) refs.add(rt.service, rt.subset);
  }
  refs.expandFailover();
  const clusters = refs
    .sorted()
    .map((ref) => buildCluster(ref, reader, protocols, mesh, instance.datacenter));
  const content: Content = {
    format: SNAPSHOT_FORMAT,
    proxy: {
      service: instance.service,
      instanceId: instance.id,
      datacenter: instance.datacenter,
      spiffeId: workloadId(mesh.trustDomain, instance.service),
    },
    mesh: { trustDomain: mesh.trustDomain, defaultPolicy: mesh.defaultPolicy },
    inbound: buildInbound(instance, reader, mesh),
    upstreams,
    // fromEntries defines own properties: a hostile "__proto__" stays a key and fails the check.
    clusters: Object.fromEntries(clusters.map((c) => [c.name, c])),
    // Only when set (tracing) or not the defaults (access logs): other snapshots keep their bytes.
    ...(mesh.tracing !== undefined
      ? { tracing: { endpoint: mesh.tracing.endpoint, sampling: mesh.tracing.sampling } }
      : {}),
    ...accessLogField(reader.serviceDefaults(instance.service), mesh),
  };
  const deps = reader.deps(instance.service);
  const refuse = (why: string, cause?: unknown): SnapshotBuild => ({
    ok: false,
    error: weftError(
      "WEFT_ERR_VALIDATION",
      { detail: `snapshot for proxy "${instance.id}" (service "${instance.service}") not sent: ${why}` },
      cause === undefined ? undefined : { cause },
    ),
    deps,
  });

  let version: string;
  try {
    version = snapshotVersion(content);
  } catch (e) {
    // A value JSON cannot carry (NaN, ...) came from an input that bypassed the schemas.
    return refuse(e instanceof Error ? e.message : String(e), e);
  }
  const { format, ...rest } = content;
  const snapshot: ProxySnapshot = { format, version, ...rest };
  const check = checkSnapshot(snapshot);
  if (!check.ok) return refuse(check.error);
  return { ok: true, snapshot, deps };
}

/**
 * The content digest: sha256 of the stable JSON, first 16 hex chars. A
 * `version` member, if the argument carries one, is left out, so that
 * `snapshotVersion(snapshot) === snapshot.version` for a built snapshot.
 */
export function snapshotVersion(content: Content): string {
  const { version: _ignored, ...rest } = content as Content & { version?: unknown };
  return createHash("sha256").update(stableJson(rest)).digest("hex").slice(0, 16);
}

// ---------------------------------------------------------------- observability

/** The proxy's own ServiceDefaults.accessLogs, else the Mesh's; emitted only when not ACCESS_LOG_DEFAULTS. */
function accessLogField(sd: ServiceDefaults | undefined, mesh: Mesh): { accessLog?: AccessLogConfig } {
  // A Mesh built without the schema (tests, an older store) may lack the section: the defaults apply.
  const a = sd?.accessLogs ?? mesh.accessLogs ?? ACCESS_LOG_DEFAULTS;
  if (a.enabled === ACCESS_LOG_DEFAULTS.enabled && a.sampling === ACCESS_LOG_DEFAULTS.sampling) return {};
  return { accessLog: { enabled: a.enabled, sampling: a.sampling } };
}

// ---------------------------------------------------------------- inbound

function buildInbound(instance: Instance, reader: RecordingReader, mesh: Mesh): InboundConfig {
  const sd = reader.serviceDefaults(instance.service);
  const intention = reader.intention(instance.service);
  return {
    protocol: sd?.protocol ?? instance.proxy?.protocol ?? "tcp",
    authz: {
      defaultAction: mesh.defaultPolicy,
      intention: intention !== undefined,
      sources: authzSources(intention),
    },
    ...(sd?.maxRequestBodyBytes !== undefined ? { maxRequestBodyBytes: sd.maxRequestBodyBytes } : {}),
    // Only when configured: a snapshot without limits keeps its bytes (and version).
    ...(sd?.rateLimit !== undefined ? { rateLimit: rateLimitConfig(sd.rateLimit) } : {}),
  };
}

/** ServiceDefaults.rateLimit as the proxy reads it (bursts already defaulted by the schema). */
function rateLimitConfig(r: NonNullable<ServiceDefaults["rateLimit"]>): InboundRateLimit {
  const out: InboundRateLimit = {};
  if (r.requestsPerSecond !== undefined && r.burst !== undefined) {
    out.requestsPerSecond = r.requestsPerSecond;
    out.burst = r.burst;
  }
  if (r.routes !== undefined) {
    out.routes = r.routes.map((route): RouteRateLimit => {
      // Path first, then the bucket: what a person reading the golden files expects.
      const m: RouteRateLimit = { requestsPerSecond: route.requestsPerSecond, burst: route.burst };
      const path: Pick<RouteRateLimit, "pathExact" | "pathPrefix" | "pathRegex"> = {};
      if (route.pathExact !== undefined) path.pathExact = route.pathExact;
      if (route.pathPrefix !== undefined) path.pathPrefix = route.pathPrefix;
      if (route.pathRegex !== undefined) path.pathRegex = route.pathRegex;
      return { ...path, ...m };
    });
  }
  return out;
}

/** Exact names first in declared order, then "*": an exact source beats the wildcard (Consul precedence). */
function authzSources(intention: Intention | undefined): AuthzSource[] {
  if (!intention) return [];
  const exact = intention.sources.filter((s) => s.name !== "*");
  const wildcard = intention.sources.filter((s) => s.name === "*");
  return [...exact, ...wildcard].map(toAuthzSource);
}

function toAuthzSource(s: IntentionSource): AuthzSource {
  // `description` is for people; the proxy never needs it.
  if (s.permissions !== undefined) return { name: s.name, permissions: s.permissions.map(toPermission) };
  if (s.action !== undefined) return { name: s.name, action: s.action };
  return { name: s.name }; // neither: the schema refuses it, and so will checkSnapshot
}

function toPermission(p: IntentionPermission): AuthzPermission {
  return { action: p.action, http: toHttpMatch(p.http) };
}

// ---------------------------------------------------------------- protocol

/**
 * A service's protocol: its ServiceDefaults' when set, else what most of its
 * instances declare in their proxy registration (a tie goes to the name
 * sorted first), else tcp. Counted over all instances, healthy or not, so a
 * health flap does not flip the protocol.
 */
class ServiceProtocols {
  private readonly cache = new Map<string, SnapshotProtocol>();

  constructor(private readonly reader: RecordingReader) {}

  of(service: string): SnapshotProtocol {
    return memo(this.cache, service, () => {
      const declared = this.reader.serviceDefaults(service)?.protocol;
      return declared ?? majorityProtocol(this.reader.instances(service)) ?? "tcp";
    });
  }
}

function majorityProtocol(instances: readonly Instance[]): SnapshotProtocol | undefined {
  const votes = new Map<SnapshotProtocol, number>();
  for (const i of instances) {
    if (i.proxy) votes.set(i.proxy.protocol, (votes.get(i.proxy.protocol) ?? 0) + 1);
  }
  let best: SnapshotProtocol | undefined;
  let bestVotes = 0;
  for (const p of sorted(votes.keys()) as SnapshotProtocol[]) {
    const n = votes.get(p) ?? 0;
    if (n > bestVotes) {
      best = p;
      bestVotes = n;
    }
  }
  return best;
}

// ---------------------------------------------------------------- clusters

function buildCluster(
  ref: ClusterRef,
  reader: RecordingReader,
  protocols: ServiceProtocols,
  mesh: Mesh,
  homeDatacenter: string,
): ClusterConfig {
  const sd = reader.serviceDefaults(ref.service);
  const resolver = reader.resolver(ref.service);
  const request = sd?.timeouts.request;
  let instances = reader.instances(ref.service);
  if (ref.subset !== undefined) {
    // A subset the Resolver no longer defines selects nothing: no traffic rather than all of it.
    const filter = resolver?.subsets[ref.subset];
    instances = filter ? instances.filter((i) => inSubset(i, filter)) : [];
  }
  // A cluster serves one datacenter: the proxy's, unless it is a failover target elsewhere.
  const dc = ref.datacenter ?? homeDatacenter;
  instances = instances.filter((i) => i.datacenter === dc && inLocality(i, ref.locality));
  return {
    name: ref.name,
    service: ref.service,
    ...(ref.subset !== undefined ? { subset: ref.subset } : {}),
    protocol: protocols.of(ref.service),
    spiffeId: workloadId(mesh.trustDomain, ref.service),
    lb: lbConfig(sd),
    // The Resolver's connect timeout is the service's when there is one (Consul's connect_timeout).
    connectTimeoutMs: resolver?.connectTimeout ?? sd?.timeouts.connect ?? TIMEOUTS_DEFAULTS.connect,
    idleTimeoutMs: sd?.timeouts.idle ?? TIMEOUTS_DEFAULTS.idle,
    ...(request !== undefined ? { requestTimeoutMs: request } : {}),
    circuitBreaker: circuitBreaker(sd),
    ...(sd?.retries !== undefined ? { retries: retriesConfig(sd.retries) } : {}),
    // Only when configured, so snapshots of services without it keep their bytes (and version).
    ...(sd?.outlierDetection !== undefined
      ? { outlierDetection: outlierDetectionConfig(sd.outlierDetection) }
      : {}),
    ...(ref.datacenter !== undefined ? { datacenter: ref.datacenter } : {}),
    ...(ref.locality !== undefined ? { locality: ref.locality } : {}),
    ...(ref.failover !== undefined ? { failover: ref.failover } : {}),
    endpoints: endpoints(instances),
  };
}

/** An instance is in a locality when its region (and zone, when the locality names one) are the same. */
export function inLocality(i: Instance, l: Locality | undefined): boolean {
  if (l === undefined) return true;
  if (l.region !== undefined && i.locality?.region !== l.region) return false;
  if (l.zone !== undefined && i.locality?.zone !== l.zone) return false;
  return true;
}

/** An instance belongs to a subset when it has every tag and every meta entry of the filter (and passes, unless onlyPassing is false). */
export function inSubset(
  i: Instance,
  filter: { tags?: string[] | undefined; meta?: Record<string, string> | undefined; onlyPassing?: boolean },
): boolean {
  // onlyPassing (the default): a warning instance is not a candidate of the subset.
  if (filter.onlyPassing !== false && i.status === "warning") return false;
  for (const t of filter.tags ?? []) if (!i.tags.includes(t)) return false;
  for (const [k, v] of Object.entries(filter.meta ?? {})) if (i.meta[k] !== v) return false;
  return true;
}

function circuitBreaker(sd: ServiceDefaults | undefined): CircuitBreakerConfig {
  const cb = sd?.circuitBreaker ?? CIRCUIT_BREAKER_DEFAULTS;
  return {
    maxConnections: cb.maxConnections,
    maxPendingRequests: cb.maxPendingRequests,
    maxRequests: cb.maxRequests,
    maxRetries: cb.maxRetries,
  };
}

/** ServiceDefaults.outlierDetection as the proxy reads it (durations in milliseconds). */
function outlierDetectionConfig(o: NonNullable<ServiceDefaults["outlierDetection"]>): OutlierDetectionConfig {
  return {
    consecutive5xx: o.consecutive5xx,
    consecutiveGatewayErrors: o.consecutiveGatewayErrors,
    intervalMs: o.interval,
    baseEjectionTimeMs: o.baseEjectionTime,
    maxEjectionTimeMs: o.maxEjectionTime,
    maxEjectionPercent: o.maxEjectionPercent,
  };
}

function lbConfig(sd: ServiceDefaults | undefined): LbConfig {
  const lb = sd?.loadBalancer;
  if (!lb) return { policy: "round_robin" };
  const out: LbConfig = { policy: lb.policy };
  if (lb.choiceCount !== undefined) out.choiceCount = lb.choiceCount;
  if (lb.hashOn !== undefined) out.hashOn = lb.hashOn.map(hashPolicy);
  if (lb.ringSize !== undefined) out.ringSize = lb.ringSize;
  return out;
}

function hashPolicy(h: HashPolicy): HashPolicy {
  if (h.header !== undefined) return { header: h.header };
  if (h.cookie !== undefined) return { cookie: h.cookie };
  if (h.sourceIp !== undefined) return { sourceIp: h.sourceIp };
  return {}; // the schema refuses it, and so will checkSnapshot
}

/** Passing and warning instances, sorted by id: critical ones get no traffic. */
function endpoints(instances: readonly Instance[]): EndpointConfig[] {
  return instances
    .filter((i) => i.status === "passing" || i.status === "warning")
    .sort((a, b) => compareStrings(a.id, b.id))
    .map(toEndpoint);
}

function toEndpoint(i: Instance): EndpointConfig {
  const e: EndpointConfig = {
    id: i.id,
    address: i.address,
    port: i.port,
    weight: endpointWeight(i.meta.weight),
    health: i.status as EndpointConfig["health"],
  };
  const region = i.locality?.region;
  const zone = i.locality?.zone;
  if (region !== undefined || zone !== undefined) {
    e.locality = {};
    if (region !== undefined) e.locality.region = region;
    if (zone !== undefined) e.locality.zone = zone;
  }
  return e;
}

export const ENDPOINT_WEIGHT_MAX = 10_000;

/** `meta.weight` when it is a plain integer 1..10000, else 1: a typo must not drain or flood an instance. */
export function endpointWeight(text: string | undefined): number {
  if (text === undefined || !/^[0-9]{1,5}$/.test(text)) return 1;
  const n = Number(text);
  return n >= 1 && n <= ENDPOINT_WEIGHT_MAX ? n : 1;
}
