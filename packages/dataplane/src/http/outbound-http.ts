import type { IncomingMessage, ServerResponse } from "node:http";
import type { ClientHttp2Session, IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";
import type { Duplex } from "node:stream";
import { describeError, isWeftError, tracer } from "@weft/core";
import type { TryResult } from "../cluster/outlier.js";
import type { DataplaneLogger } from "../logger.js";
import { isPeerRefused } from "../transport/mtls.js";
import { h1Downstream, h2Downstream } from "./downstream.js";
import { DrainTracker } from "./drain.js";
import { Flag, FlagSet } from "./flags.js";
import { h1CanSend } from "./h1-fast/client.js";
import { fastH1Default, serveFastH1 } from "./h1-fast/connection.js";
import { PeerH1Call } from "./h1-peer-call.js";
import { type Http1PeerPool, PeerConnection, PeerWithoutHttp1 } from "./h1-peer-pool.js";
import { openH2Call } from "./h2-call.js";
import { ConnectionLimitReached, type Http2PeerPool, type PeerEndpoint } from "./h2-peer-pool.js";
import {
  h1RequestHead,
  h2RequestHead,
  isInternalHeader,
  type RequestHead,
  toH2RequestHeaders,
} from "./headers.js";
import { createH1Server, createH2Server } from "./listener.js";
import { rawLocalReply, rawReply } from "./local-reply.js";
import { type MirrorResult, sendMirror } from "./mirror.js";
import { relay } from "./relay.js";
import { MAX_REPLAY_BODY_BYTES, ReplayBody, type TryFailure } from "./retry-policy.js";
import {
  directReply,
  faultAbort,
  NO_ROUTE_CONFIG,
  routedHead,
  withResponseHeaderOps,
} from "./route-actions.js";
import {
  type Downstream,
  type ForwardDecision,
  type HttpLimits,
  type HttpProtocol,
  type IncomingHeaders,
  type OutboundRequestEvent,
  type PickedEndpoint,
  type RemoteAddress,
  type RouteDecision,
  resolveLimits,
  type UpstreamCluster,
  type UpstreamEvents,
} from "./types.js";
import { endWith, filterRaw, relayUpgrade } from "./upgrade.js";

/**
 * The outbound side: plain HTTP from the app (HTTP/1.1, or h2c for http2 and
 * gRPC upstreams) → one HTTP/2 stream on a pooled mTLS session to a peer
 * proxy. Per request: pick an endpoint, get the session (connect failures
 * exclude the endpoint and pick again, up to 3 attempts, before any request
 * byte is sent), then relay. Upgrades get a dedicated mTLS connection.
 */

const trace = tracer("http");

/** Endpoints tried per request (Envoy's default of one try plus retries on connect failure). */
export const MAX_ATTEMPTS = 3;

export interface OutboundHttpOptions {
  /**
   * Decides each request: routes, splits and failover (proxy/listener-routes.ts).
   * Absent: every request goes to `cluster`.
   */
  route?: (head: RequestHead, headers: IncomingHeaders) => RouteDecision;
  /** The upstream for this listener when there is no `route`; undefined → 503 with flag NR. Called once per request. */
  cluster?: () => UpstreamCluster | undefined;
  /** How each mirror copy went (metrics). Must not throw. */
  onMirror?: (cluster: string, result: MirrorResult) => void;
  pool: Http2PeerPool;
  /**
   * Kept-alive HTTP/1.1 connections to peers, for HTTP/1.1 apps' plain requests to HTTP/1.1
   * services (everything else takes `pool`). Absent: every request takes `pool`.
   */
  h1Pool?: Http1PeerPool;
  logger?: DataplaneLogger;
  onRequest?: (e: OutboundRequestEvent) => void;
  /**
   * Called once per request whose head parsed, before routing (tracing, access logs). It may change
   * `head.headers` in place (each request has its own copy; what it sets is forwarded upstream);
   * `upgrade`: a protocol upgrade, forwarded with its original fields. Must not throw.
   */
  onRequestStart?: (head: RequestHead, upgrade: boolean) => OutboundRequestObserver | undefined;
  limits?: Partial<HttpLimits>;
  /**
   * Plain HTTP/1.1 requests go through the fast front (h1-fast/), the rest to node:http. Default: on
   * unless WEFT_FAST_H1=0. Off for the ingress gateway, whose edge checks read node:http's state.
   */
  fastH1?: boolean;
}

/** What `onRequestStart` returned for one request: told its event once, just before `onRequest`. */
export interface OutboundRequestObserver {
  end(e: OutboundRequestEvent): void;
}

export interface OutboundHttp {
  /** A plain connection from the app; `protocol` decides HTTP/1.1 or h2c (prior knowledge). */
  handle(socket: Socket, protocol: HttpProtocol): void;
  /** Graceful: GOAWAY / Connection: close, no new requests; resolves when in-flight requests are over. */
  close(): Promise<void>;
  /** Immediate: every connection and tunnel is closed. */
  destroy(): void;
  inFlight(): number;
}

interface Result {
  status: number;
  flags: FlagSet;
  endpointId?: string;
  retries?: number;
}

const NONE: ReadonlySet<string> = new Set();
/**
 * Connections to one peer that an h2c app's requests may take on the HTTP/1.1 hop (cheaper per request
 * than an HTTP/2 stream, see the README); its further concurrent requests are multiplexed on the session.
 */
const H2_APP_H1_CONNECTIONS = 64;

const FORWARDED_PROTO = "x-forwarded-proto";
const STRIP_INTERNAL = { stripInternal: true } as const;
/** How a try that went out ended, as outlier detection counts it; undefined = not the endpoint's doing. */
function tryResultOf(outcome: Awaited<ReturnType<typeof relay>>): TryResult | undefined {
  if (outcome.kind === "done")
    return outcome.status === 0 ? undefined : { kind: "status", status: outcome.status };
  if (outcome.kind === "open-failed") return undefined;
  const f = outcome.failure;
  if (f?.kind === "response") return { kind: "status", status: f.status };
  // A reset, a timeout, a refused stream (the peer's app is not there): gateway errors.
  return { kind: "gateway-error" };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

class DeadlineExceeded extends Error {}

/**
 * Races `promise` against the request deadline. A value arriving after the
 * deadline is handed to `discard` (a dedicated connection must not leak).
 */
function withDeadline<T>(
  promise: Promise<T>,
  deadline: number | undefined,
  discard?: (late: T) => void,
): Promise<T> {
  if (deadline === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    let expired = false;
    const timer = setTimeout(
      () => {
        expired = true;
        reject(new DeadlineExceeded());
      },
      Math.max(0, deadline - performance.now()),
    );
    promise.then(
      (v) => {
        clearTimeout(timer);
        if (expired) discard?.(v);
        else resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

export function createOutboundHttp(opts: OutboundHttpOptions): OutboundHttp {
  const limits = resolveLimits(opts.limits);
  const tracker = new DrainTracker();
  const logger = opts.logger;

  const decide = (head: RequestHead, headers: IncomingHeaders): RouteDecision => {
    try {
      if (opts.route) return opts.route(head, headers);
      const cluster = opts.cluster?.();
      return cluster === undefined ? NO_ROUTE_CONFIG : { kind: "forward", cluster };
    } catch (e) {
      logger?.warn({ error: describeError(e) }, "outbound route lookup failed");
      return NO_ROUTE_CONFIG;
    }
  };

  const report = (
    d: RouteDecision | undefined,
    head: RequestHead | undefined,
    started: number,
    r: Result,
    observer?: OutboundRequestObserver,
  ): void => {
    try {
      const cluster = d?.kind === "forward" ? d.cluster : undefined;
      const route = d !== undefined && d.kind !== "refuse" ? d.route : undefined;
      const e: OutboundRequestEvent = {
        upstream: cluster?.service ?? "",
        status: r.status,
        flags: r.flags.toString(),
        durationMs: performance.now() - started,
        ...(r.endpointId !== undefined ? { endpointId: r.endpointId } : {}),
        ...(r.retries !== undefined ? { retries: r.retries } : {}),
        ...(route !== undefined ? { route } : {}),
        ...(cluster?.name !== undefined ? { cluster: cluster.name } : {}),
        ...(head !== undefined ? { method: head.method, path: head.path } : {}),
      };
      observer?.end(e);
      opts.onRequest?.(e);
    } catch {
      // Metrics must never break traffic.
    }
  };

  const startObserver = (head: RequestHead, upgrade: boolean): OutboundRequestObserver | undefined => {
    try {
      return opts.onRequestStart?.(head, upgrade);
    } catch {
      return undefined;
    }
  };

  const pick = (
    cluster: UpstreamCluster,
    hashKey: string | undefined,
    exclude: ReadonlySet<string>,
  ): PickedEndpoint | undefined => {
    try {
      return cluster.pick(hashKey === undefined ? { exclude } : { hashKey, exclude });
    } catch (e) {
      logger?.warn({ upstream: cluster.service, error: describeError(e) }, "endpoint pick failed");
      return undefined;
    }
  };

  const observe = (cluster: UpstreamCluster, endpointId: string, r: TryResult | undefined): void => {
    if (r === undefined) return;
    try {
      cluster.observe?.(endpointId, r);
    } catch {
      // Outlier detection must never break traffic.
    }
  };

  /** The fast answer of a circuit breaker: nothing was sent upstream. */
  const overflow = (down: Downstream, cluster: UpstreamCluster, gone: boolean, what: string): Result => {
    trace("circuit breaker overflow", { upstream: cluster.service, limit: what });
    if (!gone)
      down.localReply(503, `upstream overflow: ${what} limit of ${cluster.service}`, Flag.UpstreamOverflow);
    return { status: 503, flags: new FlagSet().add(Flag.UpstreamOverflow) };
  };

  const hashKeyOf = (
    cluster: UpstreamCluster,
    headers: IncomingHeaders,
    remote: RemoteAddress,
  ): string | undefined => {
    try {
      return cluster.hashKey?.(headers, remote);
    } catch {
      return undefined;
    }
  };

  const logConnectFailure = (cluster: UpstreamCluster, ep: PickedEndpoint["endpoint"], e: unknown): void => {
    const reason = isPeerRefused(e) ? e.reason : isWeftError(e, "WEFT_ERR_TIMEOUT") ? "timeout" : "connect";
    logger?.warn(
      {
        upstream: cluster.service,
        endpoint: ep.id,
        address: `${ep.address}:${ep.port}`,
        reason,
        error: describeError(e),
      },
      "upstream connect failed",
    );
  };

  /**
   * Picks, connects and relays one request, trying again as the cluster's
   * retry policy allows; every path ends in exactly one response to the app.
   *
   * Two kinds of second chance: failures where nothing reached the peer
   * (connect failure, refused stream, a closing session) are tried on
   * another endpoint at once, up to MAX_ATTEMPTS in all, with or without a
   * policy. Beyond that, and for failures after the request went out (a
   * retriable status, a reset, the per-try timeout), the policy decides
   * (retry-policy.ts), the request must be replayable (no body, or a body
   * kept whole within MAX_REPLAY_BODY_BYTES), nothing of the response may
   * have reached the app, and the retry budget must allow it; then the next
   * try waits a jittered backoff and prefers another endpoint.
   */
  async function forward(
    down: Downstream,
    head: RequestHead,
    d: ForwardDecision,
    hashHeaders: IncomingHeaders,
    remote: RemoteAddress,
    started: number,
  ): Promise<Result> {
    /** Changes only when every endpoint refused before anything was sent and a failover cluster takes over. */
    let cluster = d.cluster;
    const fallbacks = d.fallbacks ? [...d.fallbacks] : undefined;
    const flags = new FlagSet();
    const timeoutMs = d.requestTimeoutMs ?? cluster.requestTimeoutMs;
    const deadline = timeoutMs !== undefined && timeoutMs > 0 ? started + timeoutMs : undefined;
    let gone = false;
    down.onGone(() => {
      gone = true;
    });
    // Circuit breaking: one lease per request in flight, held until forward is over.
    const breaker = cluster.breaker;
    const requestLease = breaker?.acquire("requests");
    if (breaker !== undefined && requestLease === undefined) return overflow(down, cluster, gone, "requests");
    /** The lease of the retry in progress: a request holds at most one. */
    let retryLease: (() => void) | undefined;
    // A route's retry policy replaces the cluster's, with the route's own budget.
    const policy = d.retryPolicy ?? cluster.retryPolicy;
    const budget = d.retryPolicy ? d.retryBudget : policy ? cluster.retryBudget : undefined;
    // The body is kept for a retry or a mirror copy (within MAX_REPLAY_BODY_BYTES).
    const replay =
      (policy || d.mirror || fallbacks) && down.body !== undefined
        ? new ReplayBody(MAX_REPLAY_BODY_BYTES)
        : undefined;
    if (d.mirror && down.body === undefined) mirror(d.mirror, head, undefined);
    try {
      return await forwardLeased();
    } finally {
      requestLease?.();
      retryLease?.();
      if (d.mirror && down.body !== undefined) mirror(d.mirror, head, replay?.kept() ?? null);
    }

    async function forwardLeased(): Promise<Result> {
      let hashKey = hashKeyOf(cluster, hashHeaders, remote);
      /** Endpoints that failed this request; made on the first failure (most requests have none). */
      let exclude: Set<string> | undefined;
      const excludeEndpoint = (id: string): void => {
        exclude ??= new Set();
        exclude.add(id);
      };
      /** A try went out (the policy retried after a response, reset or timeout): no transparent failover after that. */
      let sent = false;
      budget?.recordRequest();
      let attempts = 0;
      let failures = 0;
      let retries = 0;
      let exhausted = false;
      /** After a policy retry, excluding failed endpoints is a preference: a lone endpoint is tried again. */
      let preferOthers = false;

      const done = (r: Result): Result => {
        if (retries > 0) r.retries = retries;
        // Exhausted means the last try failed in a retriable way and its failure is the answer.
        if (exhausted && r.status !== 0) r.flags.add(Flag.UpstreamRetryLimitExceeded);
        return r;
      };

      /** The synchronous verdict on a failed try; true = one retry counted and taken from the budget. */
      const mayRetry = (f: TryFailure): boolean => {
        if (!policy || gone || !policy.retriable(f)) return false;
        if (replay !== undefined && !replay.replayable()) return false;
        if (!policy.mayResend(down.method, f)) return false;
        if (retries >= policy.numRetries) {
          exhausted = true;
          return false;
        }
        if (deadline !== undefined && performance.now() >= deadline) return false;
        // Concurrent retries of the cluster (maxRetries): over the limit, the failed try is the answer.
        const lease = breaker?.acquire("retries");
        if (breaker !== undefined && lease === undefined) return false;
        if (budget !== undefined && !budget.tryAcquire()) {
          lease?.();
          trace("retry budget spent", { upstream: cluster.service });
          return false;
        }
        retries++;
        retryLease?.();
        retryLease = lease;
        return true;
      };

      /** Waits the backoff before retry number `retries`; false when the client left meanwhile. */
      const backoff = async (): Promise<boolean> => {
        let ms = policy?.backoffMs(retries) ?? 0;
        if (deadline !== undefined) ms = Math.min(ms, Math.max(0, deadline - performance.now()));
        if (ms > 0) await sleep(ms);
        preferOthers = true;
        return !gone;
      };

      /** The body can go to another cluster: none, not yet handed to a try, or kept whole. */
      const bodyReusable = (): boolean =>
        down.body === undefined || (replay !== undefined && (!replay.used || replay.replayable()));

      /** After a failure where nothing reached the peer: true = try again (free, or as a policy retry). */
      const againAfterUnsent = async (f: TryFailure): Promise<boolean> => {
        if (attempts < MAX_ATTEMPTS) return true;
        return mayRetry(f) && (await backoff());
      };

      for (;;) {
        for (;;) {
          let picked = pick(cluster, hashKey, exclude ?? NONE);
          if (picked === undefined && preferOthers && exclude !== undefined && exclude.size > 0)
            picked = pick(cluster, hashKey, NONE);
          if (picked === undefined) {
            // Every endpoint failed to connect: the policy may give them another chance after a backoff.
            if (failures > 0 && !preferOthers && mayRetry({ kind: "connect-failure" }) && (await backoff())) {
              continue;
            }
            break;
          }
          attempts++;
          const ep = picked.endpoint;
          const peer: PeerEndpoint = { address: ep.address, port: ep.port };
          // HTTP/1.1 to the peer for a plain request (no body or a declared length: a gRPC call only
          // when it came whole, see grpcWhole) to an L7 service, else a stream on the HTTP/2 session. An
          // h2c app's requests take at most H2_APP_H1_CONNECTIONS connections to one peer; beyond, they
          // share the session (an HTTP/1.1 app's concurrency is its own connection count already).
          const h1Pool =
            opts.h1Pool !== undefined &&
            h1CanSend(head, !down.body) &&
            (down.http1 || opts.h1Pool.busy(peer, cluster.service) < H2_APP_H1_CONNECTIONS) &&
            opts.h1Pool.speaksHttp1(peer, cluster.service)
              ? opts.h1Pool
              : undefined;
          let link: ClientHttp2Session | PeerConnection;
          let pendingLease: (() => void) | undefined;
          try {
            const ready = h1Pool
              ? h1Pool.take(peer, cluster.service)
              : opts.pool.pooled(peer, cluster.service);
            if (ready !== undefined) link = ready;
            else {
              // Waiting for a connection: a pending request (maxPendingRequests).
              pendingLease = breaker?.acquire("pending_requests");
              if (breaker !== undefined && pendingLease === undefined) {
                picked.done();
                return done(overflow(down, cluster, gone, "pending_requests"));
              }
              // A new connection takes one of the cluster's maxConnections, until it closes.
              const connections = cluster.breaker;
              const lease = connections ? () => connections.acquire("connections") : undefined;
              link = await (h1Pool
                ? withDeadline(
                    h1Pool.connect(peer, cluster.service, cluster.connectTimeoutMs, lease),
                    deadline,
                    (late) => h1Pool.release(late),
                  )
                : withDeadline(
                    opts.pool.session(peer, cluster.service, cluster.connectTimeoutMs, lease),
                    deadline,
                  ));
            }
          } catch (e) {
            picked.done();
            // An HTTP/2-only peer (a proxyless gRPC server): nothing was sent, and the pool remembers it;
            // picked again, it gets the request over HTTP/2 (still within the attempts: never a loop).
            if (e instanceof PeerWithoutHttp1 && attempts < MAX_ATTEMPTS) continue;
            if (e instanceof ConnectionLimitReached)
              return done(overflow(down, cluster, gone, "connections"));
            if (e instanceof DeadlineExceeded) {
              flags.add(Flag.UpstreamRequestTimeout);
              if (!gone) down.localReply(504, "upstream request timeout", Flag.UpstreamRequestTimeout);
              return done({ status: 504, flags, endpointId: ep.id });
            }
            logConnectFailure(cluster, ep, e);
            observe(cluster, ep.id, { kind: "gateway-error" });
            excludeEndpoint(ep.id);
            failures++;
            if (await againAfterUnsent({ kind: "connect-failure" })) continue;
            break;
          } finally {
            pendingLease?.();
          }
          const session = link instanceof PeerConnection ? undefined : link;
          if (gone) {
            picked.done();
            if (link instanceof PeerConnection) h1Pool?.release(link);
            flags.add(Flag.DownstreamConnectionTermination);
            return done({ status: 0, flags, endpointId: ep.id });
          }
          if (replay?.used && !replay.replayable()) {
            // The body went to a try that never started (a closing session) and was not kept whole.
            picked.done();
            if (link instanceof PeerConnection) h1Pool?.release(link);
            break;
          }
          const tryDown = replay?.used ? replay.downstream(down) : down;
          if (replay !== undefined) replay.used = true;
          let h1Call: PeerH1Call | undefined;
          const open =
            session !== undefined
              ? (events: UpstreamEvents) =>
                  openH2Call(
                    session,
                    toH2RequestHeaders(head, cluster.service),
                    tryDown.body === undefined,
                    events,
                    {
                      stripInternalResponse: false,
                    },
                  )
              : (events: UpstreamEvents) => {
                  const conn = link as PeerConnection;
                  try {
                    h1Call = new PeerH1Call(
                      h1Pool as Http1PeerPool,
                      conn,
                      head,
                      cluster.service,
                      tryDown.body === undefined,
                      events,
                    );
                  } catch (e) {
                    h1Pool?.release(conn);
                    throw e;
                  }
                  return h1Call;
                };
          const outcome = await relay(tryDown, open, {
            ...(deadline !== undefined ? { timeoutMs: deadline - performance.now() } : {}),
            ...(d.idleTimeoutMs !== undefined ? { idleTimeoutMs: d.idleTimeoutMs } : {}),
            retryRefused: true,
            ...(policy !== undefined
              ? {
                  retry: mayRetry,
                  ...(policy.perTryTimeoutMs !== undefined
                    ? { perTryTimeoutMs: policy.perTryTimeoutMs }
                    : {}),
                }
              : {}),
            ...(replay !== undefined && tryDown === down
              ? { onBodyChunk: (c: Buffer) => replay.record(c), onBodyEnd: (t) => replay.end(t) }
              : {}),
          });
          picked.done();
          observe(cluster, ep.id, tryResultOf(outcome));
          if (outcome.kind === "done") {
            return done({ status: outcome.status, flags: outcome.flags, endpointId: ep.id });
          }
          const sessionGone = session !== undefined && (session.closed || session.destroyed);
          if (outcome.kind === "retry" && outcome.failure !== undefined) {
            sent = true;
            // The policy took this try back (retry counted, budget taken): back off, then prefer another endpoint.
            trace("retrying", {
              endpoint: ep.id,
              retry: retries,
              why: outcome.failure.kind,
              detail: outcome.detail,
            });
            if (sessionGone) opts.pool.evict(session);
            excludeEndpoint(ep.id);
            if (await backoff()) continue;
            flags.add(Flag.DownstreamConnectionTermination);
            return done({ status: 0, flags, endpointId: ep.id });
          }
          // The session went away between pick and request, or the peer refused the stream: nothing was sent.
          trace("upstream stream not accepted; trying again", {
            endpoint: ep.id,
            detail: outcome.kind === "retry" ? outcome.detail : describeError(outcome.error),
          });
          // A refused stream (the peer's app is down) leaves a healthy session: keep it pooled.
          if (session !== undefined && (sessionGone || outcome.kind === "open-failed"))
            opts.pool.evict(session);
          // A refusal excludes the endpoint; a stale HTTP/1.1 connection says nothing about it.
          if (outcome.kind === "retry" && h1Call?.stale !== true) excludeEndpoint(ep.id);
          failures++;
          if (await againAfterUnsent({ kind: "refused-stream" })) continue;
          break;
        }
        // Every endpoint failed before anything was sent: the next failover cluster may take the request.
        const next = failures > 0 && !sent && !gone && bodyReusable() ? fallbacks?.shift() : undefined;
        if (next === undefined) break;
        trace("failing over within the request", {
          from: cluster.name ?? cluster.service,
          to: next.name ?? next.service,
        });
        cluster = next;
        hashKey = hashKeyOf(cluster, hashHeaders, remote);
        exclude?.clear();
        attempts = 0;
        failures = 0;
        preferOthers = false;
      }
      const flag = failures > 0 ? Flag.UpstreamConnectionFailure : Flag.NoHealthyUpstream;
      flags.add(flag);
      if (!gone) down.localReply(503, `no healthy upstream for ${cluster.service}`, flag);
      return done({ status: 503, flags });
    }
  }

  /** Fire and forget; `null` body = the request had one that was not kept whole (skipped). */
  function mirror(
    cluster: UpstreamCluster,
    head: RequestHead,
    body: ReturnType<ReplayBody["kept"]> | null,
  ): void {
    const name = cluster.name ?? cluster.service;
    const told = (r: MirrorResult): void => {
      try {
        opts.onMirror?.(name, r);
      } catch {
        // Metrics must never break traffic.
      }
    };
    if (body === null) {
      told("skipped");
      return;
    }
    void sendMirror(opts.pool, cluster, head, body).then(told);
  }

  /** Common entry for both app protocols: request validation, routing, forwarding, metrics. */
  function exchange(
    down: Downstream,
    parsed: ReturnType<typeof h1RequestHead>,
    hashHeaders: IncomingHeaders,
    remote: RemoteAddress,
    socket: Duplex | undefined,
  ): void {
    const started = performance.now();
    tracker.begin(socket);
    let decision: RouteDecision | undefined;
    let observer: OutboundRequestObserver | undefined;
    const done = (r: Result): void => {
      tracker.end(socket);
      report(decision, parsed.ok ? parsed.head : undefined, started, r, observer);
    };
    if (!parsed.ok) {
      down.localReply(parsed.status, parsed.reason, Flag.DownstreamProtocolError);
      done({ status: parsed.status, flags: new FlagSet().add(Flag.DownstreamProtocolError) });
      return;
    }
    observer = startObserver(parsed.head, false);
    // The scheme is the edge's to say (a gateway's route sets it); an app's own claim does not travel.
    delete parsed.head.headers[FORWARDED_PROTO];
    const d = decide(parsed.head, hashHeaders);
    decision = d;
    if (d.kind === "refuse") {
      down.localReply(d.status, d.detail, d.flags);
      done({ status: d.status, flags: new FlagSet().add(d.flags) });
      return;
    }
    if (d.kind === "reply") {
      done(directReply(down, d.status, d.headers, d.body));
      return;
    }
    routed(down, parsed.head, d, hashHeaders, remote, started).then(done, (e: unknown) => {
      // A bug, not an expected outcome: answer and log, never crash, never leak details to the app.
      logger?.warn({ upstream: d.cluster.service, error: describeError(e) }, "outbound request failed");
      if (!down.headersSent) down.localReply(500, "internal proxy error", "");
      else down.reset();
      done({ status: 500, flags: new FlagSet() });
    });
  }

  /** A forward decision carried out: fault injection first, then the route's changes, then forwarding. */
  async function routed(
    down: Downstream,
    head: RequestHead,
    d: ForwardDecision,
    hashHeaders: IncomingHeaders,
    remote: RemoteAddress,
    started: number,
  ): Promise<Result> {
    const flags = new FlagSet();
    let t0 = started;
    if (d.delayMs !== undefined && d.delayMs > 0) {
      flags.add(Flag.DelayInjected);
      let gone = false;
      down.onGone(() => {
        gone = true;
      });
      await sleep(d.delayMs);
      if (gone) return { status: 0, flags: flags.add(Flag.DownstreamConnectionTermination) };
      // The route's timeout counts from here: an injected delay is not the upstream's time.
      t0 = performance.now();
    }
    if (d.abort !== undefined) return faultAbort(down, d.abort, flags);
    const out = await forward(
      withResponseHeaderOps(down, d.responseHeaders),
      routedHead(head, d),
      d,
      hashHeaders,
      remote,
      t0,
    );
    out.flags = flags.addAll(out.flags);
    return out;
  }

  const closeAfter = (): boolean => tracker.draining;
  /** One options object for every request's adapter (not one per request). */
  const h1Options = { closeAfter };
  const h1 = createH1Server(limits, tracker, {
    request(req: IncomingMessage, res: ServerResponse) {
      const down = h1Downstream(req, res, h1Options);
      exchange(down, h1RequestHead(req, { stripInternal: true }), req.headers, req.socket, req.socket);
    },
    upgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
      void upgrade(req, socket, head);
    },
  });

  const h2 = createH2Server(
    limits,
    tracker,
    () => {},
    (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number) => {
      const down = h2Downstream(stream, headers, flags);
      if (down.grpc && down.body !== undefined && opts.h1Pool !== undefined) {
        // A unary call's message comes with its headers: one turn of the event loop tells.
        setImmediate(grpcWhole, stream, down, headers);
        return;
      }
      exchange(
        down,
        h2RequestHead(headers, { stripInternal: true }),
        headers,
        stream.session?.socket,
        undefined,
      );
    },
  );

  /**
   * A gRPC request whose body is all in hand (the client ended its stream, at most
   * MAX_REPLAY_BODY_BYTES, no trailers: a unary call) is sent with its length, so that it can cross
   * on the HTTP/1.1 hop like any plain request (cheaper than an HTTP/2 stream, see the README; the
   * response's grpc-status comes back in HTTP/1.1 trailers, or in the head of an empty response for
   * a trailers-only answer). Anything else (a stream still open: client or bidi streaming) goes as
   * it is, on the HTTP/2 session, having lost one turn of the event loop.
   */
  function grpcWhole(stream: ServerHttp2Stream, down: Downstream, headers: IncomingHttpHeaders): void {
    let whole: Downstream | undefined;
    let length = 0;
    if (
      !stream.destroyed &&
      stream.state.remoteClose === 1 &&
      stream.readableLength <= MAX_REPLAY_BODY_BYTES &&
      down.trailers() === undefined
    ) {
      const kept = new ReplayBody(MAX_REPLAY_BODY_BYTES);
      for (
        let chunk = stream.read() as Buffer | null;
        chunk !== null;
        chunk = stream.read() as Buffer | null
      ) {
        kept.record(chunk);
        length += chunk.length;
      }
      kept.end(undefined);
      if (kept.replayable()) whole = kept.downstream(down);
    }
    const parsed = h2RequestHead(headers, { stripInternal: true });
    if (whole !== undefined && parsed.ok) parsed.head.headers["content-length"] = String(length);
    exchange(whole ?? down, parsed, headers, stream.session?.socket, undefined);
  }

  const fast = opts.fastH1 ?? fastH1Default();

  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const started = performance.now();
    tracker.begin();
    tracker.tunnel(socket);
    let decision: RouteDecision | undefined;
    const flags = new FlagSet();
    let status = 0;
    let endpointId: string | undefined;
    let reqHead: RequestHead | undefined;
    let observer: OutboundRequestObserver | undefined;
    try {
      const parsed = h1RequestHead(req, { stripInternal: true });
      if (parsed.ok) reqHead = parsed.head;
      if (parsed.ok) observer = startObserver(parsed.head, true);
      if (!parsed.ok) {
        status = parsed.status;
        flags.add(Flag.DownstreamProtocolError);
        endWith(socket, rawLocalReply(parsed.status, parsed.reason, Flag.DownstreamProtocolError));
        return;
      }
      // Routes apply to upgrades too (a WebSocket path can be routed); faults, mirrors and header changes do not.
      const d = decide(parsed.head, req.headers);
      decision = d;
      if (d.kind !== "forward") {
        status = d.status;
        const flag = d.kind === "refuse" ? d.flags : "";
        if (flag !== "") flags.add(flag);
        endWith(
          socket,
          d.kind === "refuse"
            ? rawLocalReply(d.status, d.detail, d.flags)
            : rawReply(d.status, d.headers, d.body),
        );
        return;
      }
      const cluster = d.cluster;
      const timeoutMs = d.requestTimeoutMs ?? cluster.requestTimeoutMs;
      const deadline = timeoutMs !== undefined && timeoutMs > 0 ? started + timeoutMs : undefined;
      const exclude = new Set<string>();
      const hashKey = hashKeyOf(cluster, req.headers, req.socket);
      let failures = 0;
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const picked = pick(cluster, hashKey, exclude);
        if (picked === undefined) break;
        const ep = picked.endpoint;
        let upstream: Duplex;
        // A tunnel is a connection of its own: it holds one of the cluster's maxConnections while open.
        const connectionLease = cluster.breaker?.acquire("connections");
        if (cluster.breaker !== undefined && connectionLease === undefined) {
          picked.done();
          status = 503;
          flags.add(Flag.UpstreamOverflow);
          endWith(
            socket,
            rawLocalReply(
              503,
              `upstream overflow: connections limit of ${cluster.service}`,
              Flag.UpstreamOverflow,
            ),
          );
          return;
        }
        try {
          const conn = await withDeadline(
            opts.pool.connect(ep, cluster.service, cluster.connectTimeoutMs, ["http/1.1"]),
            deadline,
            (late) => late.socket.destroy(),
          );
          upstream = conn.socket;
        } catch (e) {
          picked.done();
          connectionLease?.();
          if (e instanceof DeadlineExceeded) {
            status = 504;
            flags.add(Flag.UpstreamRequestTimeout);
            endWith(socket, rawLocalReply(504, "upstream request timeout", Flag.UpstreamRequestTimeout));
            return;
          }
          logConnectFailure(cluster, ep, e);
          exclude.add(ep.id);
          failures++;
          continue;
        }
        endpointId = ep.id;
        upstream.once("close", () => connectionLease?.());
        if (socket.destroyed) {
          picked.done();
          upstream.destroy();
          flags.add(Flag.DownstreamConnectionTermination);
          return;
        }
        const result = await relayUpgrade({
          client: socket,
          clientHead: head,
          upstream,
          request: {
            method: parsed.head.method,
            path: d.path ?? parsed.head.path,
            rawHeaders: filterRaw(req.rawHeaders, (n) => isInternalHeader(n) || n === FORWARDED_PROTO),
          },
          ...(deadline !== undefined ? { timeoutMs: Math.max(0, deadline - performance.now()) } : {}),
          idleTimeoutMs: limits.idleTimeoutMs,
          maxHeaderSize: limits.maxHeaderBytes,
        });
        picked.done();
        status = result.status;
        flags.addAll(result.flags);
        return;
      }
      status = 503;
      const flag = failures > 0 ? Flag.UpstreamConnectionFailure : Flag.NoHealthyUpstream;
      flags.add(flag);
      endWith(socket, rawLocalReply(503, `no healthy upstream for ${cluster.service}`, flag));
    } catch (e) {
      logger?.warn({ error: describeError(e) }, "outbound upgrade failed");
      socket.destroy();
    } finally {
      tracker.end();
      report(
        decision,
        reqHead,
        started,
        { status, flags, ...(endpointId !== undefined ? { endpointId } : {}) },
        observer,
      );
    }
  }

  return {
    handle(socket, protocol) {
      socket.on("error", () => {});
      if (tracker.draining) {
        socket.destroy();
        return;
      }
      if (protocol === "http") {
        tracker.addConnection(socket);
        if (!fast) h1.emit("connection", socket);
        else
          serveFastH1(socket, {
            limits,
            slow: h1,
            closeAfter,
            peer: false,
            request(req, down, s) {
              exchange(down, h1RequestHead(req, STRIP_INTERNAL), req.headers, s, s);
            },
          });
      } else {
        h2.emit("connection", socket);
      }
    },
    async close() {
      await tracker.drain();
      h1.close();
    },
    destroy() {
      tracker.destroyAll();
      h1.close();
    },
    inFlight: () => tracker.inFlight,
  };
}
