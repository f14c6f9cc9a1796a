/**
 * `GET /v1/explain` (docs/api.md, `weft explain`): what the mesh would do
 * with one request from a service to another, computed from the live config
 * by the same code the sidecars run (the snapshot builder, `@weft/api/authz`).
 *
 * Types only, zod-free: the CLI and the UI read them without loading schemas.
 */
import type { AuthzCode } from "./authz/authorizer.js";
import type {
  CircuitBreakerConfig,
  EndpointConfig,
  LbConfig,
  SnapshotAction,
  SnapshotHttpMatch,
  SnapshotProtocol,
} from "./snapshot.js";

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
  /** Request headers, in order; repeated names are joined with "," as the proxy does. */
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
  /** Lowercase names; repeated names joined with ",". */
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

export interface ExplainResponse {
  from: string;
  to: string;
  request: ExplainRequest;
  path: ExplainPath;
  decision: ExplainDecision;
  listener: ExplainListener;
  /** The listener's default cluster first, then the split targets, each once. */
  clusters: ExplainCluster[];
  /** What is not implemented or not configured, keyed by topic: routes, failover, redirect, retries, source. */
  notes: Record<string, string>;
}
