/**
 * `GET /v1/explain` (docs/api.md, `weft explain`): what the mesh would do
 * with one request from a service to another, computed from the live config
 * by the same code the sidecars run (the snapshot builder, `@weft/api/authz`,
 * `@weft/api/routing`).
 *
 * Fields added after the first version (route, destination, a cluster's
 * failover and servedBy) are optional: an older control plane omits them.
 *
 * Types only, zod-free: the CLI and the UI read them without loading schemas.
 */
import type { AuthzCode } from "./authz/authorizer.js";
import type {
  CircuitBreakerConfig,
  EndpointConfig,
  LbConfig,
  RetriesConfig,
  SnapshotAction,
  SnapshotHttpMatch,
  SnapshotProtocol,
} from "./snapshot.js";
import type { FaultConfig, HeaderOpsConfig, MirrorConfig } from "./snapshot-routes.js";
import type { XdsNack } from "./xds.js";

/** The request to explain. */
export interface ExplainQuery {
  /** The calling service (the proxy whose upstream listener the app uses). */
  from: string;
  /** The destination service. */
  to: string;
  /** Default GET. */
  method?: string | undefined;
  /** The raw request target, query included; default "/". */
  path?: string | undefined;
  /** Request headers, in order; repeated names are joined with ", " as the proxy does. */
  headers?: ReadonlyArray<readonly [name: string, value: string]> | undefined;
}

/** Bounds on the query, enforced by the server with a 400. */
export const EXPLAIN_LIMITS = {
  maxHeaders: 32,
  maxHeaderValueLength: 4096,
  maxPathLength: 8192,
} as const;

/** The request as the proxy sees it. */
export interface ExplainRequest {
  method: string;
  /** As given. */
  target: string;
  /** Lowercase names; repeated names joined with ", ". */
  headers: Record<string, string>;
}

/** What `canonicalPath` made of the target: the form authorized and forwarded. */
export type ExplainPath =
  | { ok: true; path: string; query: string; changed: boolean }
  | { ok: false; reason: string };

/** One permission of the matched source, as tried in order. */
export interface ExplainPermission {
  index: number;
  action: SnapshotAction;
  http: SnapshotHttpMatch;
  /** `pathPrefix /admin, methods GET`. */
  description: string;
  /** Whether this request meets it; only the first match decides. */
  matches: boolean;
}

export interface ExplainDecision {
  allow: boolean;
  /** The authorizer's code; "bad-path" when the path is refused before authorization. */
  code: AuthzCode | "bad-path";
  /** The same text the proxy puts in its 403 body and logs. */
  reason: string;
  /** What the destination's sidecar answers: null when it forwards the request. */
  status: 400 | 403 | null;
  /** HTTP (per request) or TCP (per connection: method, path and headers are not seen). */
  level: "http" | "tcp";
  /** Whether an Intention resource exists for the destination. */
  intention: boolean;
  /** The mesh's default policy, used when no source matches. */
  defaultAction: SnapshotAction;
  /** The rule that decided. */
  rule:
    | { kind: "source-action"; source: string; action: SnapshotAction }
    | { kind: "permission"; source: string; index: number; action: SnapshotAction; description: string }
    | { kind: "no-permission-matched"; source: string }
    | { kind: "default"; action: SnapshotAction }
    | { kind: "bad-path" };
  /** The matched source's permissions in order (present when it has L7 permissions). */
  permissions?: ExplainPermission[];
}

/** An instance that gets no traffic because its health is critical. */
export interface ExplainExcluded {
  id: string;
  address: string;
  port: number;
  status: "critical";
  checks: { id: string; name?: string | undefined; status: string; output: string }[];
}

export interface ExplainCluster {
  name: string;
  service: string;
  subset: string | null;
  /** The Resolver's filter for `subset`; null for no subset; "undefined-subset" when the Resolver does not define it. */
  subsetFilter: { tags?: string[]; meta?: Record<string, string> } | null | "undefined-subset";
  protocol: SnapshotProtocol;
  lb: LbConfig;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** Null when no request timeout is configured. */
  requestTimeoutMs: number | null;
  circuitBreaker: CircuitBreakerConfig;
  /** The cluster's retry policy as the snapshot carries it; null when it has none. */
  retries: unknown;
  /** Candidates, as the proxy has them (passing, then warning; sorted by id). */
  endpoints: EndpointConfig[];
  /** Instances of the service (in the subset) left out because they are critical. */
  excluded: ExplainExcluded[];
  /** Things to know about this cluster ("no healthy instance: 503"). */
  notes: string[];
  /** The Resolver's failover clusters, in order (a failover target has none of its own). */
  failover?: string[];
  /**
   * The cluster that takes this one's traffic now, by the sidecar's rule
   * (ClusterSet.resolve) on catalog health: itself while it has a healthy
   * instance, else its first failover cluster that has one, else itself
   * (503). Outlier ejections, kept by each proxy, are not seen here.
   */
  servedBy?: string;
}

/** One route of the destination's Route, as tried. */
export interface ExplainRouteTried {
  index: number;
  name: string | null;
  /** The route table's description: `route[1] "canary" (pathPrefix /api, header x-canary exact "1")`. */
  description: string;
  matched: boolean;
}

/** What the matched route does with the request. */
export type ExplainRouteAction =
  | {
      kind: "forward";
      cluster: string;
      /** The destination's Split, when the route names no subset; null otherwise. */
      splits: { cluster: string; weight: number }[] | null;
      /** The path forwarded after the route's prefix rewrite (query kept); null: forwarded as sent. */
      path: string | null;
      hostRewrite: string | null;
      /** The route's request timeout (retries included), overriding the cluster's; null: the cluster's. */
      timeoutMs: number | null;
      idleTimeoutMs: number | null;
      /** The route's retry policy, overriding the cluster's; null: the cluster's. */
      retries: RetriesConfig | null;
      fault: FaultConfig | null;
      mirror: MirrorConfig | null;
      requestHeaders: HeaderOpsConfig | null;
      responseHeaders: HeaderOpsConfig | null;
    }
  /** The calling sidecar answers the redirect itself: the request does not reach the destination. */
  | { kind: "redirect"; status: number; location: string }
  /** The calling sidecar answers itself. */
  | { kind: "directResponse"; status: number };

/** The destination's Route (HTTP listeners only), tried as the calling sidecar tries it. */
export interface ExplainRoute {
  /** The Route's routes in all. */
  count: number;
  /** Routes in order, up to and including the first that matched. Empty when the path is refused (400) first. */
  tried: ExplainRouteTried[];
  /** The first route that matched; null: none did, the listener's split or cluster takes the request. */
  taken: (ExplainRouteTried & { action: ExplainRouteAction }) | null;
}

export interface ExplainListener {
  service: string;
  protocol: SnapshotProtocol;
  /** The cluster for traffic no split takes. */
  cluster: string;
  /** The Split, when the destination has one; null otherwise. */
  split: {
    targets: { cluster: string; weight: number }[];
    /** How a target is chosen ("random per request, by weight"). */
    choice: string;
  } | null;
}

/** A proxyless gRPC instance (no sidecar: it gets its config over xDS) of the source or destination. */
export interface ExplainProxylessInstance {
  /** The instance id, which is its xDS node id. */
  id: string;
  status: "passing" | "warning" | "critical";
  /** Whether its ADS stream is open on this control plane now. */
  connected: boolean;
  /** The version it last ACKed per xDS type, while connected. */
  acked: Record<string, string>;
  /** Updates it refused, oldest first, with its own error message. */
  nacks: XdsNack[];
}

/** The proxyless side of a service the request involves. */
export interface ExplainProxyless {
  service: string;
  /** "source": `from`; "destination": the service that receives the request (`destination`). */
  role: "source" | "destination";
  /** False when the control plane serves no xDS: the instances cannot get config from it. */
  xdsEnabled: boolean;
  /** False when the caller may not read the service's xDS state: `connected` and `nacks` are then left empty. */
  visible: boolean;
  instances: ExplainProxylessInstance[];
}

export interface ExplainResponse {
  from: string;
  to: string;
  request: ExplainRequest;
  path: ExplainPath;
  decision: ExplainDecision;
  listener: ExplainListener;
  /** Null when the destination has no Route (or the listener is TCP). */
  route?: ExplainRoute | null;
  /**
   * The service whose sidecars receive the request and authorize it (the
   * decision above): `to`, unless a Resolver redirect, a route or failover
   * sends the request to another service.
   */
  destination?: string;
  /**
   * The clusters the request can go to: the matched route's cluster and
   * split targets, else the listener's default cluster and split targets
   * (none for a redirect or direct response), each once; then their
   * failover clusters.
   */
  clusters: ExplainCluster[];
  /** What applies, keyed by topic: routes, failover, redirect, outlier, retries, authz, source, proxyless. */
  notes: Record<string, string>;
  /**
   * The source and destination services that have proxyless gRPC instances,
   * with their xDS state (connected, NACKs). Empty when neither has any;
   * absent from an older control plane.
   */
  proxyless?: ExplainProxyless[];
}
