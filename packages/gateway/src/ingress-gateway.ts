/**
 * The ingress gateway process: a mesh member with its own identity.
 *
 * Start-up (fail closed, as the sidecar): admin listener → JWKS first loads →
 * workload certificate for service NAME (spiffe://…/svc/NAME) → register an
 * instance of NAME (tag "gateway", meta gateway-kind=ingress, upstreams =
 * the services its routes name, so its snapshot carries their clusters,
 * splits, resolvers and failover) → config stream → first snapshot → the
 * listeners open → ready. Destination sidecars see the gateway's identity,
 * so intentions apply to it like to any service.
 *
 * Health: one TTL check the gateway reports itself while its listeners serve.
 * Stop: not ready → deregister → close listeners (in-flight requests finish,
 * bounded) → streams, pool, identity.
 */
import { randomBytes } from "node:crypto";
import type { AddressInfo, Server } from "node:net";
import type { WeftClient } from "@weft/api/client";
import type { ProxySnapshot } from "@weft/api/snapshot";
import { Backoff, type Clock, describeError, isWeftError, systemClock, type TimerHandle } from "@weft/core";
import {
  ClusterSet,
  ConfigStream,
  closePeerPools,
  compileListenerRoutes,
  createAdminServer,
  type DataplaneLogger,
  Http1PeerPool,
  Http2PeerPool,
  type ListenerRoutes,
  retryUntil,
  StatsReporter,
  WorkloadIdentity,
} from "@weft/dataplane";
import { IngressListener } from "./ingress-listener.js";
import { buildProviders, type Providers } from "./jwt/providers.js";
import { GatewayMetrics } from "./metrics.js";
import { TcpIngressListener } from "./tcp-listener.js";
import type { GatewayConfig } from "./types.js";

export interface HostPort {
  host: string;
  port: number;
}

export interface IngressGatewayOptions {
  client: WeftClient;
  config: GatewayConfig;
  logger: DataplaneLogger;
  admin?: HostPort;
  /** The address registered in the catalog; default the first listener's (127.0.0.1 for a wildcard). */
  advertise?: string;
  instanceId?: string;
  clock?: Clock;
  certTtl?: string;
  drainTimeoutMs?: number;
  certPollMs?: number;
  /** Least time between JWKS refetches caused by unknown key ids. Default 10 s. */
  jwksMinRefreshMs?: number;
  /**
   * Follow the Gateway resource in the control plane: each stored change is
   * parsed with `parse` (the schema lives at the config boundary, in the
   * caller) and applied to the running listeners (see applyConfig).
   */
  watch?: { parse(doc: unknown): GatewayConfig };
}

const CHECK_ID = "gateway";
const CHECK_TTL_MS = 10_000;

export function routeServices(config: GatewayConfig): string[] {
  const out = new Set<string>();
  for (const l of config.listeners) for (const r of l.routes) out.add(r.service);
  return [...out].sort();
}

export class IngressGateway {
  readonly instanceId: string;
  readonly metrics: GatewayMetrics;
  private readonly clock: Clock;
  /** Golden stats pushed to the control plane, like a sidecar's. */
  private stats: StatsReporter | undefined;
  private readonly log: DataplaneLogger;
  private readonly clusters: ClusterSet;
  private routes = new Map<string, ListenerRoutes>();
  private providers: Providers;
  private config: GatewayConfig;
  private identity: WorkloadIdentity | undefined;
  private pool: Http2PeerPool | undefined;
  private h1Pool: Http1PeerPool | undefined;
  private stream: ConfigStream | undefined;
  private readonly listeners: (IngressListener | TcpIngressListener)[] = [];
  private admin: Server | undefined;
  private heartbeat: TimerHandle | undefined;
  private registered = false;
  private stopping = false;
  private ready = false;
  private readonly stopAc = new AbortController();

  constructor(private readonly o: IngressGatewayOptions) {
    this.clock = o.clock ?? systemClock;
    this.log = o.logger;
    this.config = o.config;
    this.instanceId = o.instanceId ?? `${o.config.name}-${randomBytes(5).toString("hex")}`;
    this.clusters = new ClusterSet(this.clock);
    this.metrics = new GatewayMetrics(o.config.name);
    this.providers = buildProviders(o.config.jwtProviders, {
      clock: this.clock,
      logger: this.log,
      ...(o.jwksMinRefreshMs !== undefined ? { minRefreshMs: o.jwksMinRefreshMs } : {}),
    });
  }

  private newProviders(config: GatewayConfig): Providers {
    return buildProviders(config.jwtProviders, {
      clock: this.clock,
      logger: this.log,
      ...(this.o.jwksMinRefreshMs !== undefined ? { minRefreshMs: this.o.jwksMinRefreshMs } : {}),
    });
  }

  /** Bound ports: admin and each listener (in config order). */
  get ports(): { admin: number; listeners: number[] } {
    return {
      admin: (this.admin?.address() as AddressInfo | null)?.port ?? 0,
      listeners: this.listeners.map((l) => l.boundPort),
    };
  }

  get snapshot(): ProxySnapshot | undefined {
    return this.stream?.snapshot;
  }

  listener(i: number): IngressListener | TcpIngressListener | undefined {
    return this.listeners[i];
  }

  async start(): Promise<void> {
    if (this.o.admin) await this.startAdmin(this.o.admin);
    const failed = await this.providers.start();
    for (const name of failed) {
      this.log.warn(
        { provider: name },
        "JWKS not loaded yet: tokens of this provider are refused until it is",
      );
    }
    const service = this.config.name;
    this.identity = await this.retry("obtain a workload certificate", () =>
      WorkloadIdentity.start({
        client: this.o.client,
        service,
        instanceId: this.instanceId,
        ...(this.o.certTtl ? { ttl: this.o.certTtl } : {}),
        clock: this.clock,
        logger: this.log,
      }),
    );
    this.pool = new Http2PeerPool({ source: this.identity, logger: this.log });
    // As in the sidecar (WEFT_PEER_HTTP1=0 turns it off): HTTP/1.1 to peers for HTTP/1.1 requests.
    if (process.env.WEFT_PEER_HTTP1 !== "0") this.h1Pool = new Http1PeerPool({ source: this.identity });
    // Listeners are built (certificates read, JWT requirements resolved) before anything is registered.
    for (const l of this.config.listeners) {
      if (l.protocol === "tcp") {
        this.listeners.push(
          new TcpIngressListener({
            listener: l,
            upstream: (s) => this.routes.get(s),
            source: this.identity,
            logger: this.log,
            onConnection: (e) =>
              this.metrics.request(l.port, e.peer, e.result === "ok" ? 200 : 503, e.result),
          }),
        );
        continue;
      }
      this.listeners.push(
        new IngressListener({
          listener: l,
          trustedHops: this.config.trustedHops,
          providers: this.providers.byName,
          upstream: (s) => this.routes.get(s),
          clusters: this.clusters,
          pool: this.pool,
          ...(this.h1Pool !== undefined ? { h1Pool: this.h1Pool } : {}),
          logger: this.log,
          clock: this.clock,
          ...(this.o.certPollMs !== undefined ? { certPollMs: this.o.certPollMs } : {}),
          onRequest: (e) => {
            this.metrics.request(e.listener, e.upstream, e.status, e.flags);
            // The edge gateway -> service, in the control plane's golden metrics (weft top, the UI).
            this.stats?.record("outbound", this.o.config.name, e.upstream, e);
          },
        }),
      );
    }
    await this.retry("register the gateway", () => this.register());
    this.stream = new ConfigStream({
      client: this.o.client,
      instanceId: () => this.instanceId,
      apply: (s) => this.apply(s),
      onInstanceLost: () => this.register(),
      onStatus: (st) => this.metrics.connected(st.connected),
      logger: this.log,
      clock: this.clock,
    });
    this.stream.start();
    this.stats = new StatsReporter({
      client: this.o.client,
      instanceId: this.instanceId,
      clock: this.clock,
      logger: this.log,
    });
    this.stats.start();
    await Promise.race([this.stream.firstSnapshot(), this.stopped()]);
    if (this.stopping) return;
    for (const l of this.listeners) await l.listen();
    this.ready = true;
    this.heartbeat = this.clock.setInterval(() => void this.beat(), CHECK_TTL_MS / 3);
    await this.beat();
    if (this.o.watch) void this.follow(this.o.watch.parse);
    this.log.info(
      {
        gateway: service,
        instance: this.instanceId,
        listeners: this.ports.listeners,
        admin: this.ports.admin,
      },
      "gateway ready",
    );
  }

  private apply(s: ProxySnapshot): void {
    this.clusters.apply(s);
    this.routes = new Map(
      s.upstreams.map((u) => [u.service, compileListenerRoutes(u, this.clusters, this.clock)]),
    );
    this.log.info({ version: s.version, clusters: Object.keys(s.clusters).length }, "config applied");
  }

  private advertised(): { address: string; port: number } {
    const first = this.config.listeners[0];
    const host = this.o.advertise ?? first?.address ?? "127.0.0.1";
    const address = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
    return { address, port: first?.port ?? 1 };
  }

  private async register(): Promise<void> {
    if (this.stopping) return;
    const { address, port } = this.advertised();
    const ports: Record<string, number> = {};
    this.config.listeners.forEach((l, i) => {
      ports[`listener-${i}`] = l.port;
    });
    const admin = this.ports.admin;
    if (admin) ports.admin = admin;
    await this.o.client.registerInstance({
      id: this.instanceId,
      service: this.config.name,
      address,
      port,
      ports,
      tags: ["gateway"],
      meta: { "gateway-kind": this.config.type },
      checks: [
        {
          id: CHECK_ID,
          name: "gateway listeners serving",
          ttl: `${CHECK_TTL_MS}ms`,
          deregisterCriticalAfter: "1m",
          status: this.ready ? "passing" : "critical",
        },
      ],
      // The catalog names an upstream by a local port; the gateway has none per upstream (its
      // listeners route by host and path), so the ports are placeholders that are never bound.
      proxy: {
        protocol: "http",
        upstreams: routeServices(this.config).map((service, i) => ({ service, localPort: i + 1 })),
      },
    });
    this.registered = true;
  }

  private async beat(): Promise<void> {
    if (this.stopping) return;
    try {
      await this.o.client.updateCheck(this.instanceId, CHECK_ID, {
        status: this.ready ? "passing" : "critical",
        output: this.ready ? `serving on ${this.ports.listeners.join(", ")}` : "starting",
      });
    } catch (e) {
      if (isWeftError(e, "WEFT_ERR_NOT_FOUND")) await this.register().catch(() => {});
      else this.log.warn({ err: describeError(e) }, "could not report gateway health");
    }
  }

  private async startAdmin(at: HostPort): Promise<void> {
    const server = createAdminServer({
      notReady: () => {
        const reasons: string[] = [];
        if (this.stopping) reasons.push("draining");
        if (!this.identity) reasons.push("no workload certificate yet");
        if (!this.registered) reasons.push("not registered with the control plane");
        if (!this.stream?.snapshot) reasons.push("no config snapshot yet");
        if (!this.ready) reasons.push("listeners not open");
        return reasons;
      },
      config: () => ({
        gateway: this.config.name,
        instanceId: this.instanceId,
        listeners: this.ports.listeners,
        spiffeId: this.identity?.status().spiffeId ?? null,
        controlPlane: this.stream?.state ?? { connected: false },
        snapshot: this.stream?.snapshot ?? null,
      }),
      metrics: async () => ({
        contentType: "text/plain; version=0.0.4; charset=utf-8",
        body: this.metrics.render(),
      }),
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(at.port, at.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.admin = server;
  }

  private stopped(): Promise<void> {
    return new Promise((resolve) =>
      this.stopAc.signal.addEventListener("abort", () => resolve(), { once: true }),
    );
  }

  /** Until it succeeds or the gateway stops; a refused registration (validation) is not retried. */
  private retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return retryUntil(fn, {
      what,
      clock: this.clock,
      logger: this.log,
      signal: this.stopAc.signal,
      alsoFatal: ["WEFT_ERR_VALIDATION"],
    });
  }

  /** Config changes applied (tests, logs). */
  configChanges = 0;

  /** Blocking queries on the Gateway kind; each change of this gateway's resource is applied. */
  private async follow(parse: (doc: unknown) => GatewayConfig): Promise<void> {
    const backoff = new Backoff({ baseMs: 500, maxMs: 10_000 });
    let index = 0;
    while (!this.stopping) {
      try {
        const r = await this.o.client.listConfig("Gateway", {
          index,
          wait: "30s",
          signal: this.stopAc.signal,
        });
        backoff.reset();
        if (r.index === index) continue;
        index = r.index;
        const doc = r.value.find((g) => g.name === this.config.name);
        if (doc === undefined) {
          this.log.warn({}, "the Gateway resource was deleted; serving its last config");
          continue;
        }
        await this.applyConfig(parse(doc));
      } catch (e) {
        if (this.stopping) return;
        const delay = backoff.next();
        this.log.warn({ err: describeError(e), retryInMs: delay }, "could not follow the Gateway resource");
        await new Promise<void>((resolve) => {
          const t = this.clock.setTimeout(resolve, delay);
          this.stopAc.signal.addEventListener("abort", () => {
            t.cancel();
            resolve();
          });
        });
      }
    }
  }

  /**
   * Applies a new version of the Gateway to the running process: routes,
   * JWT providers and requirements, CORS, rate limits, trusted hops and the
   * services routed to (the instance is registered again so the snapshot
   * covers them). A listener whose port, address, protocol, TLS files or
   * parser limits changed keeps its old config (a restart applies those; it
   * is logged). A config that cannot be applied changes nothing.
   */
  async applyConfig(next: GatewayConfig): Promise<void> {
    const prev = this.config;
    if (JSON.stringify(next) === JSON.stringify(prev)) return;
    const fixed = (l: GatewayConfig["listeners"][number] | undefined) =>
      l === undefined ? "" : JSON.stringify([l.port, l.address, l.protocol, l.tls, l.limits]);
    let providers = this.providers;
    if (JSON.stringify(next.jwtProviders) !== JSON.stringify(prev.jwtProviders)) {
      providers = this.newProviders(next);
      const failed = await providers.start();
      if (failed.length > 0) this.log.warn({ providers: failed }, "JWKS of the new config not loaded yet");
    }
    const restartNeeded: number[] = [];
    try {
      // this.listeners[k] serves prev.listeners[k].
      prev.listeners.forEach((l, k) => {
        const n = next.listeners[k];
        const running = this.listeners[k];
        if (running === undefined) return;
        if (n === undefined || fixed(n) !== fixed(l)) {
          restartNeeded.push(l.port);
          return;
        }
        if (running instanceof TcpIngressListener) running.update(n);
        else running.update(n, providers.byName, next.trustedHops);
      });
    } catch (e) {
      if (providers !== this.providers) providers.dispose();
      this.log.warn({ err: describeError(e) }, "new Gateway config refused; keeping the previous one");
      return;
    }
    if (next.listeners.length > prev.listeners.length)
      restartNeeded.push(...next.listeners.slice(prev.listeners.length).map((l) => l.port));
    if (providers !== this.providers) {
      this.providers.dispose();
      this.providers = providers;
    }
    this.config = {
      ...next,
      listeners: next.listeners.map((l, k) =>
        restartNeeded.includes(l.port) ? (prev.listeners[k] ?? l) : l,
      ),
    };
    this.configChanges++;
    if (restartNeeded.length > 0) {
      this.log.warn(
        { ports: restartNeeded },
        "listener address, protocol, TLS or limits changed: a restart applies them",
      );
    }
    if (routeServices(next).join() !== routeServices(prev).join())
      await this.register().catch((e: unknown) => {
        this.log.warn({ err: describeError(e) }, "could not register the new upstreams");
      });
    this.log.info({ changes: this.configChanges }, "gateway config applied");
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.ready = false;
    this.stopAc.abort();
    this.heartbeat?.cancel();
    await this.stream?.stop();
    await this.stats?.stop();
    if (this.registered) {
      await this.o.client.deregisterInstance(this.instanceId).catch((e: unknown) => {
        this.log.warn(
          { err: describeError(e) },
          "could not deregister; the control plane will expire the instance",
        );
      });
    }
    const drainMs = this.o.drainTimeoutMs ?? 10_000;
    const closing = Promise.all(this.listeners.map((l) => l.close()));
    const drained = await Promise.race([
      closing.then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), drainMs).unref()),
    ]);
    if (!drained) for (const l of this.listeners) l.destroy();
    await closePeerPools(drained, this.pool, this.h1Pool);
    this.providers.dispose();
    this.identity?.dispose();
    await new Promise<void>((resolve) => (this.admin ? this.admin.close(() => resolve()) : resolve()));
  }
}
