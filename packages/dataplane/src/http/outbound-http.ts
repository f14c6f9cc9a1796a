import type { IncomingMessage, ServerResponse } from "node:http";
import type { ClientHttp2Session, IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { Socket } from "node:net";
import { performance } from "node:perf_hooks";
import type { Duplex } from "node:stream";
import { describeError, isWeftError, tracer } from "@weft/core";
import type { DataplaneLogger } from "../logger.js";
import { isPeerRefused } from "../transport/mtls.js";
import { h1Downstream, h2Downstream } from "./downstream.js";
import { DrainTracker } from "./drain.js";
import { Flag, FlagSet } from "./flags.js";
import { openH2Call } from "./h2-call.js";
import type { Http2PeerPool, PeerEndpoint } from "./h2-peer-pool.js";
import { h1RequestHead, h2RequestHead, type RequestHead, toH2RequestHeaders } from "./headers.js";
import { createH1Server, createH2Server } from "./listener.js";
import { rawLocalReply } from "./local-reply.js";
import { relay } from "./relay.js";
import {
  type Downstream,
  type HttpLimits,
  type HttpProtocol,
  type IncomingHeaders,
  type OutboundRequestEvent,
  type PickedEndpoint,
  resolveLimits,
  type UpstreamCluster,
} from "./types.js";
import { endWith, relayUpgrade, withoutInternal } from "./upgrade.js";

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
  /** The upstream for this listener; undefined → 503 with flag NR. Called once per request. */
  cluster: () => UpstreamCluster | undefined;
  pool: Http2PeerPool;
  logger?: DataplaneLogger;
  onRequest?: (e: OutboundRequestEvent) => void;
  limits?: Partial<HttpLimits>;
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
}

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

  const currentCluster = (): UpstreamCluster | undefined => {
    try {
      return opts.cluster();
    } catch (e) {
      logger?.warn({ error: describeError(e) }, "outbound cluster lookup failed");
      return undefined;
    }
  };

  const report = (cluster: UpstreamCluster | undefined, started: number, r: Result): void => {
    try {
      opts.onRequest?.({
        upstream: cluster?.service ?? "",
        status: r.status,
        flags: r.flags.toString(),
        durationMs: performance.now() - started,
        ...(r.endpointId !== undefined ? { endpointId: r.endpointId } : {}),
      });
    } catch {
      // Metrics must never break traffic.
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

  const hashKeyOf = (
    cluster: UpstreamCluster,
    headers: IncomingHeaders,
    remote: string | undefined,
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

  /** Picks, connects and relays one request; every path ends in exactly one response to the app. */
  async function forward(
    down: Downstream,
    head: RequestHead,
    cluster: UpstreamCluster,
    hashHeaders: IncomingHeaders,
    remote: string | undefined,
    started: number,
  ): Promise<Result> {
    const flags = new FlagSet();
    const deadline =
      cluster.requestTimeoutMs !== undefined && cluster.requestTimeoutMs > 0
        ? started + cluster.requestTimeoutMs
        : undefined;
    let gone = false;
    down.onGone(() => {
      gone = true;
    });
    const hashKey = hashKeyOf(cluster, hashHeaders, remote);
    const exclude = new Set<string>();
    let failures = 0;

    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const picked = pick(cluster, hashKey, exclude);
      if (picked === undefined) break;
      const ep = picked.endpoint;
      const peer: PeerEndpoint = { address: ep.address, port: ep.port };
      let session: ClientHttp2Session;
      try {
        session = await withDeadline(
          opts.pool.session(peer, cluster.service, cluster.connectTimeoutMs),
          deadline,
        );
      } catch (e) {
        picked.done();
        if (e instanceof DeadlineExceeded) {
          flags.add(Flag.UpstreamRequestTimeout);
          if (!gone) down.localReply(504, "upstream request timeout", Flag.UpstreamRequestTimeout);
          return { status: 504, flags, endpointId: ep.id };
        }
        logConnectFailure(cluster, ep, e);
        exclude.add(ep.id);
        failures++;
        continue;
      }
      if (gone) {
        picked.done();
        flags.add(Flag.DownstreamConnectionTermination);
        return { status: 0, flags, endpointId: ep.id };
      }
      const h2Headers = toH2RequestHeaders(head, cluster.service);
      const outcome = await relay(
        down,
        (events) =>
          openH2Call(session, h2Headers, down.body === undefined, events, { stripInternalResponse: false }),
        {
          ...(deadline !== undefined ? { timeoutMs: deadline - performance.now() } : {}),
          retryRefused: true,
        },
      );
      picked.done();
      if (outcome.kind === "done") return { status: outcome.status, flags: outcome.flags, endpointId: ep.id };
      // The session went away between pick and request, or the peer refused the stream: nothing was sent.
      trace("upstream stream not accepted; trying again", {
        endpoint: ep.id,
        detail: outcome.kind === "retry" ? outcome.detail : describeError(outcome.error),
      });
      // A refused stream (the peer's app is down) leaves a healthy session: keep it pooled.
      if (session.closed || session.destroyed || outcome.kind === "open-failed") opts.pool.evict(session);
      if (outcome.kind === "retry") exclude.add(ep.id);
      failures++;
    }
    const flag = failures > 0 ? Flag.UpstreamConnectionFailure : Flag.NoHealthyUpstream;
    flags.add(flag);
    if (!gone) down.localReply(503, `no healthy upstream for ${cluster.service}`, flag);
    return { status: 503, flags };
  }

  /** Common entry for both app protocols: config lookup, request validation, forwarding, metrics. */
  function exchange(
    down: Downstream,
    parsed: ReturnType<typeof h1RequestHead>,
    hashHeaders: IncomingHeaders,
    remote: string | undefined,
    socket: Duplex | undefined,
  ): void {
    const started = performance.now();
    tracker.begin(socket);
    const cluster = currentCluster();
    const done = (r: Result): void => {
      tracker.end(socket);
      report(cluster, started, r);
    };
    if (!parsed.ok) {
      down.localReply(parsed.status, parsed.reason, Flag.DownstreamProtocolError);
      done({ status: parsed.status, flags: new FlagSet().add(Flag.DownstreamProtocolError) });
      return;
    }
    if (cluster === undefined) {
      down.localReply(503, "no route: this listener has no configuration yet", Flag.NoRoute);
      done({ status: 503, flags: new FlagSet().add(Flag.NoRoute) });
      return;
    }
    forward(down, parsed.head, cluster, hashHeaders, remote, started).then(done, (e: unknown) => {
      // A bug, not an expected outcome: answer and log, never crash, never leak details to the app.
      logger?.warn({ upstream: cluster.service, error: describeError(e) }, "outbound request failed");
      down.localReply(500, "internal proxy error", "");
      done({ status: 500, flags: new FlagSet() });
    });
  }

  const h1 = createH1Server(limits, tracker, {
    request(req: IncomingMessage, res: ServerResponse) {
      const down = h1Downstream(req, res, { closeAfter: () => tracker.draining });
      exchange(
        down,
        h1RequestHead(req, { stripInternal: true }),
        req.headers,
        req.socket.remoteAddress,
        req.socket,
      );
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
      exchange(
        down,
        h2RequestHead(headers, { stripInternal: true }),
        headers,
        stream.session?.socket?.remoteAddress,
        undefined,
      );
    },
  );

  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const started = performance.now();
    tracker.begin();
    tracker.tunnel(socket);
    const cluster = currentCluster();
    const flags = new FlagSet();
    let status = 0;
    let endpointId: string | undefined;
    try {
      const parsed = h1RequestHead(req, { stripInternal: true });
      if (!parsed.ok) {
        status = parsed.status;
        flags.add(Flag.DownstreamProtocolError);
        endWith(socket, rawLocalReply(parsed.status, parsed.reason, Flag.DownstreamProtocolError));
        return;
      }
      if (cluster === undefined) {
        status = 503;
        flags.add(Flag.NoRoute);
        endWith(socket, rawLocalReply(503, "no route: this listener has no configuration yet", Flag.NoRoute));
        return;
      }
      const deadline =
        cluster.requestTimeoutMs !== undefined && cluster.requestTimeoutMs > 0
          ? started + cluster.requestTimeoutMs
          : undefined;
      const exclude = new Set<string>();
      const hashKey = hashKeyOf(cluster, req.headers, req.socket.remoteAddress);
      let failures = 0;
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const picked = pick(cluster, hashKey, exclude);
        if (picked === undefined) break;
        const ep = picked.endpoint;
        let upstream: Duplex;
        try {
          const conn = await withDeadline(
            opts.pool.connect(ep, cluster.service, cluster.connectTimeoutMs, ["http/1.1"]),
            deadline,
            (late) => late.socket.destroy(),
          );
          upstream = conn.socket;
        } catch (e) {
          picked.done();
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
            path: parsed.head.path,
            rawHeaders: withoutInternal(req.rawHeaders),
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
      report(cluster, started, { status, flags, ...(endpointId !== undefined ? { endpointId } : {}) });
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
        h1.emit("connection", socket);
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
