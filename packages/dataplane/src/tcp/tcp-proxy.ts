/**
 * L4 proxying. Outbound: an app connection on the upstream's loopback port
 * -> pick a healthy endpoint -> mTLS (ALPN weft-tcp/1) to its sidecar,
 * checking the peer is the upstream service -> splice. A connect failure
 * excludes that endpoint and tries another (before any byte was sent).
 * Inbound: a verified mTLS connection -> L4 authorization by the source
 * service (deny = close) -> local rate limit (the sidecar's decision; refused
 * = close) -> plain TCP to the app on loopback -> splice.
 */
import net, { type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { describeError } from "@weft/core";
import type { Breaker } from "../cluster/breaker.js";
import type { DataplaneLogger } from "../logger.js";
import { connectMtls, type MaterialSource } from "../transport/mtls.js";
import { type SpliceResult, splice } from "./splice.js";

export const TCP_ALPN = "weft-tcp/1";
/** Endpoints tried per connection before giving up. */
export const MAX_CONNECT_ATTEMPTS = 3;

export interface PickedEndpoint {
  endpoint: { id: string; address: string; port: number };
  done(): void;
}

export interface TcpUpstream {
  service: string;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** Circuit breaking: one "connections" lease per proxied connection (maxConnections). */
  breaker?: Breaker;
  pick(ctx: { exclude: ReadonlySet<string>; hashKey?: string }): PickedEndpoint | undefined;
}

export interface TcpEvent {
  direction: "outbound" | "inbound";
  /** The upstream service (outbound) or the source service (inbound). */
  peer: string;
  result: "ok" | "denied" | "rate-limited" | "no-endpoint" | "connect-failed" | "overflow" | "error";
  bytesSent: number;
  bytesReceived: number;
  endpointId?: string;
  detail?: string;
}

export interface TcpOptions {
  logger?: DataplaneLogger;
  onConnection?: (e: TcpEvent) => void;
}

export async function proxyOutboundTcp(
  app: Socket,
  upstream: TcpUpstream,
  source: MaterialSource,
  o: TcpOptions = {},
): Promise<void> {
  // Hold the app's bytes in the kernel until the upstream is there.
  app.pause();
  app.on("error", () => {});
  // "overflow": the cluster's maxConnections was reached; the app's connection is reset at once.
  const lease = upstream.breaker?.acquire("connections");
  if (upstream.breaker !== undefined && lease === undefined) {
    o.onConnection?.({
      direction: "outbound",
      peer: upstream.service,
      result: "overflow",
      bytesSent: 0,
      bytesReceived: 0,
      detail: "maxConnections reached",
    });
    app.resetAndDestroy();
    return;
  }
  let spliced = false;
  try {
    spliced = await connectAndSplice(app, upstream, source, o, () => lease?.());
  } finally {
    if (!spliced) lease?.();
  }
}

/** True when the connection is spliced (then `release` runs when it ends). */
async function connectAndSplice(
  app: Socket,
  upstream: TcpUpstream,
  source: MaterialSource,
  o: TcpOptions,
  release: () => void,
): Promise<boolean> {
  const exclude = new Set<string>();
  const hashKey = app.remoteAddress;
  let lastError = "no healthy endpoint";
  for (let attempt = 0; attempt < MAX_CONNECT_ATTEMPTS; attempt++) {
    const picked = upstream.pick(hashKey === undefined ? { exclude } : { exclude, hashKey });
    if (!picked) break;
    const ep = picked.endpoint;
    try {
      const { socket } = await connectMtls({
        host: ep.address,
        port: ep.port,
        source,
        expectService: upstream.service,
        alpn: [TCP_ALPN],
        timeoutMs: upstream.connectTimeoutMs,
        allowHalfOpen: true,
      });
      if (app.destroyed) {
        picked.done();
        socket.destroy();
        return false;
      }
      splice(app, socket, {
        idleTimeoutMs: upstream.idleTimeoutMs,
        onDone: (r: SpliceResult) => {
          picked.done();
          release();
          o.onConnection?.({
            direction: "outbound",
            peer: upstream.service,
            result: r.error ? "error" : "ok",
            bytesSent: r.aToB,
            bytesReceived: r.bToA,
            endpointId: ep.id,
            ...(r.error ? { detail: r.error.message } : {}),
          });
        },
      });
      app.resume();
      return true;
    } catch (e) {
      picked.done();
      exclude.add(ep.id);
      lastError = describeError(e);
      o.logger?.warn(
        { upstream: upstream.service, endpoint: ep.id, err: lastError },
        "upstream connect failed",
      );
    }
  }
  o.onConnection?.({
    direction: "outbound",
    peer: upstream.service,
    result: exclude.size > 0 ? "connect-failed" : "no-endpoint",
    bytesSent: 0,
    bytesReceived: 0,
    detail: lastError,
  });
  // Nothing to reach: a reset tells the app at once (a clean FIN would look like an empty answer).
  app.resetAndDestroy();
  return false;
}

export function proxyInboundTcp(
  peerSocket: TLSSocket,
  source: string,
  /** A refusal closes the connection; `rateLimited` reports it as such rather than as a denial. */
  decision: { allow: boolean; reason: string; rateLimited?: boolean },
  app: { host: string; port: number; connectTimeoutMs?: number; idleTimeoutMs?: number },
  o: TcpOptions = {},
): void {
  peerSocket.on("error", () => {});
  if (!decision.allow) {
    o.logger?.warn(
      { source, reason: decision.reason },
      decision.rateLimited ? "connection rate limited" : "connection denied",
    );
    o.onConnection?.({
      direction: "inbound",
      peer: source,
      result: decision.rateLimited ? "rate-limited" : "denied",
      bytesSent: 0,
      bytesReceived: 0,
      detail: decision.reason,
    });
    peerSocket.destroy();
    return;
  }
  peerSocket.pause();
  // From here a FIN from the peer ends only its direction (the listener is not half-open, so
  // that a FIN during the handshake closes the socket; Node reads this flag when the FIN comes).
  peerSocket.allowHalfOpen = true;
  const appSocket = net.connect({ host: app.host, port: app.port, allowHalfOpen: true, noDelay: true });
  const timer = setTimeout(
    () => appSocket.destroy(new Error("app connect timeout")),
    app.connectTimeoutMs ?? 5_000,
  );
  const onConnectError = (e: Error): void => {
    clearTimeout(timer);
    o.logger?.warn({ source, err: e.message, app: `${app.host}:${app.port}` }, "app connect failed");
    o.onConnection?.({
      direction: "inbound",
      peer: source,
      result: "connect-failed",
      bytesSent: 0,
      bytesReceived: 0,
      detail: e.message,
    });
    peerSocket.destroy();
  };
  appSocket.once("error", onConnectError);
  appSocket.once("connect", () => {
    clearTimeout(timer);
    appSocket.off("error", onConnectError);
    const opts: Parameters<typeof splice>[2] = {
      onDone: (r) =>
        o.onConnection?.({
          direction: "inbound",
          peer: source,
          result: r.error ? "error" : "ok",
          bytesSent: r.bToA,
          bytesReceived: r.aToB,
          ...(r.error ? { detail: r.error.message } : {}),
        }),
    };
    if (app.idleTimeoutMs !== undefined) opts.idleTimeoutMs = app.idleTimeoutMs;
    splice(peerSocket, appSocket, opts);
    peerSocket.resume();
  });
}
