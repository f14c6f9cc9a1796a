/**
 * The sidecar's L7 HTTP engine. Outbound: plain HTTP/1.1 or h2c from the app
 * → mTLS to a peer proxy: kept-alive HTTP/1.1 for HTTP/1.1 apps' plain
 * requests (h1-peer-pool), HTTP/2 for the rest (h2-peer-pool). Inbound:
 * either from a verified peer → authorize → the app on loopback
 * (app-client). relay.ts moves one exchange between the two.
 */
export { type AppTarget, createAppClient } from "./app-client.js";
export { FLAGS_HEADER, Flag, FlagSet, NO_FLAGS } from "./flags.js";
export { closePeerPools, Http1PeerPool, type Http1PeerPoolOptions } from "./h1-peer-pool.js";
export { Http2PeerPool, type Http2PeerPoolOptions, type PeerEndpoint } from "./h2-peer-pool.js";
export { HOP_BY_HOP, isInternalHeader, XFCC } from "./headers.js";
export {
  createInboundHttp,
  type InboundHttp,
  type InboundHttpOptions,
  type InboundPeer,
} from "./inbound-http.js";
export {
  createOutboundHttp,
  MAX_ATTEMPTS,
  type OutboundHttp,
  type OutboundHttpOptions,
} from "./outbound-http.js";
export * from "./types.js";
