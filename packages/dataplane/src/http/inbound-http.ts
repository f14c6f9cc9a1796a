import type { IncomingMessage, ServerResponse } from "node:http";
import type { IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from "node:http2";
import net from "node:net";
import { performance } from "node:perf_hooks";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { describeError } from "@weft/core";
import type { DataplaneLogger } from "../logger.js";
import { type AppTarget, createAppClient } from "./app-client.js";
import { h1Downstream, h2Downstream } from "./downstream.js";
import { DrainTracker } from "./drain.js";
import { Flag, FlagSet } from "./flags.js";
import { fastH1Default, serveFastH1 } from "./h1-fast/connection.js";
import {
  type HeadResult,
  h1RequestHead,
  h2RequestHead,
  headerGetter,
  isInternalHeader,
  joinHeader,
  type RequestHead,
  validOriginTarget,
  XFCC,
} from "./headers.js";
import { createH1Server, createH2Server } from "./listener.js";
import { rawLocalReply } from "./local-reply.js";
import type { RateLimitVerdict } from "./rate-limit.js";
import { relay } from "./relay.js";
import {
  type Downstream,
  type HttpLimits,
  type InboundAuthorize,
  type InboundDecision,
  type InboundRequestEvent,
  type IncomingHeaders,
  resolveLimits,
} from "./types.js";
import { endWith, filterRaw, relayUpgrade } from "./upgrade.js";

/**
 * The inbound side: verified mTLS connections from peer proxies (ALPN "h2",
 * or "http/1.1" for HTTP/1.1 apps' requests and upgrades) → authorize → the
 * app on loopback.
 * A refusal is answered here and never touches the app. The app sees the
 * canonical target that was authorized, never the raw one, and an
 * `x-forwarded-client-cert` we set (whatever the peer sent is dropped).
 */

export interface InboundPeer {
  service: string;
  spiffeId: string;
}

export interface InboundHttpOptions {
  app: AppTarget;
  authorize: InboundAuthorize;
  /** The proxy's own SPIFFE ID, for x-forwarded-client-cert. */
  selfSpiffeId: string;
  /** Larger bodies get 413 (declared Content-Length up front, streamed bytes as they come). */
  maxRequestBodyBytes?: number;
  logger?: DataplaneLogger;
  onRequest?: (e: InboundRequestEvent) => void;
  /**
   * Called once per request whose head parsed, before authorization (tracing, access logs). It may
   * change `head.headers` in place (forwarded to the app); `upgrade`: a protocol upgrade, forwarded
   * with its original fields. Must not throw.
   */
  onRequestStart?: (
    head: RequestHead,
    peer: InboundPeer,
    upgrade: boolean,
  ) => InboundRequestObserver | undefined;
  limits?: Partial<HttpLimits>;
  /** Plain HTTP/1.1 requests through the fast front (h1-fast/); default on unless WEFT_FAST_H1=0. */
  fastH1?: boolean;
  /** Connecting to the app (upgrades); default 5 s. */
  appConnectTimeoutMs?: number;
  /**
   * Local rate limit, asked once per authorized request with the canonical
   * path (no query); a refusal is a 429 with `retry-after`, flag RL, and never
   * reaches the app. Must not throw; must not block.
   */
  rateLimit?: (req: { peerService: string; path: string }) => RateLimitVerdict;
}

export interface InboundHttp {
  /** A verified connection whose ALPN is "h2" or "http/1.1" (requests and upgrades). */
  handle(socket: TLSSocket, peer: InboundPeer): void;
  close(): Promise<void>;
  destroy(): void;
  inFlight(): number;
}

/** What `onRequestStart` returned for one request: told its event once, just before `onRequest`. */
export interface InboundRequestObserver {
  end(e: InboundRequestEvent): void;
}

/** A verified peer, with what every request from it carries (made once per connection). */
interface KnownPeer extends InboundPeer {
  /** Our x-forwarded-client-cert for its requests. */
  xfcc: string;
}

const noop = (): void => {};
const FORWARDED_PROTO = "x-forwarded-proto";
const STRIP_INTERNAL = { stripInternal: true } as const;

/**
 * The scheme the app is told: "https" when the calling mesh member (an
 * ingress gateway that terminated TLS) says so, else "http". Only these two
 * values pass; the peer is an authenticated mesh member, as in Istio, where
 * sidecars pass the edge's x-forwarded-proto through.
 */
function forwardedProto(value: string | string[] | undefined): "http" | "https" {
  return value === "https" ? "https" : "http";
}
/** node:http's errors for a request it refuses to write (a value or target that would break framing). */
const INVALID_REQUEST_ERRORS = new Set([
  "ERR_INVALID_CHAR",
  "ERR_UNESCAPED_CHARACTERS",
  "ERR_INVALID_HTTP_TOKEN",
]);

export function createInboundHttp(opts: InboundHttpOptions): InboundHttp {
  const limits = resolveLimits(opts.limits);
  const tracker = new DrainTracker();
  const logger = opts.logger;
  const app = createAppClient(opts.app, logger);
  const sessionPeers = new WeakMap<ServerHttp2Session, KnownPeer>();
  const socketPeers = new WeakMap<Duplex, KnownPeer>();
  /** The peer of the connection being handed to the HTTP/2 server (its "session" event is synchronous). */
  let handing: KnownPeer | undefined;

  const report = (
    peer: InboundPeer,
    started: number,
    status: number,
    flags: FlagSet,
    observer?: InboundRequestObserver,
    request?: { method: string; path: string },
  ): void => {
    try {
      const e: InboundRequestEvent = {
        peerService: peer.service,
        status,
        flags: flags.toString(),
        durationMs: performance.now() - started,
      };
      if (request !== undefined) {
        e.method = request.method;
        e.path = request.path;
      }
      observer?.end(e);
      opts.onRequest?.(e);
    } catch {
      // Metrics must never break traffic.
    }
  };

  const startObserver = (
    head: RequestHead,
    peer: InboundPeer,
    upgrade: boolean,
  ): InboundRequestObserver | undefined => {
    try {
      return opts.onRequestStart?.(head, peer, upgrade);
    } catch {
      return undefined;
    }
  };

  type Verdict =
    | { ok: true; target: string }
    | { ok: false; status: number; body: string; flags: string; headers?: Record<string, string> };

  /** After authorization, so a denied request takes no token (and cannot starve allowed sources). */
  const applyRateLimit = (peer: InboundPeer, target: string): Verdict => {
    if (opts.rateLimit === undefined) return { ok: true, target };
    const q = target.indexOf("?");
    let v: RateLimitVerdict;
    try {
      v = opts.rateLimit({ peerService: peer.service, path: q === -1 ? target : target.slice(0, q) });
    } catch (e) {
      // Failing open: a broken limiter must not take the service down with it.
      logger?.warn({ peer: peer.service, error: describeError(e) }, "inbound rate limit failed");
      return { ok: true, target };
    }
    if (v.ok) return { ok: true, target };
    return {
      ok: false,
      status: 429,
      body: "local rate limit exceeded",
      flags: Flag.RateLimited,
      headers: { "retry-after": String(v.retryAfterSeconds) },
    };
  };

  /** Authorization, failing closed: a throwing authorizer or an unusable target refuses the request. */
  const decide = (
    peer: InboundPeer,
    method: string,
    rawTarget: string,
    headers: IncomingHeaders,
  ): Verdict => {
    let decision: InboundDecision;
    try {
      decision = opts.authorize({
        peerService: peer.service,
        method,
        rawTarget,
        header: headerGetter(headers),
      });
    } catch (e) {
      logger?.warn({ peer: peer.service, error: describeError(e) }, "inbound authorization failed");
      return { ok: false, status: 500, body: "internal proxy error", flags: "" };
    }
    if (!decision.allow)
      return { ok: false, status: decision.status, body: decision.body, flags: decision.flags };
    const target = decision.target;
    if (!(target === "*" ? method === "OPTIONS" : validOriginTarget(target))) {
      logger?.warn({ peer: peer.service, target }, "authorizer returned an invalid target");
      return { ok: false, status: 400, body: "invalid request target", flags: Flag.DownstreamProtocolError };
    }
    return { ok: true, target };
  };

  async function forward(down: Downstream, head: RequestHead): Promise<{ status: number; flags: FlagSet }> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const prepared = await app.prepare();
      if (!prepared.ok) {
        logger?.warn(
          { app: `${opts.app.host}:${opts.app.port}`, error: prepared.detail },
          "local app unreachable",
        );
        // Refused (not 503) so that the peer proxy tries another endpoint: the app never saw it.
        if (!down.refuse()) down.localReply(503, "upstream connect error", Flag.UpstreamConnectionFailure);
        return { status: 503, flags: new FlagSet().add(Flag.UpstreamConnectionFailure) };
      }
      const outcome = await relay(down, (events) => prepared.open(head, down.body === undefined, events), {
        ...(opts.maxRequestBodyBytes !== undefined ? { maxRequestBodyBytes: opts.maxRequestBodyBytes } : {}),
        refuseOnConnectFailure: true,
      });
      if (outcome.kind === "done") {
        if (outcome.flags.has(Flag.UpstreamConnectionFailure)) {
          logger?.warn({ app: `${opts.app.host}:${opts.app.port}` }, "local app unreachable");
        }
        return { status: outcome.status, flags: outcome.flags };
      }
      if (outcome.kind === "open-failed") {
        const code = (outcome.error as NodeJS.ErrnoException | undefined)?.code;
        if (code !== undefined && INVALID_REQUEST_ERRORS.has(code)) {
          down.localReply(400, "request cannot be forwarded", Flag.DownstreamProtocolError);
          return { status: 400, flags: new FlagSet().add(Flag.DownstreamProtocolError) };
        }
      }
      // The app's h2c session was closing, or refused the stream: one more try on a fresh one.
    }
    down.localReply(503, "upstream connect error", Flag.UpstreamConnectionFailure);
    return { status: 503, flags: new FlagSet().add(Flag.UpstreamConnectionFailure) };
  }

  function exchange(
    down: Downstream,
    parsed: HeadResult,
    rawTarget: string,
    headers: IncomingHeaders,
    peer: KnownPeer,
    socket: Duplex | undefined,
  ): void {
    const started = performance.now();
    tracker.begin(socket);
    let observer: InboundRequestObserver | undefined;
    const done = (status: number, flags: FlagSet): void => {
      tracker.end(socket);
      report(
        peer,
        started,
        status,
        flags,
        observer,
        parsed.ok ? { method: parsed.head.method, path: rawTarget } : undefined,
      );
    };
    const refuse = (status: number, body: string, flags: string, extra?: Record<string, string>): void => {
      down.localReply(status, body, flags, extra);
      done(status, new FlagSet().add(flags));
    };
    if (!parsed.ok) {
      refuse(parsed.status, parsed.reason, Flag.DownstreamProtocolError);
      return;
    }
    observer = startObserver(parsed.head, peer, false);
    const authorized = decide(peer, parsed.head.method, rawTarget, headers);
    const verdict = authorized.ok ? applyRateLimit(peer, authorized.target) : authorized;
    if (!verdict.ok) {
      refuse(verdict.status, verdict.body, verdict.flags, verdict.headers);
      return;
    }
    const limit = opts.maxRequestBodyBytes;
    const declared = Number(joinHeader(headers["content-length"]) ?? "0");
    if (limit !== undefined && declared > limit) {
      refuse(413, "request body too large", "");
      return;
    }
    // parsed.head.headers is a fresh map (headers.ts copies every field it keeps): completed in place
    // rather than copied twice per request. Any x-forwarded-client-cert from the peer was stripped with
    // the other internal fields; x-forwarded-proto is normalised (forwardedProto).
    const p = parsed.head;
    p.headers[XFCC] = peer.xfcc;
    p.headers[FORWARDED_PROTO] = forwardedProto(p.headers[FORWARDED_PROTO]);
    const head: RequestHead = {
      method: p.method,
      path: verdict.target,
      authority: p.authority,
      headers: p.headers,
    };
    forward(down, head).then(
      (r) => done(r.status, r.flags),
      (e: unknown) => {
        logger?.warn({ peer: peer.service, error: describeError(e) }, "inbound request failed");
        down.localReply(500, "internal proxy error", "");
        done(500, new FlagSet());
      },
    );
  }

  const h2 = createH2Server(
    limits,
    tracker,
    (session: ServerHttp2Session) => {
      if (handing === undefined) {
        // Only connections handed in by handle() (with their verified peer) are served.
        session.destroy();
        return;
      }
      sessionPeers.set(session, handing);
    },
    (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number) => {
      const peer = sessionPeers.get(stream.session as ServerHttp2Session);
      if (peer === undefined) {
        stream.close();
        return;
      }
      const down = h2Downstream(stream, headers, flags);
      const rawTarget = joinHeader(headers[":path"]) ?? "";
      exchange(down, h2RequestHead(headers, { stripInternal: true }), rawTarget, headers, peer, undefined);
    },
  );

  const closeAfter = (): boolean => tracker.draining;
  /** One options object for every request's adapter (not one per request). */
  const h1Options = { closeAfter, peer: true };
  const h1 = createH1Server(limits, tracker, {
    request(req: IncomingMessage, res: ServerResponse) {
      const peer = socketPeers.get(req.socket);
      // A request on a connection we already ended (idle on drain) is never processed: the peer
      // proxy takes our end of the connection for "not processed" and sends it elsewhere.
      if (peer === undefined || req.socket.writableEnded) {
        req.socket.destroy();
        return;
      }
      const down = h1Downstream(req, res, h1Options);
      exchange(
        down,
        h1RequestHead(req, { stripInternal: true }),
        req.url ?? "",
        req.headers,
        peer,
        req.socket,
      );
    },
    upgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
      void upgrade(req, socket, head);
    },
  });

  const fast = opts.fastH1 ?? fastH1Default();

  function connectApp(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: opts.app.host, port: opts.app.port });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error("connect timeout"));
      }, opts.appConnectTimeoutMs ?? 5_000);
      sock.once("connect", () => {
        clearTimeout(timer);
        resolve(sock);
      });
      // Stays attached: the socket must never be without an "error" listener.
      sock.on("error", (e: Error) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  async function upgrade(req: IncomingMessage, socket: Duplex, clientHead: Buffer): Promise<void> {
    const peer = socketPeers.get(socket);
    if (peer === undefined) {
      socket.destroy();
      return;
    }
    const started = performance.now();
    tracker.begin();
    tracker.tunnel(socket);
    let status = 0;
    const flags = new FlagSet();
    let observer: InboundRequestObserver | undefined;
    const refuse = (s: number, body: string, f: string, extra?: Record<string, string>): void => {
      status = s;
      flags.add(f);
      endWith(socket, rawLocalReply(s, body, f, extra));
    };
    try {
      const parsed = h1RequestHead(req, { stripInternal: true });
      if (!parsed.ok) {
        refuse(parsed.status, parsed.reason, Flag.DownstreamProtocolError);
        return;
      }
      observer = startObserver(parsed.head, peer, true);
      const authorized = decide(peer, parsed.head.method, req.url ?? "", req.headers);
      const verdict = authorized.ok ? applyRateLimit(peer, authorized.target) : authorized;
      if (!verdict.ok) {
        refuse(verdict.status, verdict.body, verdict.flags, verdict.headers);
        return;
      }
      let appSocket: net.Socket;
      try {
        appSocket = await connectApp();
      } catch (e) {
        logger?.warn(
          { app: `${opts.app.host}:${opts.app.port}`, error: describeError(e) },
          "local app unreachable",
        );
        refuse(503, "upstream connect error", Flag.UpstreamConnectionFailure);
        return;
      }
      if (socket.destroyed) {
        appSocket.destroy();
        flags.add(Flag.DownstreamConnectionTermination);
        return;
      }
      const rawHeaders = filterRaw(
        req.rawHeaders,
        (name) => isInternalHeader(name) || name === FORWARDED_PROTO,
      );
      rawHeaders.push(XFCC, peer.xfcc, FORWARDED_PROTO, forwardedProto(req.headers[FORWARDED_PROTO]));
      const result = await relayUpgrade({
        client: socket,
        clientHead,
        upstream: appSocket,
        request: { method: parsed.head.method, path: verdict.target, rawHeaders },
        idleTimeoutMs: limits.idleTimeoutMs,
        maxHeaderSize: limits.maxHeaderBytes,
      });
      status = result.status;
      flags.addAll(result.flags);
    } catch (e) {
      logger?.warn({ peer: peer.service, error: describeError(e) }, "inbound upgrade failed");
      socket.destroy();
    } finally {
      tracker.end();
      report(peer, started, status, flags, observer);
    }
  }

  return {
    handle(socket, peer) {
      socket.on("error", noop);
      if (tracker.draining) {
        socket.destroy();
        return;
      }
      const who: KnownPeer = {
        service: peer.service,
        spiffeId: peer.spiffeId,
        xfcc: `By=${opts.selfSpiffeId};URI=${peer.spiffeId}`,
      };
      if (socket.alpnProtocol === "h2") {
        handing = who;
        try {
          h2.emit("connection", socket);
        } finally {
          handing = undefined;
        }
      } else if (socket.alpnProtocol === "http/1.1") {
        socketPeers.set(socket, who);
        tracker.addConnection(socket);
        if (!fast) h1.emit("connection", socket);
        else
          serveFastH1(socket, {
            limits,
            slow: h1,
            closeAfter,
            peer: true,
            request(req, down) {
              exchange(down, h1RequestHead(req, STRIP_INTERNAL), req.url, req.headers, who, socket);
            },
          });
      } else {
        socket.destroy();
      }
    },
    async close() {
      await tracker.drain();
      await app.close();
      h1.close();
    },
    destroy() {
      tracker.destroyAll();
      app.destroy();
      h1.close();
    },
    inFlight: () => tracker.inFlight,
  };
}
