/**
 * The proxy's clusters (Envoy's cluster manager): one per snapshot cluster,
 * each with a load balancer built from its `lb` config. A new snapshot
 * updates the endpoints of a cluster whose policy is unchanged (its
 * balancer keeps per-endpoint state such as in-flight counts), replaces the
 * balancer when the policy changed, and drops clusters no longer present.
 * A cluster object is what the HTTP and TCP engines see as an upstream.
 */

import { type FailoverView, servingCluster } from "@weft/api/routing";
import type {
  ClusterConfig,
  HashPolicy,
  LbConfig,
  ProxySnapshot,
  SnapshotProtocol,
} from "@weft/api/snapshot";
import { type Clock, systemClock } from "@weft/core";
import { type BreakerLimit, CircuitBreaker } from "../cluster/breaker.js";
import { type Balancer, createBalancer } from "../cluster/lb/index.js";
import { OutlierDetector, type OutlierEjection, type TryResult } from "../cluster/outlier.js";
import { RetryBudget } from "../http/retry-budget.js";
import { compileRetryPolicy, type RetryPolicy } from "../http/retry-policy.js";
import type { RemoteAddress } from "../http/types.js";
import type { PickedEndpoint } from "../tcp/tcp-proxy.js";

/** What the clusters tell the sidecar about (metrics, logs). Must not throw. */
export interface ClusterEvents {
  onOverflow?(service: string, limit: BreakerLimit): void;
  onEject?(service: string, e: OutlierEjection): void;
}

export class LiveCluster {
  private balancer: Balancer;
  /** Counters outlive config updates (requests in flight still hold their leases). */
  readonly breaker: CircuitBreaker;
  /** Undefined while the service has no outlierDetection; kept across updates while it has. */
  private outlier: OutlierDetector | undefined;
  private lbKey: string;
  private policy: RetryPolicy | undefined;
  private budget: RetryBudget | undefined;

  constructor(
    public config: ClusterConfig,
    private readonly clock: Clock = systemClock,
    private readonly events: ClusterEvents = {},
  ) {
    this.balancer = createBalancer(config.lb);
    this.lbKey = lbKeyOf(config.lb);
    this.balancer.update(config.endpoints);
    this.applyRetries(config);
    this.breaker = new CircuitBreaker(config.circuitBreaker, (limit) =>
      this.events.onOverflow?.(this.config.service, limit),
    );
    this.applyOutlier(config);
  }

  get name(): string {
    return this.config.name;
  }
  get service(): string {
    return this.config.service;
  }
  get protocol(): SnapshotProtocol {
    return this.config.protocol;
  }
  get connectTimeoutMs(): number {
    return this.config.connectTimeoutMs;
  }
  get idleTimeoutMs(): number {
    return this.config.idleTimeoutMs;
  }
  get requestTimeoutMs(): number | undefined {
    return this.config.requestTimeoutMs;
  }
  /** Compiled once per config; undefined when the service has no retries. */
  get retryPolicy(): RetryPolicy | undefined {
    return this.policy;
  }
  /** Lives as long as the cluster: a config change keeps what the window has counted. */
  get retryBudget(): RetryBudget | undefined {
    return this.policy ? this.budget : undefined;
  }

  private applyRetries(config: ClusterConfig): void {
    this.policy = compileRetryPolicy(config.retries);
    const b = config.retries?.budget;
    if (b === undefined) return;
    if (this.budget) this.budget.configure(b.percent, b.minRetriesPerSecond);
    else this.budget = new RetryBudget({ ...b, clock: this.clock });
  }

  private applyOutlier(config: ClusterConfig): void {
    const od = config.outlierDetection;
    if (od === undefined) {
      this.outlier = undefined;
      return;
    }
    if (this.outlier) this.outlier.configure(od);
    else {
      this.outlier = new OutlierDetector(od, this.clock, (e) =>
        this.events.onEject?.(this.config.service, e),
      );
    }
    this.outlier.setEndpoints(config.endpoints.map((e) => e.id));
  }

  /** How a try at `endpointId` ended, for outlier detection. Must not throw. */
  observe(endpointId: string, r: TryResult): void {
    this.outlier?.report(endpointId, r);
  }

  /** Whether any endpoint is left to pick: one at least, and not all of them ejected. */
  available(): boolean {
    const n = this.config.endpoints.length;
    if (n === 0) return false;
    const ejected = this.outlier?.ejected();
    return ejected === undefined || ejected.size < n;
  }

  /** The endpoints outlier detection keeps out of rotation right now. */
  ejected(): ReadonlySet<string> {
    return this.outlier?.ejected() ?? NONE;
  }

  update(config: ClusterConfig): void {
    const key = lbKeyOf(config.lb);
    if (key !== this.lbKey) {
      this.balancer = createBalancer(config.lb);
      this.lbKey = key;
    }
    this.config = config;
    this.balancer.update(config.endpoints);
    this.applyRetries(config);
    this.breaker.configure(config.circuitBreaker);
    this.applyOutlier(config);
  }

  /** Ejected endpoints join the caller's exclusions: the balancer never sees them. */
  pick(ctx: { hashKey?: string; exclude: ReadonlySet<string> }): PickedEndpoint | undefined {
    const ejected = this.outlier?.ejected();
    let c = ctx;
    if (ejected !== undefined && ejected.size > 0) {
      for (const id of ctx.exclude) ejected.add(id);
      c = ctx.hashKey === undefined ? { exclude: ejected } : { hashKey: ctx.hashKey, exclude: ejected };
    }
    const r = this.balancer.pick(c);
    return r.type === "complete" ? r : undefined;
  }

  /**
   * The ring-hash key of a request: the first `hashOn` input present, else the source address
   * (read from `remote` only then: it is a getpeername(2) call on a connection's first read).
   */
  hashKey(headers: Record<string, string | string[] | undefined>, remote: RemoteAddress): string | undefined {
    const lb = this.config.lb;
    if (lb.policy !== "ring_hash") return undefined;
    for (const h of lb.hashOn ?? []) {
      const v = hashInput(h, headers, remote);
      if (v !== undefined) return v;
    }
    return lb.hashOn ? undefined : remote?.remoteAddress;
  }
}

function hashInput(
  h: HashPolicy,
  headers: Record<string, string | string[] | undefined>,
  remote: RemoteAddress,
): string | undefined {
  if (h.sourceIp) return remote?.remoteAddress;
  if (h.header !== undefined) {
    const v = headers[h.header.toLowerCase()];
    return Array.isArray(v) ? v.join(",") : v;
  }
  if (h.cookie !== undefined) {
    const raw = headers.cookie;
    const all = Array.isArray(raw) ? raw.join("; ") : raw;
    if (!all) return undefined;
    for (const part of all.split(";")) {
      const eq = part.indexOf("=");
      if (eq > 0 && part.slice(0, eq).trim() === h.cookie) return part.slice(eq + 1).trim();
    }
  }
  return undefined;
}

function lbKeyOf(lb: LbConfig): string {
  return JSON.stringify([lb.policy, lb.choiceCount, lb.ringSize, lb.hashOn]);
}

const NONE: ReadonlySet<string> = new Set();
const NO_CLUSTERS: LiveCluster[] = [];

export class ClusterSet {
  private readonly clusters = new Map<string, LiveCluster>();

  /** `clock` drives the clusters' retry budgets and outlier detectors (virtual in tests). */
  constructor(
    private readonly clock: Clock = systemClock,
    private readonly events: ClusterEvents = {},
  ) {}

  /** Builds every balancer first, so a snapshot that cannot be applied throws before anything changed. */
  apply(snapshot: ProxySnapshot): void {
    const next = new Map<string, LiveCluster | ClusterConfig>();
    for (const [name, cfg] of Object.entries(snapshot.clusters)) {
      const live = this.clusters.get(name);
      if (live && lbKeyOf(live.config.lb) === lbKeyOf(cfg.lb)) next.set(name, cfg);
      else next.set(name, new LiveCluster(cfg, this.clock, this.events));
    }
    for (const name of [...this.clusters.keys()]) if (!next.has(name)) this.clusters.delete(name);
    for (const [name, v] of next) {
      if (v instanceof LiveCluster) this.clusters.set(name, v);
      else this.clusters.get(name)?.update(v);
    }
  }

  get(name: string): LiveCluster | undefined {
    return this.clusters.get(name);
  }

  /**
   * The cluster that takes traffic for `name`: itself while it has an
   * endpoint to pick, else the first of its failover clusters that has one
   * (Resolver failover; a target's own failover is not followed), else
   * itself, so the request fails as it would have (503 UH).
   */
  resolve(name: string): LiveCluster | undefined {
    return servingCluster(name, this.failoverView);
  }

  private readonly failoverView: FailoverView<LiveCluster> = {
    get: (n) => this.clusters.get(n),
    failover: (c) => c.config.failover,
    available: (c) => c.available(),
  };

  /**
   * The failover clusters of `name` after `chosen` that have an endpoint
   * now, in order: where a request goes next when every endpoint of the
   * chosen cluster refused it before anything was sent (an instance that
   * died before its health check noticed). Empty for a cluster without
   * failover (no allocation).
   */
  fallbacks(name: string, chosen: LiveCluster): LiveCluster[] {
    const failover = this.clusters.get(name)?.config.failover;
    if (failover === undefined) return NO_CLUSTERS;
    const start = chosen.name === name ? 0 : failover.indexOf(chosen.name) + 1;
    const out: LiveCluster[] = [];
    for (let i = start; i < failover.length; i++) {
      const c = this.clusters.get(failover[i] as string);
      if (c?.available() && c !== chosen) out.push(c);
    }
    return out;
  }

  names(): string[] {
    return [...this.clusters.keys()];
  }
}
