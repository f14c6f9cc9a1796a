/**
 * The per-proxy config snapshot: everything one sidecar needs, computed by
 * the control plane (controlplane/src/snapshot) and streamed to the proxy
 * (`GET /v1/proxy/stream/:instanceId`, NDJSON of `ProxyStreamMessage`).
 *
 * Shaped after Envoy's resources so that the xDS translation (issue #11) is a
 * pure function of it: `inbound` is the public listener with its RBAC
 * filter, `upstreams` are the outbound listeners (LDS), `clusters` are CDS
 * entries carrying their endpoints (EDS). Scoped: a proxy gets the clusters
 * its declared upstreams (and later their routes, splits and failover) can
 * reach, never the whole mesh.
 *
 * Zod-free on purpose: the sidecar imports `@weft/api/snapshot` and checks a
 * received snapshot with `checkSnapshot`, the same function the control plane
 * runs before sending ("a snapshot is sent only when valid"; "the proxy
 * re-checks and keeps its last good one").
 */
import {
  arr,
  checkHttpMatch,
  fail,
  Invalid,
  int,
  MAX_SNAPSHOT_STRING,
  name,
  type Obj,
  obj,
  oneOf,
  optStr,
  regex,
  str,
} from "./snapshot-check-util.js";
import {
  checkHeaderOps,
  checkRoutes,
  type HeaderOpsConfig,
  type HttpRouteConfig,
} from "./snapshot-routes.js";

export * from "./snapshot-routes.js";

export const SNAPSHOT_FORMAT = 1;

export type SnapshotProtocol = "tcp" | "http" | "http2" | "grpc";
export const SNAPSHOT_PROTOCOLS: readonly SnapshotProtocol[] = ["tcp", "http", "http2", "grpc"];
export type SnapshotAction = "allow" | "deny";
export type LbPolicy = "round_robin" | "least_request" | "random" | "weighted" | "ring_hash";
export const SNAPSHOT_LB_POLICIES: readonly LbPolicy[] = [
  "round_robin",
  "least_request",
  "random",
  "weighted",
  "ring_hash",
];

export interface SnapshotHeaderMatch {
  /** Lowercase header name. */
  name: string;
  exact?: string;
  prefix?: string;
  suffix?: string;
  regex?: string;
  present?: true;
  invert: boolean;
}

export interface SnapshotHttpMatch {
  pathExact?: string;
  pathPrefix?: string;
  pathRegex?: string;
  /** Uppercase methods. */
  methods?: string[];
  headers?: SnapshotHeaderMatch[];
}

export interface AuthzPermission {
  action: SnapshotAction;
  http: SnapshotHttpMatch;
}

/** One source of the destination's Intention, in declared order. */
export interface AuthzSource {
  /** A service name, or "*" for every source. */
  name: string;
  /** Exactly one of action / permissions (L7, first match wins; none matching = deny). */
  action?: SnapshotAction;
  permissions?: AuthzPermission[];
}

export interface InboundAuthz {
  /** The mesh's defaultPolicy, for sources no intention source names (and no "*"). */
  defaultAction: SnapshotAction;
  /** Whether an Intention resource exists for this service (for explanations). */
  intention: boolean;
  /** Exact names are matched before "*", as Consul ranks precedence. */
  sources: AuthzSource[];
}

export interface InboundConfig {
  protocol: SnapshotProtocol;
  authz: InboundAuthz;
  /** Largest request body the inbound listener accepts (413 beyond), when set. */
  maxRequestBodyBytes?: number;
  /** Local rate limits (ServiceDefaults.rateLimit); present only when configured. */
  rateLimit?: InboundRateLimit;
}

/** A token bucket: refills `requestsPerSecond`, holds at most `burst` tokens. */
export interface RateLimitBucket {
  requestsPerSecond: number;
  burst: number;
}

/** A bucket for requests matching exactly one path criterion, instead of the service-wide one. */
export interface RouteRateLimit extends RateLimitBucket {
  pathExact?: string;
  pathPrefix?: string;
  /** A full match, flag "u", as in the authorizer. */
  pathRegex?: string;
}

/**
 * The inbound listener's local rate limits. A request takes a token from the
 * first route whose path matches (declared order), else from the
 * service-wide bucket when there is one, else is not limited. A TCP
 * connection counts as one request against the service-wide bucket.
 */
export interface InboundRateLimit {
  /** The service-wide bucket; both or neither of requestsPerSecond and burst. */
  requestsPerSecond?: number;
  burst?: number;
  routes?: RouteRateLimit[];
}

/** One weighted target of a Split: a cluster of the snapshot. */
export interface SplitTarget {
  cluster: string;
  /** Percent, 0..100; the targets of one listener sum to 100. */
  weight: number;
  /** Header changes for requests (and their responses) that take this target. */
  requestHeaders?: HeaderOpsConfig;
  responseHeaders?: HeaderOpsConfig;
}

export interface UpstreamListener {
  /** The destination service the app named with `--upstream SERVICE=PORT`. */
  service: string;
  localPort: number;
  protocol: SnapshotProtocol;
  /** The cluster for traffic no split takes: the service's Resolver default subset, else all its instances. */
  cluster: string;
  /** The service's Split: each request (HTTP) or connection (TCP) goes to one target by weight. */
  splits?: SplitTarget[];
  /** The service's Route (HTTP listeners only): first match wins; no match → `cluster`/`splits`. */
  routes?: HttpRouteConfig[];
}

export interface HashPolicy {
  header?: string;
  cookie?: string;
  sourceIp?: true;
}

export interface LbConfig {
  policy: LbPolicy;
  choiceCount?: number;
  hashOn?: HashPolicy[];
  ringSize?: number;
}

export interface EndpointConfig {
  /** The catalog instance id. */
  id: string;
  /** The instance's sidecar inbound address. */
  address: string;
  port: number;
  /** From the instance's `meta.weight` (1..10000), default 1. */
  weight: number;
  health: "passing" | "warning";
  locality?: { region?: string; zone?: string };
}

export interface CircuitBreakerConfig {
  maxConnections: number;
  maxPendingRequests: number;
  maxRequests: number;
  maxRetries: number;
}

/**
 * ServiceDefaults.outlierDetection, durations in milliseconds: eject an
 * endpoint after N consecutive 5xx or gateway errors, for baseEjectionTime ×
 * its ejection count (capped), never more than maxEjectionPercent of them.
 */
export interface OutlierDetectionConfig {
  consecutive5xx: number;
  consecutiveGatewayErrors: number;
  intervalMs: number;
  baseEjectionTimeMs: number;
  maxEjectionTimeMs: number;
  /** Percent, 0..100. */
  maxEjectionPercent: number;
}

/** Conditions a retry policy can name (the schema's RETRY_ON, Envoy's `retry_on` vocabulary). */
export type SnapshotRetryOn =
  | "connect-failure"
  | "reset"
  | "5xx"
  | "gateway-error"
  | "retriable-status-codes"
  | "refused-stream"
  | "cancelled"
  | "deadline-exceeded"
  | "internal"
  | "resource-exhausted"
  | "unavailable";
export const SNAPSHOT_RETRY_ON: readonly SnapshotRetryOn[] = [
  "connect-failure",
  "reset",
  "5xx",
  "gateway-error",
  "retriable-status-codes",
  "refused-stream",
  "cancelled",
  "deadline-exceeded",
  "internal",
  "resource-exhausted",
  "unavailable",
];

/** The service's retry policy (ServiceDefaults.retries), durations in milliseconds. */
export interface RetriesConfig {
  /** Retries after the first try (0 = none). */
  numRetries: number;
  retryOn: SnapshotRetryOn[];
  /** Statuses retried when retryOn has "retriable-status-codes". */
  retryOnStatusCodes?: number[];
  perTryTimeoutMs?: number;
  /** Full-jitter exponential backoff between tries. */
  backoff: { baseIntervalMs: number; maxIntervalMs: number };
  /** Retries at most `percent` of requests over a window, plus a floor. */
  budget: { percent: number; minRetriesPerSecond: number };
  /** Retry a non-idempotent request whose body may have reached the upstream. */
  retryNonIdempotent: boolean;
}

export interface ClusterConfig {
  /** `<service>` or `<service>.<subset>`: unique within the snapshot. */
  name: string;
  service: string;
  subset?: string;
  protocol: SnapshotProtocol;
  /** The identity a peer of this cluster must present (checked on every mTLS connect). */
  spiffeId: string;
  lb: LbConfig;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  requestTimeoutMs?: number;
  circuitBreaker: CircuitBreakerConfig;
  /** Absent: no retries beyond the transparent ones before any byte is sent. */
  retries?: RetriesConfig;
  /** Absent: no outlier detection (present only when the service configures it). */
  outlierDetection?: OutlierDetectionConfig;
  /** Only instances of this datacenter (a failover target in another datacenter). */
  datacenter?: string;
  /** Only instances in this locality (region, and zone when given). */
  locality?: { region?: string; zone?: string };
  /**
   * The Resolver's failover targets, in order: clusters that take the
   * traffic while this one has no endpoint left to pick (none healthy, or
   * all ejected), until it recovers.
   */
  failover?: string[];
  /** Healthy instances only (passing, then warning), sorted by id. */
  endpoints: EndpointConfig[];
}

/** Mesh.tracing: where spans go (OTLP/HTTP) and the share of new traces sampled (an incoming decision is honoured). */
export interface TracingConfig {
  endpoint: string;
  /** 0..1. */
  sampling: number;
}

/**
 * Access logs of this proxy (both directions): the proxy's ServiceDefaults.accessLogs, else the
 * Mesh's. Absent: the defaults, enabled with every request logged (ACCESS_LOG_DEFAULTS).
 */
export interface AccessLogConfig {
  enabled: boolean;
  /** Share of requests (and TCP connections) logged, 0..1. */
  sampling: number;
}

export const ACCESS_LOG_DEFAULTS: Readonly<AccessLogConfig> = Object.freeze({ enabled: true, sampling: 1 });

export interface ProxySnapshot {
  format: typeof SNAPSHOT_FORMAT;
  /** A digest of everything below: equal versions mean equal content. */
  version: string;
  proxy: {
    service: string;
    instanceId: string;
    datacenter: string;
    spiffeId: string;
  };
  mesh: { trustDomain: string; defaultPolicy: SnapshotAction };
  inbound: InboundConfig;
  upstreams: UpstreamListener[];
  clusters: Record<string, ClusterConfig>;
  /** Present only when the Mesh sets tracing: no tracing work and no header change without it. */
  tracing?: TracingConfig;
  /** Present only when it differs from ACCESS_LOG_DEFAULTS. */
  accessLog?: AccessLogConfig;
}

/** Lines of the proxy stream (NDJSON). */
export type ProxyStreamMessage =
  | { type: "snapshot"; snapshot: ProxySnapshot }
  /** Sent every PROXY_STREAM_HEARTBEAT_MS so a proxy can tell a dead stream from a quiet one. */
  | { type: "heartbeat" }
  /** The control plane ends the stream (drain, overflow, instance deregistered); reconnect. */
  | { type: "close"; reason: string };

export const PROXY_STREAM_HEARTBEAT_MS = 15_000;
/** A proxy that hears nothing for this long reconnects. */
export const PROXY_STREAM_DEAD_MS = 3 * PROXY_STREAM_HEARTBEAT_MS;

/** Bounds every snapshot must respect (and the control plane refuses to send beyond). */
export const SNAPSHOT_LIMITS = {
  maxUpstreams: 64,
  maxClusters: 256,
  maxEndpointsPerCluster: 10_000,
  maxSources: 1024,
  maxPermissions: 128,
  maxStringLength: MAX_SNAPSHOT_STRING,
} as const;

export type SnapshotCheck = { ok: true; snapshot: ProxySnapshot } | { ok: false; error: string };

const ACTIONS: readonly SnapshotAction[] = ["allow", "deny"];

const RATE_LIMIT_MAX_ROUTES = 64;

function checkBucket(r: Obj, p: string): void {
  const rps = r.requestsPerSecond;
  if (typeof rps !== "number" || !(rps > 0 && rps <= 1_000_000)) {
    fail(`${p}.requestsPerSecond`, "expected a number in (0, 1000000]");
  }
  int(r.burst, `${p}.burst`, 1, 10_000_000);
}

function checkRateLimit(v: unknown, p: string): void {
  const rl = obj(v, p);
  if ((rl.requestsPerSecond === undefined) !== (rl.burst === undefined)) {
    fail(p, "needs both or neither of requestsPerSecond, burst");
  }
  if (rl.requestsPerSecond !== undefined) checkBucket(rl, p);
  if (rl.routes === undefined && rl.requestsPerSecond === undefined) {
    fail(p, "needs requestsPerSecond or routes");
  }
  if (rl.routes !== undefined) {
    arr(rl.routes, `${p}.routes`, RATE_LIMIT_MAX_ROUTES).forEach((r, i) => {
      const rp = `${p}.routes[${i}]`;
      const o = obj(r, rp);
      const kinds = ["pathExact", "pathPrefix", "pathRegex"].filter((k) => o[k] !== undefined);
      if (kinds.length !== 1) fail(rp, "needs exactly one of pathExact, pathPrefix, pathRegex");
      optStr(o.pathExact, `${rp}.pathExact`);
      optStr(o.pathPrefix, `${rp}.pathPrefix`);
      regex(o.pathRegex, `${rp}.pathRegex`);
      checkBucket(o, rp);
    });
  }
}

function checkInbound(v: unknown): void {
  const inb = obj(v, "inbound");
  oneOf(inb.protocol, "inbound.protocol", SNAPSHOT_PROTOCOLS);
  if (inb.maxRequestBodyBytes !== undefined) {
    int(inb.maxRequestBodyBytes, "inbound.maxRequestBodyBytes", 0, 1024 * 1024 * 1024);
  }
  if (inb.rateLimit !== undefined) checkRateLimit(inb.rateLimit, "inbound.rateLimit");
  const authz = obj(inb.authz, "inbound.authz");
  oneOf(authz.defaultAction, "inbound.authz.defaultAction", ACTIONS);
  if (typeof authz.intention !== "boolean") fail("inbound.authz.intention", "expected a boolean");
  arr(authz.sources, "inbound.authz.sources", SNAPSHOT_LIMITS.maxSources).forEach((s, i) => {
    const p = `inbound.authz.sources[${i}]`;
    const src = obj(s, p);
    if (src.name !== "*") name(src.name, `${p}.name`);
    if ((src.action === undefined) === (src.permissions === undefined)) {
      fail(p, "needs exactly one of action, permissions");
    }
    if (src.action !== undefined) oneOf(src.action, `${p}.action`, ACTIONS);
    if (src.permissions !== undefined) {
      arr(src.permissions, `${p}.permissions`, SNAPSHOT_LIMITS.maxPermissions).forEach((perm, j) => {
        const pp = `${p}.permissions[${j}]`;
        const o = obj(perm, pp);
        oneOf(o.action, `${pp}.action`, ACTIONS);
        checkHttpMatch(o.http, `${pp}.http`);
      });
    }
  });
}

function checkRetries(v: unknown, p: string): void {
  const r = obj(v, p);
  int(r.numRetries, `${p}.numRetries`, 0, 10);
  const on = arr(r.retryOn, `${p}.retryOn`, SNAPSHOT_RETRY_ON.length);
  if (on.length === 0) fail(`${p}.retryOn`, "expected at least one condition");
  for (const [i, x] of on.entries()) oneOf(x, `${p}.retryOn[${i}]`, SNAPSHOT_RETRY_ON);
  if (r.retryOnStatusCodes !== undefined) {
    const codes = arr(r.retryOnStatusCodes, `${p}.retryOnStatusCodes`, 32);
    for (const [i, x] of codes.entries()) int(x, `${p}.retryOnStatusCodes[${i}]`, 100, 599);
  }
  if (r.perTryTimeoutMs !== undefined) int(r.perTryTimeoutMs, `${p}.perTryTimeoutMs`, 1, 86_400_000);
  const b = obj(r.backoff, `${p}.backoff`);
  const base = int(b.baseIntervalMs, `${p}.backoff.baseIntervalMs`, 0, 3_600_000);
  const max = int(b.maxIntervalMs, `${p}.backoff.maxIntervalMs`, 0, 3_600_000);
  if (max < base) fail(`${p}.backoff.maxIntervalMs`, "must not be shorter than baseIntervalMs");
  const budget = obj(r.budget, `${p}.budget`);
  if (typeof budget.percent !== "number" || !(budget.percent >= 0 && budget.percent <= 100)) {
    fail(`${p}.budget.percent`, "expected a number in 0..100");
  }
  int(budget.minRetriesPerSecond, `${p}.budget.minRetriesPerSecond`, 0, 10_000);
  if (typeof r.retryNonIdempotent !== "boolean") fail(`${p}.retryNonIdempotent`, "expected a boolean");
}

function checkOutlierDetection(v: unknown, p: string): void {
  const o = obj(v, p);
  int(o.consecutive5xx, `${p}.consecutive5xx`, 1, 1000);
  int(o.consecutiveGatewayErrors, `${p}.consecutiveGatewayErrors`, 1, 1000);
  int(o.intervalMs, `${p}.intervalMs`, 1, 86_400_000);
  const base = int(o.baseEjectionTimeMs, `${p}.baseEjectionTimeMs`, 1, 86_400_000);
  const max = int(o.maxEjectionTimeMs, `${p}.maxEjectionTimeMs`, 1, 86_400_000);
  if (max < base) fail(`${p}.maxEjectionTimeMs`, "must not be shorter than baseEjectionTimeMs");
  const pct = o.maxEjectionPercent;
  if (typeof pct !== "number" || !(pct >= 0 && pct <= 100)) {
    fail(`${p}.maxEjectionPercent`, "expected a number in 0..100");
  }
}

function checkCluster(key: string, v: unknown): void {
  const p = `clusters.${key}`;
  const c = obj(v, p);
  if (c.name !== key) fail(`${p}.name`, "must equal its key");
  name(c.service, `${p}.service`);
  optStr(c.subset, `${p}.subset`);
  oneOf(c.protocol, `${p}.protocol`, SNAPSHOT_PROTOCOLS);
  if (typeof c.spiffeId !== "string" || !c.spiffeId.startsWith("spiffe://"))
    fail(`${p}.spiffeId`, "expected a SPIFFE ID");
  const lb = obj(c.lb, `${p}.lb`);
  oneOf(lb.policy, `${p}.lb.policy`, SNAPSHOT_LB_POLICIES);
  if (lb.choiceCount !== undefined) int(lb.choiceCount, `${p}.lb.choiceCount`, 2, 100);
  if (lb.ringSize !== undefined) int(lb.ringSize, `${p}.lb.ringSize`, 64, 8_388_608);
  if (lb.hashOn !== undefined) {
    arr(lb.hashOn, `${p}.lb.hashOn`, 8).forEach((h, i) => {
      const o = obj(h, `${p}.lb.hashOn[${i}]`);
      if ([o.header, o.cookie, o.sourceIp].filter((x) => x !== undefined).length !== 1) {
        fail(`${p}.lb.hashOn[${i}]`, "needs exactly one of header, cookie, sourceIp");
      }
    });
  }
  int(c.connectTimeoutMs, `${p}.connectTimeoutMs`, 1, 3_600_000);
  int(c.idleTimeoutMs, `${p}.idleTimeoutMs`, 1, 86_400_000);
  if (c.requestTimeoutMs !== undefined) int(c.requestTimeoutMs, `${p}.requestTimeoutMs`, 1, 86_400_000);
  const cb = obj(c.circuitBreaker, `${p}.circuitBreaker`);
  for (const k of ["maxConnections", "maxPendingRequests", "maxRequests", "maxRetries"]) {
    int(cb[k], `${p}.circuitBreaker.${k}`, 0, 1_000_000);
  }
  if (c.retries !== undefined) checkRetries(c.retries, `${p}.retries`);
  if (c.outlierDetection !== undefined) checkOutlierDetection(c.outlierDetection, `${p}.outlierDetection`);
  optStr(c.datacenter, `${p}.datacenter`);
  if (c.locality !== undefined) {
    const l = obj(c.locality, `${p}.locality`);
    optStr(l.region, `${p}.locality.region`);
    optStr(l.zone, `${p}.locality.zone`);
  }
  const seen = new Set<string>();
  arr(c.endpoints, `${p}.endpoints`, SNAPSHOT_LIMITS.maxEndpointsPerCluster).forEach((e, i) => {
    const ep = `${p}.endpoints[${i}]`;
    const o = obj(e, ep);
    const id = str(o.id, `${ep}.id`);
    if (seen.has(id)) fail(`${ep}.id`, `duplicate endpoint "${id}"`);
    seen.add(id);
    str(o.address, `${ep}.address`);
    int(o.port, `${ep}.port`, 1, 65535);
    int(o.weight, `${ep}.weight`, 1, 10_000);
    oneOf(o.health, `${ep}.health`, ["passing", "warning"] as const);
  });
}

function checkSplits(v: unknown, p: string, hasCluster: (n: string) => boolean): void {
  let sum = 0;
  arr(v, p, 64).forEach((t, j) => {
    const tp = `${p}[${j}]`;
    const target = obj(t, tp);
    const c = str(target.cluster, `${tp}.cluster`);
    if (!hasCluster(c)) fail(`${tp}.cluster`, `no cluster "${c}" in the snapshot`);
    if (typeof target.weight !== "number" || !(target.weight >= 0 && target.weight <= 100)) {
      fail(`${tp}.weight`, "expected a number in 0..100");
    }
    if (target.requestHeaders !== undefined) checkHeaderOps(target.requestHeaders, `${tp}.requestHeaders`);
    if (target.responseHeaders !== undefined) checkHeaderOps(target.responseHeaders, `${tp}.responseHeaders`);
    sum += target.weight;
  });
  if (Math.abs(sum - 100) > 0.01) fail(p, `weights sum to ${sum}, not 100`);
}

/** Failover names clusters of the snapshot, never the cluster itself, at most 16 of them. */
function checkFailover(key: string, c: Obj, hasCluster: (n: string) => boolean): void {
  if (c.failover === undefined) return;
  const p = `clusters.${key}.failover`;
  arr(c.failover, p, 16).forEach((f, i) => {
    const n = str(f, `${p}[${i}]`);
    if (n === key) fail(`${p}[${i}]`, "a cluster cannot fail over to itself");
    if (!hasCluster(n)) fail(`${p}[${i}]`, `no cluster "${n}" in the snapshot`);
  });
}

function ratio(v: unknown, p: string): void {
  if (typeof v !== "number" || !(v >= 0 && v <= 1)) fail(p, "expected a number in 0..1");
}

function checkTracing(v: unknown): void {
  const t = obj(v, "tracing");
  const endpoint = str(t.endpoint, "tracing.endpoint");
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:")) {
    fail("tracing.endpoint", "expected an http(s) URL");
  }
  ratio(t.sampling, "tracing.sampling");
}

/**
 * Structural and semantic check of a snapshot (no schema library): every
 * field the proxy reads has the right type and bounds, every listener points
 * at a cluster that exists, local ports are unique, regexes compile.
 */
export function checkSnapshot(v: unknown): SnapshotCheck {
  try {
    const s = obj(v, "snapshot");
    if (s.format !== SNAPSHOT_FORMAT) fail("format", `expected ${SNAPSHOT_FORMAT}`);
    str(s.version, "version");
    const proxy = obj(s.proxy, "proxy");
    name(proxy.service, "proxy.service");
    str(proxy.instanceId, "proxy.instanceId");
    str(proxy.datacenter, "proxy.datacenter");
    str(proxy.spiffeId, "proxy.spiffeId");
    const mesh = obj(s.mesh, "mesh");
    str(mesh.trustDomain, "mesh.trustDomain");
    oneOf(mesh.defaultPolicy, "mesh.defaultPolicy", ACTIONS);
    checkInbound(s.inbound);
    const clusters = obj(s.clusters, "clusters");
    const keys = Object.keys(clusters);
    if (keys.length > SNAPSHOT_LIMITS.maxClusters)
      fail("clusters", `more than ${SNAPSHOT_LIMITS.maxClusters}`);
    for (const k of keys) checkCluster(k, clusters[k]);
    const hasCluster = (n: string): boolean => Object.hasOwn(clusters, n);
    const ports = new Set<number>();
    arr(s.upstreams, "upstreams", SNAPSHOT_LIMITS.maxUpstreams).forEach((u, i) => {
      const p = `upstreams[${i}]`;
      const o = obj(u, p);
      name(o.service, `${p}.service`);
      const port = int(o.localPort, `${p}.localPort`, 1, 65535);
      if (ports.has(port)) fail(`${p}.localPort`, `port ${port} is used by another upstream`);
      ports.add(port);
      oneOf(o.protocol, `${p}.protocol`, SNAPSHOT_PROTOCOLS);
      const cluster = str(o.cluster, `${p}.cluster`);
      if (!Object.hasOwn(clusters, cluster)) fail(`${p}.cluster`, `no cluster "${cluster}" in the snapshot`);
      if (o.splits !== undefined) checkSplits(o.splits, `${p}.splits`, hasCluster);
      if (o.routes !== undefined) {
        if (o.protocol === "tcp") fail(`${p}.routes`, "a tcp listener has no HTTP routes");
        checkRoutes(o.routes, `${p}.routes`, {
          hasCluster,
          checkRetries,
          checkSplits: (x, sp) => checkSplits(x, sp, hasCluster),
        });
      }
    });
    for (const k of keys) checkFailover(k, clusters[k] as Obj, hasCluster);
    if (s.tracing !== undefined) checkTracing(s.tracing);
    if (s.accessLog !== undefined) {
      const a = obj(s.accessLog, "accessLog");
      if (typeof a.enabled !== "boolean") fail("accessLog.enabled", "expected a boolean");
      ratio(a.sampling, "accessLog.sampling");
    }
    return { ok: true, snapshot: v as ProxySnapshot };
  } catch (e) {
    if (e instanceof Invalid) return { ok: false, error: e.message };
    throw e;
  }
}

/** What `/config` on a proxy's admin listener and `weft explain` show of a proxy's stream state. */
export interface ProxyConfigStatus {
  connected: boolean;
  /** Version of the snapshot in use, if any. */
  version?: string;
  /** The last snapshot refused by the proxy, and why. */
  lastRejected?: { version?: string; error: string; at: string };
}
