import type { Readable, Writable } from "node:stream";
import type { HeaderOpsConfig } from "@weft/api/snapshot";
import type { Breaker } from "../cluster/breaker.js";
import type { TryResult } from "../cluster/outlier.js";
import type { RetryBudget } from "./retry-budget.js";
import type { RetryPolicy } from "./retry-policy.js";

/**
 * The contracts of the L7 engine: what the sidecar hands in (clusters,
 * authorization) and the two seams every exchange passes through — a
 * Downstream (whoever asked: the app on the outbound side, the peer proxy on
 * the inbound side) and an UpstreamCall (whoever answers). relay.ts moves
 * bytes between one of each; the adapters hide HTTP/1.1 versus HTTP/2.
 */

export type HttpProtocol = "http" | "http2" | "grpc";

/**
 * Header fields in HTTP/2 form: lowercase names, no pseudo-headers, no
 * connection-specific fields. An array means the field appeared more than
 * once (set-cookie); everything else is one string.
 */
export type HeaderMap = Record<string, string | string[]>;

/** Incoming headers as node:http and node:http2 present them. */
export type IncomingHeaders = Record<string, string | string[] | undefined>;

export interface PickedEndpoint {
  endpoint: { id: string; address: string; port: number };
  /** Called exactly once when the request that picked this endpoint is over (for least-request counters). */
  done(): void;
}

/**
 * Where a request's connection comes from: a socket, read only when needed
 * (`remoteAddress` is a getpeername(2) call on a connection's first read).
 */
export type RemoteAddress = { readonly remoteAddress?: string | undefined } | undefined;

/** One upstream as the outbound side sees it; a new object may be supplied per request when config changes. */
export interface UpstreamCluster {
  /** The snapshot's cluster name (`api.v2`), for logs and metrics; absent in tests that build one by hand. */
  name?: string;
  /** The peer must present spiffe://…/svc/<service> (passed to connectMtls as expectService). */
  service: string;
  protocol: HttpProtocol;
  connectTimeoutMs: number;
  /** Whole request, from the first byte received to the last byte relayed; exceeded → 504, flag UT. */
  requestTimeoutMs?: number;
  /** The service's retry policy; undefined = only the transparent retries before any byte is sent. */
  retryPolicy?: RetryPolicy;
  /** Shared by every request to the cluster, so retries cannot amplify an outage. */
  retryBudget?: RetryBudget;
  /** Circuit breaking: a lease per request in flight, per request waiting for a session, per retry. */
  breaker?: Breaker;
  /** Told how each try at an endpoint ended (outlier detection). Must not throw. */
  observe?(endpointId: string, r: TryResult): void;
  /** Skips ids in exclude; undefined = nothing left. Must not throw. */
  pick(ctx: { hashKey?: string; exclude: ReadonlySet<string> }): PickedEndpoint | undefined;
  /** Computes the ring-hash key from the request headers / source address, or undefined. */
  hashKey?(headers: IncomingHeaders, remote: RemoteAddress): string | undefined;
}

/**
 * What the outbound side does with one request: forward it (to a cluster
 * chosen by route, split and failover, with the route's changes), answer it
 * (a redirect or a direct response), or refuse it (no configuration).
 * Decided by the sidecar's listener routes (proxy/listener-routes.ts),
 * executed by outbound-http.ts.
 */
export type RouteDecision =
  | ForwardDecision
  | { kind: "reply"; status: number; headers: HeaderMap; body: string; route?: string }
  | { kind: "refuse"; status: number; detail: string; flags: string };

export interface ForwardDecision {
  kind: "forward";
  cluster: UpstreamCluster;
  /** The route taken, as logs and explanations name it (`route[0] "canary"`). */
  route?: string;
  /** The target after a prefix rewrite (path and query). */
  path?: string;
  /** The authority after a host rewrite. */
  authority?: string;
  /** The route's request timeout, overriding the cluster's. */
  requestTimeoutMs?: number;
  /** The route's idle timeout: a response silent this long is cut (504, UT). */
  idleTimeoutMs?: number;
  /** The route's retry policy and its budget, overriding the cluster's. */
  retryPolicy?: RetryPolicy;
  retryBudget?: RetryBudget;
  /** Fault injection, already drawn for this request: wait this long first. */
  delayMs?: number;
  /** Fault injection, already drawn: answer this instead of forwarding. */
  abort?: { httpStatus?: number; grpcStatus?: number };
  /**
   * Failover clusters to try, in order, when every endpoint of `cluster`
   * refused the request before anything was sent (an instance died before
   * its health check noticed). Omitted when there are none.
   */
  fallbacks?: readonly UpstreamCluster[];
  /** Fire-and-forget copy of the request (mirroring, already drawn). */
  mirror?: UpstreamCluster;
  /** Header changes, applied in order (the split target's, then the route's). */
  requestHeaders?: readonly HeaderOpsConfig[];
  responseHeaders?: readonly HeaderOpsConfig[];
}

export interface InboundAuthorizeRequest {
  /** The verified service of the calling proxy. */
  peerService: string;
  method: string;
  /** The request-target exactly as received (path and query). */
  rawTarget: string;
  /** A request header by lowercase name; repeated fields joined with ", ". */
  header(name: string): string | undefined;
}

export type InboundDecision =
  | { allow: true /** The canonical target to forward (the form that was authorized). */; target: string }
  | { allow: false; status: number; body: string; flags: string };

/** Canonicalizes the target and applies intentions. Must not throw; must not block. */
export type InboundAuthorize = (req: InboundAuthorizeRequest) => InboundDecision;

/** Per-request record for metrics and access logs. `flags` is "-" when nothing went wrong. */
export interface OutboundRequestEvent {
  upstream: string;
  status: number;
  flags: string;
  durationMs: number;
  endpointId?: string;
  /** Retries the policy made for this request (transparent reconnects before any byte are not counted). */
  retries?: number;
  /** The route taken, when the listener has routes and one matched. */
  route?: string;
  /** The cluster that served (differs from the listener's when a split, route or failover chose another). */
  cluster?: string;
  /** The request as the app sent it (path with its query: consumers strip what they must not show). */
  method?: string;
  path?: string;
}

export interface InboundRequestEvent {
  peerService: string;
  status: number;
  flags: string;
  durationMs: number;
  /** The request as the peer sent it (target with its query: consumers strip what they must not show). */
  method?: string;
  path?: string;
}

/**
 * Bounds applied to every connection of a listener (Envoy's edge guidance).
 * The defaults suit a sidecar; tests shorten the timeouts.
 */
export interface HttpLimits {
  /** Largest request head (HTTP/1.1) or header list (HTTP/2), bytes; beyond → 431 / stream reset. */
  maxHeaderBytes: number;
  /** Most header fields in one request. */
  maxHeaderCount: number;
  /** A request head must arrive within this (slowloris); → 408 and close. */
  headersTimeoutMs: number;
  /** An HTTP/1.1 connection idle between requests is closed after this. */
  keepAliveTimeoutMs: number;
  /** A connection (or HTTP/2 session) with no traffic at all for this long is closed. */
  idleTimeoutMs: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS we advertise. */
  maxConcurrentStreams: number;
}

export const DEFAULT_LIMITS: Readonly<HttpLimits> = Object.freeze({
  maxHeaderBytes: 16 * 1024,
  maxHeaderCount: 100,
  headersTimeoutMs: 10_000,
  keepAliveTimeoutMs: 60_000,
  idleTimeoutMs: 300_000,
  maxConcurrentStreams: 100,
});

export function resolveLimits(partial: Partial<HttpLimits> | undefined): HttpLimits {
  return { ...DEFAULT_LIMITS, ...partial };
}

// ---------------------------------------------------------------------------
// The two seams relay.ts works with.

/** The side that sent the request and waits for the response. */
export interface Downstream {
  readonly method: string;
  /** The request is gRPC (content-type application/grpc…): local replies become trailers-only gRPC statuses. */
  readonly grpc: boolean;
  /** The client speaks HTTP/1.1 (not HTTP/2). */
  readonly http1: boolean;
  /** The request body, not yet flowing; undefined when the request has none. */
  readonly body: Readable | undefined;
  /**
   * The same body, all in hand (the fast front reads a request whole): the relay hands it to a
   * call that can send it with its head (UpstreamCall.sendWhole) instead of streaming `body`.
   */
  readonly wholeBody?: Buffer | undefined;
  /** Request trailers; complete once `body` has ended. */
  trailers(): HeaderMap | undefined;
  /** Whether the body's "end" was a real end of message (not a reset or a closed connection). */
  bodyComplete(): boolean;
  /** Whether the response head has been sent. */
  readonly headersSent: boolean;
  /** Sends the response head; endStream: no body and no trailers follow. False: the head could not be written. */
  respond(status: number, headers: HeaderMap, endStream: boolean): boolean;
  /** Where the response body goes, after respond(…, false). */
  readonly sink: Writable;
  /** Ends the response, with trailers when any. A no-op after respond(…, true). */
  end(trailers: HeaderMap | undefined): void;
  /**
   * respond(…, false), the body written to `sink`, then end(trailers), in one call: for a
   * response that came whole (UpstreamEvents.whole). Optional: a downstream that can write
   * it in one piece says so; the relay does the three steps otherwise. False as respond().
   */
  respondWhole?(status: number, headers: HeaderMap, body: Buffer, trailers: HeaderMap | undefined): boolean;
  /** Tells the client the response is broken: RST_STREAM for HTTP/2, the connection closed for HTTP/1.1. */
  reset(): void;
  /** A response made by the proxy itself (text/plain, or a trailers-only status for gRPC); `extra` fields go in its head. */
  localReply(status: number, body: string, flags: string, extra?: HeaderMap): void;
  /**
   * Tells the client the request was not processed and may be retried elsewhere
   * (HTTP/2 REFUSED_STREAM, or a peer proxy's 503 with REFUSED_HEADER); false when that cannot be
   * said (an app's HTTP/1.1 client, or a head already sent).
   */
  refuse(): boolean;
  /** Runs once when the client goes away before the response is complete. */
  onGone(fn: () => void): void;
}

export interface UpstreamResponseHead {
  status: number;
  headers: HeaderMap;
  /** Nothing follows the head (HTTP/2 END_STREAM on HEADERS: a gRPC trailers-only response). */
  endStream: boolean;
}

export type UpstreamFailure =
  /** The connection could not be made: nothing was sent. */
  | "connect"
  /** The peer refused the stream (REFUSED_STREAM / GOAWAY): it did not process the request. */
  | "refused"
  /** The stream or connection broke after the request went out. */
  | "reset"
  /** The upstream answered with something that cannot be relayed. */
  | "protocol";

/** What an upstream adapter reports to the relay. Each ends the call at most once. */
export interface UpstreamEvents {
  response(head: UpstreamResponseHead, body: Readable): void;
  /** The response is complete; trailers when any. */
  complete(trailers: HeaderMap | undefined): void;
  fail(kind: UpstreamFailure, detail: string): void;
  /**
   * In place of response + complete, when the whole response (head, body, end) was read at
   * once: the common small answer, relayed without a body stream. Optional: an adapter calls it
   * only where its events have it.
   */
  whole?(head: UpstreamResponseHead, body: Buffer | undefined, trailers: HeaderMap | undefined): void;
}

export interface UpstreamCall {
  /** Where the request body goes; undefined when the request was sent without one. */
  readonly requestSink: Writable | undefined;
  /**
   * The whole request body at once, in place of writing `requestSink` and calling endRequest
   * (no trailers): sent with the head where it can be. Optional; called at most once, at once
   * after the call was opened.
   */
  sendWhole?(body: Buffer): void;
  /** Ends the request body, with trailers when any. */
  endRequest(trailers: HeaderMap | undefined): void;
  /** Abandons the call (RST_STREAM CANCEL, or the connection closed). Idempotent. */
  cancel(): void;
}
