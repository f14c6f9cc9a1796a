/**
 * One ingress listener (Gateway `listeners[i]`, protocol http or https):
 *
 *   client ─TCP/TLS(SNI)─▶ this listener ─▶ the data plane's outbound HTTP
 *   engine (strict HTTP/1.1 parsing, limits, retries, failover, mTLS to the
 *   destination's sidecar under the gateway's identity)
 *
 * The engine asks `decide` once per request; the gateway's stages run there,
 * in order: route match (host, canonical path) → CORS preflight → body size
 * → rate limits (listener, then route) → JWT → the destination service's
 * own routing (Route/Split/Resolver from the gateway's snapshot) → the
 * gateway route's changes (rewrite, subset, timeout, retries, header ops)
 * and the edge's headers (x-forwarded-for/-proto, claims). Each refusal is a
 * local reply with its status (404, 403, 413, 429, 401); nothing here throws.
 *
 * The engine's route callback sees the request but not its connection; the
 * connection's facts (peer address, TLS server name) reach it through an
 * AsyncLocalStorage entered when the socket is handed to the engine: node's
 * HTTP parser for the connection is created inside that context and runs
 * its callbacks in it. A request seen without one is refused (fail closed).
 */
import { AsyncLocalStorage } from "node:async_hooks";
import net, { type AddressInfo, type Socket } from "node:net";
import tls, { type TLSSocket } from "node:tls";
import { canonicalPath } from "@weft/api/authz";
import type { HeaderOpsConfig } from "@weft/api/snapshot";
import { type Clock, describeError, systemClock, weftError } from "@weft/core";
import {
  type ClusterSet,
  compileRetryPolicy,
  createOutboundHttp,
  type DataplaneLogger,
  FLAGS_HEADER,
  Flag,
  type ForwardDecision,
  type HeaderMap,
  type Http1PeerPool,
  type Http2PeerPool,
  type IncomingHeaders,
  joinHeader,
  type ListenerRoutes,
  type OutboundHttp,
  type OutboundRequestEvent,
  type RequestHead,
  RetryBudget,
  type RetryPolicy,
  type RouteDecision,
  type UpstreamCluster,
} from "@weft/dataplane";
import { CertStore } from "./cert-store.js";
import { clientAddress } from "./client-address.js";
import { CorsPolicy, type CorsSpec } from "./cors.js";
import {
  authenticate,
  claimValue,
  type JwtProviderRuntime,
  type JwtRequirementRuntime,
} from "./jwt/jwt-auth.js";
import { GatewayRateLimit, type RateLimitSpec } from "./rate-limits.js";
import { type CompiledMatch, compileMatches, firstMatch, hostOf } from "./route-match.js";
import type { ListenerConfig, RouteConfig } from "./types.js";

export interface ConnectionContext {
  remoteAddress: string | undefined;
  servername: string | undefined;
  /** The client connection (absent in tests that decide without one). */
  socket?: Socket;
}

/** What node:http keeps on a socket about the response being written (undocumented, stable since node 0.x). */
interface SocketInternals {
  /** `_last`: the response ends the connection (it carries "connection: close"). */
  _httpMessage?: { _last?: boolean; shouldKeepAlive?: boolean; req?: { headers?: unknown } } | null;
}

/**
 * True when an earlier response on this connection said "connection: close"
 * (a 400 for a malformed request, node's own "no Host" 400 among them) and
 * this request was pipelined behind it. node:http still parses and emits
 * such requests; RFC 9112 §9.6 says they must not be processed, and
 * forwarding one would hand the upstream a request riding behind a refused
 * one (the smuggling shape). The engine does not check it, so the edge does.
 */
export function behindClose(ctx: ConnectionContext, headers: IncomingHeaders): boolean {
  const socket = ctx.socket;
  if (socket === undefined) return false;
  if (socket.destroyed || socket.writableEnded) return true;
  const current = (socket as SocketInternals)._httpMessage;
  return (
    current != null &&
    current.req?.headers !== headers &&
    (current._last === true || current.shouldKeepAlive === false)
  );
}

export interface IngressListenerOptions {
  listener: ListenerConfig;
  trustedHops: number;
  /** The gateway's JWT providers by name (validated: every name a listener or route uses exists). */
  providers: ReadonlyMap<string, JwtProviderRuntime>;
  /** The destination's routing from the gateway's live snapshot; undefined until it has one. */
  upstream(service: string): ListenerRoutes | undefined;
  clusters: ClusterSet;
  pool: Http2PeerPool;
  /** Kept-alive HTTP/1.1 to peers for HTTP/1.1 clients' plain requests to HTTP/1.1 services. */
  h1Pool?: Http1PeerPool;
  logger: DataplaneLogger;
  clock?: Clock;
  onRequest?(e: OutboundRequestEvent & { listener: number }): void;
  /** How often certificate files are checked for changes. */
  certPollMs?: number;
}

interface RouteRuntime {
  config: RouteConfig;
  jwt: JwtRequirementRuntime | undefined;
  cors: CorsPolicy | undefined;
  rateLimit: GatewayRateLimit | undefined;
  retryPolicy: RetryPolicy | undefined;
  retryBudget: RetryBudget | undefined;
}

/** Request fields a client may not hand to the mesh as if the gateway had set them. */
const EDGE_OWNED = ["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip"];

function reply(status: number, body: string, extra: HeaderMap = {}): RouteDecision {
  const text = `${body}\n`;
  return {
    kind: "reply",
    status,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "content-length": String(Buffer.byteLength(text)),
      ...extra,
    },
    body: text,
  };
}

const STRIP_INTERNAL_RESPONSE: HeaderOpsConfig = Object.freeze({ remove: [FLAGS_HEADER] }) as HeaderOpsConfig;

const NOT_FOUND = reply(404, "weft gateway: no route for this host and path");
const BEHIND_CLOSE: RouteDecision = Object.freeze({
  kind: "refuse",
  status: 400,
  detail: "request pipelined behind a closing response",
  flags: Flag.DownstreamProtocolError,
});
const NO_CONTEXT: RouteDecision = Object.freeze({
  kind: "refuse",
  status: 503,
  detail: "gateway: connection context unavailable",
  flags: Flag.NoRoute,
});

function requirement(
  req: { providers: readonly string[]; optional: boolean } | undefined,
  providers: ReadonlyMap<string, JwtProviderRuntime>,
): JwtRequirementRuntime | undefined {
  if (req === undefined) return undefined;
  const list = req.providers.map((n) => {
    const p = providers.get(n);
    if (p === undefined) throw weftError("WEFT_ERR_USAGE", { detail: `no jwtProviders entry named "${n}"` });
    return p;
  });
  return { providers: list, optional: req.optional };
}

function rewritten(route: RouteConfig, path: string): string {
  const prefix = route.rewrite?.prefix;
  if (prefix === undefined) return path;
  if (route.pathPrefix === undefined || !path.startsWith(route.pathPrefix)) return prefix;
  const rest = path.slice(route.pathPrefix.length);
  return prefix.endsWith("/") && rest.startsWith("/") ? prefix + rest.slice(1) : prefix + rest;
}

/** The parts of a listener's config a decision reads, compiled once (throws on a reference to no provider). */
interface CompiledListener {
  listener: ListenerConfig;
  trustedHops: number;
  table: CompiledMatch<RouteRuntime>[];
  rate: GatewayRateLimit | undefined;
  jwt: JwtRequirementRuntime | undefined;
  cors: CorsPolicy | undefined;
}

function compileListener(
  l: ListenerConfig,
  providers: ReadonlyMap<string, JwtProviderRuntime>,
  trustedHops: number,
  clock: Clock,
): CompiledListener {
  const rate = (r: RateLimitSpec | undefined) => (r ? new GatewayRateLimit(r, clock) : undefined);
  const runtimes = l.routes.map((r): RouteRuntime & { host: string } => {
    const retryPolicy = r.retries
      ? compileRetryPolicy({
          numRetries: r.retries.numRetries,
          retryOn: [...r.retries.retryOn],
          ...(r.retries.retryOnStatusCodes ? { retryOnStatusCodes: [...r.retries.retryOnStatusCodes] } : {}),
          ...(r.retries.perTryTimeout ? { perTryTimeoutMs: r.retries.perTryTimeout } : {}),
          backoff: {
            baseIntervalMs: r.retries.backoff.baseInterval,
            maxIntervalMs: r.retries.backoff.maxInterval,
          },
          budget: { ...r.retries.budget },
          retryNonIdempotent: r.retries.retryNonIdempotent,
        })
      : undefined;
    return {
      host: r.host,
      ...(r.pathExact !== undefined ? { pathExact: r.pathExact } : {}),
      ...(r.pathPrefix !== undefined ? { pathPrefix: r.pathPrefix } : {}),
      ...(r.pathRegex !== undefined ? { pathRegex: r.pathRegex } : {}),
      config: r,
      jwt: requirement(r.jwt, providers),
      cors: r.cors ? new CorsPolicy(r.cors as CorsSpec) : undefined,
      rateLimit: rate(r.rateLimit),
      retryPolicy,
      retryBudget:
        retryPolicy && r.retries ? new RetryBudget({ ...r.retries.budget, clock: clock }) : undefined,
    };
  });
  return {
    listener: l,
    trustedHops,
    table: compileMatches(runtimes),
    rate: rate(l.rateLimit),
    jwt: requirement(l.jwt, providers),
    cors: l.cors ? new CorsPolicy(l.cors as CorsSpec) : undefined,
  };
}

export class IngressListener {
  private readonly als = new AsyncLocalStorage<ConnectionContext>();
  private readonly engine: OutboundHttp;
  private readonly server: net.Server;
  private readonly certs: CertStore | undefined;
  /** Everything a request decision reads; replaced whole by update(). */
  private compiled: CompiledListener;
  private readonly clock: Clock;
  private readonly proto: "http" | "https";
  private port = 0;

  constructor(private readonly o: IngressListenerOptions) {
    const l = o.listener;
    this.clock = o.clock ?? systemClock;
    this.proto = l.protocol === "https" ? "https" : "http";
    this.compiled = compileListener(l, o.providers, o.trustedHops, this.clock);
    const lim = l.limits;
    this.engine = createOutboundHttp({
      route: (head, headers) => this.decide(head, headers),
      pool: o.pool,
      ...(o.h1Pool !== undefined ? { h1Pool: o.h1Pool } : {}),
      logger: o.logger,
      // The edge reads node:http's per-connection state (behindClose) and its AsyncLocalStorage context
      // follows node:http's parser: internet clients keep the node:http front.
      fastH1: false,
      limits: {
        maxHeaderBytes: lim.maxHeaderBytes,
        maxHeaderCount: lim.maxHeaders,
        headersTimeoutMs: lim.headersTimeout,
        keepAliveTimeoutMs: lim.idleTimeout,
        idleTimeoutMs: lim.idleTimeout,
      },
      onRequest: (e) => o.onRequest?.({ ...e, listener: l.port }),
    });
    const hand = (socket: Socket, servername: string | undefined, protocol: "http" | "http2"): void => {
      const ctx: ConnectionContext = { remoteAddress: socket.remoteAddress, servername, socket };
      this.als.run(ctx, () => this.engine.handle(socket, protocol));
    };
    if (this.proto === "https") {
      const tlsCfg = l.tls as NonNullable<ListenerConfig["tls"]>;
      this.certs = new CertStore(tlsCfg, {
        logger: o.logger,
        ...(o.certPollMs ? { pollMs: o.certPollMs } : {}),
      });
      const server = tls.createServer({
        ...this.certs.serverOptions(),
        // HTTP/2 by ALPN (the engine's HTTP/2 server, with its stream and flood limits), else HTTP/1.1.
        ALPNProtocols: ["h2", "http/1.1"],
        handshakeTimeout: lim.headersTimeout,
      });
      server.on("secureConnection", (s: TLSSocket) => {
        hand(
          s,
          typeof s.servername === "string" ? s.servername : undefined,
          s.alpnProtocol === "h2" ? "http2" : "http",
        );
      });
      server.on("tlsClientError", (_e, s) => s.destroy());
      this.certs.start(server);
      this.server = server;
    } else {
      this.server = net.createServer({ noDelay: true }, (s) => hand(s, undefined, "http"));
    }
    this.server.maxConnections = lim.maxConnections;
    this.server.on("error", (e) => o.logger.warn({ err: describeError(e), port: l.port }, "listener error"));
  }

  /**
   * Swaps the routing part of the config (routes, JWT, CORS, rate limits,
   * body limit, request timeout, trusted hops) for new requests; requests
   * in flight keep the decision they got. Throws, changing nothing, when
   * the config cannot be compiled. Port, address, protocol, TLS and the
   * HTTP parser limits are fixed at creation: the caller restarts for those.
   */
  update(l: ListenerConfig, providers: ReadonlyMap<string, JwtProviderRuntime>, trustedHops: number): void {
    this.compiled = compileListener(l, providers, trustedHops, this.clock);
  }

  get boundPort(): number {
    return this.port;
  }

  /** The certificate store of an https listener (reload counters, served subjects). */
  get certificates(): CertStore | undefined {
    return this.certs;
  }

  listen(portOverride?: number): Promise<number> {
    const l = this.o.listener;
    const port = portOverride ?? l.port;
    return new Promise((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) =>
        reject(
          weftError(
            "WEFT_ERR_USAGE",
            {
              detail: `gateway listener ${l.address}:${port}: ${e.code === "EADDRINUSE" ? "the address is already in use" : e.message}`,
            },
            { cause: e },
          ),
        );
      this.server.once("error", onError);
      this.server.listen(port, l.address, () => {
        this.server.off("error", onError);
        this.port = (this.server.address() as AddressInfo).port;
        resolve(this.port);
      });
    });
  }

  async close(): Promise<void> {
    this.certs?.dispose();
    await new Promise<void>((resolve) => {
      if (!this.server.listening) resolve();
      else this.server.close(() => resolve());
    });
    await this.engine.close();
  }

  destroy(): void {
    this.certs?.dispose();
    this.server.close();
    this.engine.destroy();
  }

  private decide(head: RequestHead, headers: IncomingHeaders): RouteDecision {
    const ctx = this.als.getStore();
    return ctx === undefined ? NO_CONTEXT : this.decideFor(ctx, head, headers);
  }

  /**
   * One request's fate, given its connection. Must not throw (the engine
   * would answer a bug with a 503). Public for tests: a decision is data.
   */
  decideFor(ctx: ConnectionContext, head: RequestHead, headers: IncomingHeaders): RouteDecision {
    if (behindClose(ctx, headers)) return BEHIND_CLOSE;
    const c = this.compiled;
    const target = canonicalPath(head.path);
    if (!target.ok) return reply(400, `weft gateway: bad request target: ${target.reason}`);
    const m = firstMatch(c.table, hostOf(head.authority), target.path);
    if (m === undefined) return NOT_FOUND;
    const r = m.route;
    const route = r.config;

    const cors = r.cors ?? c.cors;
    let corsFields: Record<string, string> | undefined;
    if (cors !== undefined) {
      const verdict = cors.decide(
        head.method,
        joinHeader(headers.origin),
        joinHeader(headers["access-control-request-method"]),
        joinHeader(headers["access-control-request-headers"]),
      );
      if (verdict.kind === "preflight") {
        return { kind: "reply", status: verdict.status, headers: verdict.headers, body: "" };
      }
      if (verdict.kind === "actual") corsFields = verdict.responseHeaders;
    }

    const length = joinHeader(headers["content-length"]);
    if (length !== undefined && Number(length) > c.listener.limits.maxRequestBodyBytes) {
      return reply(413, "weft gateway: request body too large", { connection: "close" });
    }

    const who = clientAddress(ctx.remoteAddress, headers["x-forwarded-for"], c.trustedHops);
    for (const limit of [c.rate, r.rateLimit]) {
      const v = limit?.take(who.client);
      if (v !== undefined && !v.ok) {
        return reply(429, "weft gateway: rate limit exceeded", {
          "retry-after": String(v.retryAfterSeconds),
        });
      }
    }

    const jwtReq = r.jwt ?? c.jwt;
    const edge: HeaderOpsConfig = {
      remove: [...EDGE_OWNED],
      set: { "x-forwarded-for": who.forwardedFor, "x-forwarded-proto": this.proto },
    };
    const set = edge.set as Record<string, string>;
    const remove = edge.remove as string[];
    if (jwtReq !== undefined) {
      const a = authenticate(jwtReq, joinHeader(headers.authorization), this.clock);
      if (!a.ok) {
        return reply(401, `weft gateway: unauthorized: ${a.reason}`, {
          "www-authenticate": a.wwwAuthenticate,
        });
      }
      // A client-sent header with a claim header's name must never pass as a verified claim.
      for (const p of jwtReq.providers) for (const ch of p.claimToHeaders) remove.push(ch.header);
      if (a.provider?.forwardToken !== true) remove.push("authorization");
      if (a.provider !== undefined) {
        for (const ch of a.provider.claimToHeaders) {
          const v = claimValue(a.claims, ch.claim);
          if (v !== undefined) set[ch.header] = v;
        }
      }
    }

    const d = this.forward(route, head, headers, target.path, target.query);
    if (d.kind !== "forward") return d;
    if (route.rewrite?.host !== undefined) d.authority = route.rewrite.host;
    const timeout = route.timeout ?? d.requestTimeoutMs ?? c.listener.limits.requestTimeout;
    if (timeout > 0) d.requestTimeoutMs = timeout;
    if (r.retryPolicy !== undefined) {
      d.retryPolicy = r.retryPolicy;
      if (r.retryBudget !== undefined) d.retryBudget = r.retryBudget;
    }
    const reqOps: HeaderOpsConfig[] = [...(d.requestHeaders ?? [])];
    if (route.requestHeaders !== undefined) reqOps.push(route.requestHeaders as HeaderOpsConfig);
    // The edge's own fields last: no configured or client-sent change can overwrite them.
    reqOps.push(edge);
    d.requestHeaders = reqOps;
    const resOps: HeaderOpsConfig[] = [...(d.responseHeaders ?? [])];
    if (route.responseHeaders !== undefined) resOps.push(route.responseHeaders as HeaderOpsConfig);
    if (corsFields !== undefined) resOps.push({ set: corsFields });
    // The mesh's own response fields stay inside the mesh.
    resOps.push(STRIP_INTERNAL_RESPONSE);
    d.responseHeaders = resOps;
    return d;
  }

  /** The destination's own routing, after the gateway route's prefix rewrite. */
  private forward(
    route: RouteConfig,
    head: RequestHead,
    headers: IncomingHeaders,
    path: string,
    query: string,
  ): RouteDecision {
    // Forward the canonical form: the one the gateway matched is the one the destination authorizes.
    const forwardedPath = rewritten(route, path) + query;
    if (route.subset !== undefined) {
      const name = `${route.service}.${route.subset}`;
      const live = this.o.clusters.resolve(name);
      if (live === undefined || live.protocol === "tcp") {
        return reply(503, `weft gateway: no cluster ${name} in the gateway's config`, {
          "x-weft-response-flags": Flag.NoRoute,
        });
      }
      const d: ForwardDecision = { kind: "forward", cluster: live as UpstreamCluster, path: forwardedPath };
      const fallbacks = this.o.clusters.fallbacks(name, live);
      if (fallbacks.length > 0) d.fallbacks = fallbacks as UpstreamCluster[];
      return d;
    }
    const up = this.o.upstream(route.service);
    if (up === undefined) {
      return {
        kind: "refuse",
        status: 503,
        detail: `no config for ${route.service} yet`,
        flags: Flag.NoRoute,
      };
    }
    const d = up.decide({ ...head, path: forwardedPath }, headers);
    if (d.kind === "forward" && d.path === undefined) d.path = forwardedPath;
    return d;
  }
}
