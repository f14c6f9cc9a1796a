/**
 * The sidecar: assembles identity, registration, health, config stream,
 * inbound and outbound listeners and the admin listener into one proxy.
 *
 * Start-up order (fail closed: nothing is served without an identity and a
 * config): admin listener (so /ready answers "not yet") -> identity (key,
 * CSR, certificate; retried while the control plane is away) -> inbound mTLS
 * listener -> register the instance (address = the inbound listener, one TTL
 * check fed by the app health checker) -> config stream -> first snapshot
 * applied -> outbound listeners -> ready.
 *
 * Stop (SIGTERM): not ready -> deregister (peers stop picking us) -> stop
 * accepting -> finish in-flight requests (bounded by drainTimeoutMs) ->
 * close streams, timers, sockets.
 */
import { randomBytes } from "node:crypto";
import net, { type AddressInfo } from "node:net";
import type { TLSSocket, Server as TlsServer } from "node:tls";
import { type Authorizer, canonicalPath, compileAuthz } from "@weft/api/authz";
import type { WeftClient } from "@weft/api/client";
import type { ProxySnapshot, SnapshotProtocol } from "@weft/api/snapshot";
import { type Clock, describeError, isWeftError, systemClock, weftError } from "@weft/core";
import { HealthChecker } from "../health/checker.js";
import type { HealthCheckSpec, ProbeResult } from "../health/result.js";
import { closePeerPools, Http1PeerPool } from "../http/h1-peer-pool.js";
import { Http2PeerPool } from "../http/h2-peer-pool.js";
import { createInboundHttp } from "../http/inbound-http.js";
import { createOutboundHttp } from "../http/outbound-http.js";
import { InboundRateLimits, type RateLimitVerdict } from "../http/rate-limit.js";
import { NO_ROUTE_CONFIG } from "../http/route-actions.js";
import { WorkloadIdentity } from "../identity/workload-identity.js";
import type { DataplaneLogger } from "../logger.js";
import { proxyInboundTcp, proxyOutboundTcp, TCP_ALPN } from "../tcp/tcp-proxy.js";
import { createMtlsServer, type PeerIdentity } from "../transport/mtls.js";
import { createAdminServer } from "./admin.js";
import { ClusterSet } from "./clusters.js";
import { ConfigStream } from "./config-stream.js";
import { capConnections, maxConnections } from "./connection-cap.js";
import { compileListenerRoutes, type ListenerRoutes } from "./listener-routes.js";
import { ProxyMetrics } from "./metrics.js";
import { RequestObservers } from "./request-observer.js";
import { retryUntil } from "./retry-until.js";
import { StatsReporter } from "./stats-reporter.js";
import { TapHub } from "./tap.js";

export interface HostPort {
  host: string;
  port: number;
}

export interface SidecarOptions {
  client: WeftClient;
  service: string;
  app: HostPort;
  /** Where the inbound mTLS listener binds (port 0 = any). */
  inbound: HostPort;
  /** The address peers use; default the inbound host (127.0.0.1 when it is a wildcard). */
  advertise?: string;
  admin?: HostPort;
  upstreams: { service: string; localPort: number }[];
  /** What the app speaks (ServiceDefaults.protocol overrides it in the snapshot). */
  protocol: SnapshotProtocol;
  health: HealthCheckSpec;
  healthIntervalMs: number;
  healthTimeoutMs: number;
  tags: string[];
  meta: Record<string, string>;
  datacenter?: string;
  /** The instance's locality (Resolver locality failover prefers the caller's own). */
  locality?: { region: string; zone?: string };
  instanceId?: string;
  /** Requested certificate lifetime (default: the mesh's leaf TTL). */
  certTtl?: string;
  logger: DataplaneLogger;
  clock?: Clock;
  /** The most a drain waits for in-flight requests. Default 10 s. */
  drainTimeoutMs?: number;
  /** Golden-metric push interval (stats-reporter.ts). Default: WEFT_STATS_INTERVAL_MS, else 2 s. */
  statsIntervalMs?: number;
  /**
   * Where access-log lines go (a pino logger on its own async destination). Absent: none are
   * written; the snapshot decides, per service, whether and how many requests are logged.
   */
  accessLog?: DataplaneLogger;
  /** Batch delay of span export when the mesh configures tracing (default 1 s). */
  traceExportDelayMs?: number;
}

const HEALTH_CHECK_ID = "app";
/** How long the control plane keeps an instance whose checks have been critical (its sidecar died). */
const DEREGISTER_CRITICAL_AFTER = "1m";

function advertisedHost(o: SidecarOptions): string {
  if (o.advertise) return o.advertise;
  const h = o.inbound.host;
  return h === "0.0.0.0" || h === "::" || h === "" ? "127.0.0.1" : h;
}

/** Binds `server`; a failure names the listener and the address (a port in use is a usage error, exit 2). */
function listen(server: net.Server, at: HostPort, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      const why =
        e.code === "EADDRINUSE"
          ? "the address is already in use"
          : e.code === "EACCES"
            ? "permission denied"
            : e.message;
      reject(
        weftError(
          "WEFT_ERR_USAGE",
          { detail: `${what}: cannot listen on ${at.host}:${at.port}: ${why}` },
          { cause: e },
        ),
      );
    };
    server.once("error", onError);
    server.listen(at.port, at.host, () => {
      server.off("error", onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: net.Server | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!server?.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
  });
}

export class Sidecar {
  readonly metrics: ProxyMetrics;
  /** Golden metrics pushed to the control plane, and the admin /tap stream: fed by the same request events. */
  private stats: StatsReporter | undefined;
  readonly tap = new TapHub();
  readonly instanceId: string;
  /** Tracing and access logs, configured by each snapshot. */
  private readonly observers: RequestObservers;
  private readonly clock: Clock;
  private readonly log: DataplaneLogger;
  private readonly clusters: ClusterSet;
  /** Per upstream service: its listener's routes, split and failover, compiled once per snapshot. */
  private listenerRoutes = new Map<string, ListenerRoutes>();
  private authorizer: Authorizer | undefined;
  /** Inbound local rate limits of the snapshot in use (kept across snapshots with the same limits). */
  private readonly rateLimits: InboundRateLimits;
  private identity: WorkloadIdentity | undefined;
  private inboundServer: TlsServer | undefined;
  private adminServer: net.Server | undefined;
  private readonly outboundServers: net.Server[] = [];
  private pool: Http2PeerPool | undefined;
  private h1Pool: Http1PeerPool | undefined;
  private inboundHttp: ReturnType<typeof createInboundHttp> | undefined;
  private stream: ConfigStream | undefined;
  private health: HealthChecker | undefined;
  private registered = false;
  private stopping = false;
  private inboundPort = 0;
  private adminPort = 0;
  private readonly stopAc = new AbortController();

  constructor(private readonly o: SidecarOptions) {
    this.clock = o.clock ?? systemClock;
    this.rateLimits = new InboundRateLimits(this.clock);
    this.log = o.logger;
    // Breaker overflows and outlier ejections go to the metrics and the log; outlier timing runs on the sidecar's clock.
    this.clusters = new ClusterSet(this.clock, {
      onOverflow: (service, limit) =>
        this.metrics.breakerOverflows.inc({ destination_service: service, limit }),
      onEject: (service, e) => {
        this.metrics.outlierEjections.inc({ destination_service: service });
        this.log.warn(
          {
            upstream: service,
            endpoint: e.endpointId,
            ejections: e.ejections,
            ms: e.durationMs,
            reason: e.reason,
          },
          "endpoint ejected by outlier detection",
        );
      },
    });
    this.metrics = new ProxyMetrics(o.service, () => {
      let outbound = 0;
      for (const h of this.outboundByService.values()) outbound += h.inFlight();
      return { inbound: this.inboundHttp?.inFlight() ?? 0, outbound };
    });
    this.instanceId = o.instanceId ?? `${o.service}-${randomBytes(5).toString("hex")}`;
    this.observers = new RequestObservers({
      service: o.service,
      instanceId: this.instanceId,
      logger: this.log,
      ...(o.accessLog !== undefined ? { accessLog: o.accessLog } : {}),
      ...(o.traceExportDelayMs !== undefined ? { traceExportDelayMs: o.traceExportDelayMs } : {}),
    });
  }

  get ports(): { inbound: number; admin: number } {
    return { inbound: this.inboundPort, admin: this.adminPort };
  }

  get snapshot(): ProxySnapshot | undefined {
    return this.stream?.snapshot;
  }

  /** Resolves when the sidecar serves (first snapshot applied, listeners open). */
  async start(): Promise<void> {
    if (this.o.admin) {
      this.adminServer = createAdminServer({
        notReady: () => this.notReady(),
        config: () => this.configView(),
        metrics: async () => ({
          contentType: this.metrics.registry.contentType,
          body: await this.metrics.registry.metrics(),
        }),
        tap: (req, res) => this.tap.handle(req, res),
      });
      this.adminPort = await listen(this.adminServer, this.o.admin, "admin listener (--admin)");
    }
    this.identity = await this.retry("obtain a workload certificate", () =>
      WorkloadIdentity.start({
        client: this.o.client,
        service: this.o.service,
        instanceId: this.instanceId,
        ...(this.o.certTtl ? { ttl: this.o.certTtl } : {}),
        clock: this.clock,
        logger: this.log,
      }),
    );
    this.metrics.certExpiry.set(this.identity.status().notAfter / 1000);
    this.identity.onChange(() => this.metrics.certExpiry.set((this.identity?.status().notAfter ?? 0) / 1000));
    this.pool = new Http2PeerPool({ source: this.identity, logger: this.log });
    // HTTP/1.1 apps' requests cross the mesh on kept-alive HTTP/1.1 (http/README.md says why);
    // WEFT_PEER_HTTP1=0 sends everything over the HTTP/2 sessions instead (for comparisons).
    if (process.env.WEFT_PEER_HTTP1 !== "0") this.h1Pool = new Http1PeerPool({ source: this.identity });
    this.startInbound();
    this.inboundPort = await listen(
      this.inboundServer as TlsServer,
      this.o.inbound,
      "inbound listener (--inbound)",
    );
    await this.retry("register the instance", () => this.register());
    this.startHealth();
    this.stats = new StatsReporter({
      client: this.o.client,
      instanceId: this.instanceId,
      clock: this.clock,
      logger: this.log,
      ...(this.o.statsIntervalMs !== undefined ? { intervalMs: this.o.statsIntervalMs } : {}),
    });
    this.stats.start();
    this.stream = new ConfigStream({
      client: this.o.client,
      instanceId: () => this.instanceId,
      apply: (s) => this.apply(s),
      onInstanceLost: () => this.register(),
      onStatus: (st) => this.metrics.configConnected.set(st.connected ? 1 : 0),
      logger: this.log,
      clock: this.clock,
    });
    this.stream.start();
    await Promise.race([this.stream.firstSnapshot(), this.stopped()]);
    if (this.stopping) return;
    // Spans of the first requests are recorded too: ready only once the exporter (if any) is loaded.
    await this.observers.tracing.ready();
    await this.startOutbound();
    this.metrics.ready.set(1);
    this.log.info(
      {
        service: this.o.service,
        instance: this.instanceId,
        inbound: `${advertisedHost(this.o)}:${this.inboundPort}`,
        admin: this.adminServer ? `${this.o.admin?.host}:${this.adminPort}` : undefined,
        upstreams: this.o.upstreams.map((u) => `${u.service}=127.0.0.1:${u.localPort}`),
      },
      "sidecar ready",
    );
  }

  private stopped(): Promise<void> {
    return new Promise((resolve) =>
      this.stopAc.signal.addEventListener("abort", () => resolve(), { once: true }),
    );
  }

  /** Runs `fn` until it succeeds or the sidecar stops, with jittered backoff (a proxy started during an outage waits). */
  private retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return retryUntil(fn, { what, clock: this.clock, logger: this.log, signal: this.stopAc.signal });
  }

  private async register(): Promise<void> {
    // A draining sidecar deregisters itself; nothing may bring the instance back.
    if (this.stopping) return;
    const o = this.o;
    const ttlMs = Math.max(3 * o.healthIntervalMs, 10_000);
    await o.client.registerInstance({
      id: this.instanceId,
      service: o.service,
      address: advertisedHost(o),
      port: this.inboundPort,
      ports: { app: o.app.port, ...(this.adminPort ? { admin: this.adminPort } : {}) },
      tags: o.tags,
      meta: o.meta,
      ...(o.datacenter ? { datacenter: o.datacenter } : {}),
      ...(o.locality ? { locality: o.locality } : {}),
      checks: [
        {
          id: HEALTH_CHECK_ID,
          name: `app health (${describeSpec(o.health)})`,
          ttl: `${ttlMs}ms`,
          deregisterCriticalAfter: DEREGISTER_CRITICAL_AFTER,
          status: this.health?.current?.status ?? "critical",
          ...(this.health?.current ? { notes: "re-registered by the sidecar" } : {}),
        },
      ],
      proxy: { protocol: o.protocol, upstreams: o.upstreams },
    });
    this.registered = true;
  }

  private startHealth(): void {
    const o = this.o;
    this.health = new HealthChecker({
      spec: o.health,
      target: o.app,
      intervalMs: o.healthIntervalMs,
      timeoutMs: o.healthTimeoutMs,
      clock: this.clock,
      reportEveryMs: Math.max(3 * o.healthIntervalMs, 10_000) / 3,
      report: (r) => this.reportHealth(r),
    });
    this.health.start();
  }

  private async reportHealth(r: ProbeResult): Promise<void> {
    if (this.stopping) return;
    try {
      await this.o.client.updateCheck(this.instanceId, HEALTH_CHECK_ID, {
        status: r.status,
        output: r.output,
      });
    } catch (e) {
      if (isWeftError(e, "WEFT_ERR_NOT_FOUND")) {
        // The control plane lost us (restarted with an empty store, or reaped us while it could not hear us).
        this.log.warn({}, "instance unknown to the control plane; registering again");
        await this.register();
        return;
      }
      throw e;
    }
  }

  private apply(s: ProxySnapshot): void {
    // Everything that can throw first, so a refused snapshot changes nothing.
    const authorizer = compileAuthz(s.proxy.service, s.inbound.authz);
    const useLimits = this.rateLimits.prepare(s.inbound.rateLimit);
    this.clusters.apply(s);
    this.listenerRoutes = new Map(
      s.upstreams.map((u) => [u.service, compileListenerRoutes(u, this.clusters, this.clock)]),
    );
    this.authorizer = authorizer;
    useLimits();
    this.observers.apply(s);
    this.metrics.configUpdates.inc({ result: "applied" });
    this.log.info(
      { version: s.version, clusters: Object.keys(s.clusters).length, endpoints: countEndpoints(s) },
      "config applied",
    );
  }

  private startInbound(): void {
    const identity = this.identity as WorkloadIdentity;
    const selfSpiffeId = identity.status().spiffeId;
    this.inboundHttp = createInboundHttp({
      app: { host: this.o.app.host, port: this.o.app.port, protocol: this.appHttpProtocol() },
      selfSpiffeId,
      logger: this.log,
      authorize: (req) => {
        const target = canonicalPath(req.rawTarget);
        if (!target.ok) {
          return {
            allow: false,
            status: 400,
            body: `weft: bad request path: ${target.reason}\n`,
            flags: "NP",
          };
        }
        const authz = this.authorizer;
        if (!authz) return { allow: false, status: 503, body: "weft: no config yet\n", flags: "NC" };
        const d = authz.http(req.peerService, { method: req.method, path: target.path, headers: req.header });
        if (!d.allow) {
          this.metrics.denials.inc({ source_service: req.peerService, reason: d.code });
          return { allow: false, status: 403, body: `weft: request denied: ${d.reason}\n`, flags: "RBAC" };
        }
        // canonicalPath keeps the query verbatim with its "?".
        return { allow: true, target: target.path + target.query };
      },
      rateLimit: (req) => this.countLimited(req.peerService, this.rateLimits.request(req.path)),
      onRequestStart: (head, peer, upgrade) => this.observers.inbound(head, peer, upgrade),
      onRequest: (e) => {
        this.metrics.request("inbound", e.peerService, this.o.service, e);
        this.stats?.record("inbound", e.peerService, this.o.service, e);
        this.tap.record("inbound", e.peerService, this.o.service, e);
      },
    });
    this.inboundServer = createMtlsServer({
      source: identity,
      // Not half-open here: a peer's FIN before or during the handshake must close the socket.
      // TCP connections switch to half-open once verified (tcp-proxy.ts).
      alpn: ["h2", "http/1.1", TCP_ALPN],
      logger: this.log,
      onConnection: (socket, peer) => this.onInbound(socket, peer),
    });
    this.cap(this.inboundServer, "inbound");
  }

  private cap(server: net.Server, listener: "inbound" | "outbound"): void {
    capConnections(
      server,
      listener,
      this.connectionCap,
      () => this.metrics.connectionsDropped.inc({ listener }),
      this.log,
    );
  }

  private readonly connectionCap = maxConnections();

  private countLimited(source: string, v: RateLimitVerdict): RateLimitVerdict {
    if (!v.ok) this.metrics.rateLimited.inc({ source_service: source, route: v.limit });
    return v;
  }

  /** The app protocol for L7 forwarding; a TCP service reached over HTTP is forwarded as HTTP/1.1. */
  private appHttpProtocol(): "http" | "http2" | "grpc" {
    const p = this.stream?.snapshot?.inbound.protocol ?? this.o.protocol;
    return p === "tcp" ? "http" : p;
  }

  private onInbound(socket: TLSSocket, peer: PeerIdentity): void {
    if (socket.alpnProtocol === TCP_ALPN) {
      const authz = this.authorizer;
      const l4 = authz?.l4(peer.service);
      const decision =
        l4 === undefined
          ? { allow: false, reason: "no config yet" }
          : l4 === "per-request"
            ? {
                allow: false,
                reason: `intention for "${peer.service}" has L7 permissions, which a TCP connection cannot satisfy`,
              }
            : l4;
      // An allowed connection is one request against the service-wide bucket; refused = closed.
      if (decision.allow) {
        const limited = this.countLimited(peer.service, this.rateLimits.connection());
        if (!limited.ok) {
          proxyInboundTcp(
            socket,
            peer.service,
            {
              allow: false,
              rateLimited: true,
              reason: `local rate limit exceeded (retry after ${limited.retryAfterSeconds}s)`,
            },
            { ...this.o.app, connectTimeoutMs: 5_000 },
            { logger: this.log, onConnection: (e) => this.countTcp(e, peer.service, this.o.service) },
          );
          return;
        }
      }
      if (!decision.allow)
        this.metrics.denials.inc({
          source_service: peer.service,
          reason: l4 === undefined || l4 === "per-request" ? "l7-only" : l4.code,
        });
      proxyInboundTcp(
        socket,
        peer.service,
        decision,
        { ...this.o.app, connectTimeoutMs: 5_000 },
        {
          logger: this.log,
          onConnection: (e) => this.countTcp(e, peer.service, this.o.service),
        },
      );
      return;
    }
    this.inboundHttp?.handle(socket, { service: peer.service, spiffeId: peer.spiffeId });
  }

  private countTcp(
    e: { result: string; bytesSent: number; bytesReceived: number; direction: "inbound" | "outbound" },
    source: string,
    destination: string,
  ): void {
    const labels = { direction: e.direction, source_service: source, destination_service: destination };
    this.metrics.tcpConnections.inc({ ...labels, result: e.result });
    this.observers.tcp(e, source, destination);
    if (e.bytesSent > 0) this.metrics.tcpBytes.inc({ ...labels, flow: "sent" }, e.bytesSent);
    if (e.bytesReceived > 0) this.metrics.tcpBytes.inc({ ...labels, flow: "received" }, e.bytesReceived);
  }

  private async startOutbound(): Promise<void> {
    const identity = this.identity as WorkloadIdentity;
    for (const up of this.o.upstreams) {
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
      this.cap(server, "outbound");
      server.on("connection", (socket) => {
        const listener = this.stream?.snapshot?.upstreams.find((u) => u.service === up.service);
        // One split draw per connection; failover applies.
        const cluster = listener ? this.listenerRoutes.get(up.service)?.defaultCluster() : undefined;
        if (!listener || !cluster) {
          socket.resetAndDestroy();
          return;
        }
        if (listener.protocol === "tcp") {
          proxyOutboundTcp(socket, cluster, identity, {
            logger: this.log,
            onConnection: (e) => this.countTcp(e, this.o.service, up.service),
          }).catch((e: unknown) => {
            this.log.warn({ err: describeError(e) }, "outbound connection failed");
            socket.destroy();
          });
          return;
        }
        socket.resume();
        this.outboundHttpFor(up.service).handle(socket, listener.protocol);
      });
      await listen(
        server,
        { host: "127.0.0.1", port: up.localPort },
        `outbound listener (--upstream ${up.service}=${up.localPort})`,
      );
      this.outboundServers.push(server);
    }
  }

  private readonly outboundByService = new Map<string, ReturnType<typeof createOutboundHttp>>();

  /** One outbound HTTP engine per upstream: each resolves its cluster from the live snapshot per request. */
  private outboundHttpFor(service: string): ReturnType<typeof createOutboundHttp> {
    let h = this.outboundByService.get(service);
    if (!h) {
      h = createOutboundHttp({
        // Once per request: routes matched, a split drawn, failover applied.
        route: (head, headers) => this.listenerRoutes.get(service)?.decide(head, headers) ?? NO_ROUTE_CONFIG,
        onMirror: (cluster, result) => this.metrics.mirrors.inc({ destination_cluster: cluster, result }),
        pool: this.pool as Http2PeerPool,
        ...(this.h1Pool !== undefined ? { h1Pool: this.h1Pool } : {}),
        logger: this.log,
        onRequestStart: (head, upgrade) => this.observers.outbound(service, head, upgrade),
        onRequest: (e) => {
          // A head that did not parse had no observer: its access-log line is written here.
          if (e.method === undefined) this.observers.outboundUnparsed(service, e);
          this.metrics.request("outbound", this.o.service, e.upstream, e);
          this.stats?.record("outbound", this.o.service, e.upstream || service, e);
          this.tap.record("outbound", this.o.service, e.upstream || service, e);
          if (e.retries) this.metrics.retries.inc({ destination_service: e.upstream }, e.retries);
        },
      });
      this.outboundByService.set(service, h);
    }
    return h;
  }

  private notReady(): string[] {
    const reasons: string[] = [];
    if (this.stopping) reasons.push("draining");
    if (!this.identity) reasons.push("no workload certificate yet");
    if (!this.registered) reasons.push("not registered with the control plane");
    if (!this.stream?.snapshot) reasons.push("no config snapshot yet");
    if (this.o.upstreams.length > 0 && this.outboundServers.length < this.o.upstreams.length) {
      reasons.push("outbound listeners not open");
    }
    return reasons;
  }

  private configView(): unknown {
    const id = this.identity?.status();
    return {
      service: this.o.service,
      instanceId: this.instanceId,
      listeners: {
        inbound: `${advertisedHost(this.o)}:${this.inboundPort}`,
        outbound: this.o.upstreams.map((u) => ({ service: u.service, address: `127.0.0.1:${u.localPort}` })),
        app: `${this.o.app.host}:${this.o.app.port}`,
      },
      controlPlane: { address: this.o.client.addr, ...(this.stream?.state ?? { connected: false }) },
      // Public facts of the certificate only; the private key is never shown.
      certificate: id
        ? {
            spiffeId: id.spiffeId,
            serialNumber: id.serialNumber,
            rootId: id.rootId,
            notAfter: new Date(id.notAfter).toISOString(),
            renewAt: new Date(id.renewAt).toISOString(),
            renewals: id.renewals,
            failedRenewals: id.failedRenewals,
            ...(id.lastError ? { lastError: id.lastError } : {}),
          }
        : null,
      health: this.health?.current ?? null,
      snapshot: this.stream?.snapshot ?? null,
    };
  }

  /** Graceful drain; safe to call more than once. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.stopAc.abort();
    this.metrics.ready.set(0);
    this.health?.dispose();
    // The stream first: once deregistered, the control plane ends it, and a live stream would register again.
    await this.stream?.stop();
    // The last deltas while the instance still exists (the control plane refuses reports of unknown instances).
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
    const closing = Promise.all([
      closeServer(this.inboundServer),
      ...this.outboundServers.map((s) => closeServer(s)),
      this.inboundHttp?.close(),
      ...[...this.outboundByService.values()].map((h) => h.close()),
    ]);
    const drained = await Promise.race([
      closing.then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), drainMs).unref()),
    ]);
    if (!drained) {
      this.log.warn({ drainTimeoutMs: drainMs }, "drain timed out; cutting the remaining requests");
      this.inboundHttp?.destroy();
      for (const h of this.outboundByService.values()) h.destroy();
    }
    await closePeerPools(drained, this.pool, this.h1Pool);
    this.identity?.dispose();
    this.tap.close();
    await this.observers.shutdown();
    await closeServer(this.adminServer);
  }
}

function describeSpec(s: HealthCheckSpec): string {
  if (s.kind === "http") return `HTTP GET ${s.path}`;
  if (s.kind === "grpc") return `gRPC health${s.service ? ` ${s.service}` : ""}`;
  return "TCP connect";
}

function countEndpoints(s: ProxySnapshot): number {
  let n = 0;
  for (const c of Object.values(s.clusters)) n += c.endpoints.length;
  return n;
}
