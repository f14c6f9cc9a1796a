/**
 * `@weft/gateway`: the mesh's edges (issue #9), assembled from the data
 * plane's parts.
 *
 *   ingress:     client ─HTTP/HTTPS(SNI)─▶ IngressListener (routes, CORS, limits,
 *                rate limits, JWT, x-forwarded-*) ─▶ outbound engine ─mTLS as
 *                svc/NAME─▶ destination sidecar (intentions) ─▶ app
 *   terminating: caller sidecar ─mTLS─▶ TerminatingGateway (as svc/<external>,
 *                intentions) ─▶ external host:port (plain or TLS-originated)
 */
export { type CertPair, CertStore, type ServingTls } from "./cert-store.js";
export { type ClientAddress, clientAddress, normalizeIp } from "./client-address.js";
export { type CorsDecision, CorsPolicy, type CorsSpec } from "./cors.js";
export {
  type HostPort,
  IngressGateway,
  type IngressGatewayOptions,
  routeServices,
} from "./ingress-gateway.js";
export { IngressListener, type IngressListenerOptions } from "./ingress-listener.js";
export { JwksKeySet, type JwksOptions, parseJwks } from "./jwt/jwks.js";
export { decodeJws, importJwk, JWS_ALGORITHMS, type JwsAlgorithm, verifySignature } from "./jwt/jws.js";
export { authenticate, type JwtOutcome, type JwtProviderRuntime, verifyJwt } from "./jwt/jwt-auth.js";
export { buildProviders, type Providers } from "./jwt/providers.js";
export { GatewayMetrics } from "./metrics.js";
export { GatewayRateLimit, type LimitVerdict, type RateLimitSpec } from "./rate-limits.js";
export { compileMatches, firstMatch, hostMatches, hostOf } from "./route-match.js";
export { TcpIngressListener, type TcpListenerOptions } from "./tcp-listener.js";
export { TerminatingGateway, type TerminatingGatewayOptions, TlsOriginator } from "./terminating-gateway.js";
export type * from "./types.js";
