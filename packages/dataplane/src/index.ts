// With the HTTP engine, clusters, routes, config stream and admin server: the parts @weft/gateway assembles (issue #9).
export { joinHeader, type RequestHead } from "./http/headers.js";
export * from "./http/index.js";
export { TokenBucket } from "./http/rate-limit.js";
export { RetryBudget } from "./http/retry-budget.js";
export { compileRetryPolicy, type RetryPolicy } from "./http/retry-policy.js";
export { MAX_CHAIN_CERTS, MAX_PATH_CERTS } from "./identity/chain-path.js";
export {
  clearSvidCache,
  SVID_REJECTIONS,
  type SvidRejection,
  type SvidResult,
  TrustBundle,
  type VerifyOptions,
  verifySvid,
} from "./identity/svid.js";
// The workload's own certificate, kept renewed: the MaterialSource the listeners below use.
export * from "./identity/workload-identity.js";
export type { DataplaneLogger } from "./logger.js";
export { type AdminView, createAdminServer } from "./proxy/admin.js";
export { ClusterSet, type LiveCluster } from "./proxy/clusters.js";
export { ConfigStream, type ConfigStreamOptions } from "./proxy/config-stream.js";
export { compileListenerRoutes, type ListenerRoutes } from "./proxy/listener-routes.js";
export { type RetryUntilOptions, retryUntil } from "./proxy/retry-until.js";
export { type HostPort, Sidecar, type SidecarOptions } from "./proxy/sidecar.js";
export { StatsReporter, type StatsReporterOptions } from "./proxy/stats-reporter.js";
export { proxyOutboundTcp, type TcpEvent, type TcpOptions } from "./tcp/tcp-proxy.js";
export { createMaterialSource, type SettableMaterialSource } from "./transport/material-source.js";
export {
  connectMtls,
  createMtlsServer,
  DEFAULT_ALPN,
  isPeerRefused,
  type MaterialSource,
  type MtlsConnectOptions,
  type MtlsRejection,
  type MtlsServerOptions,
  type PeerIdentity,
  type PeerRefusedError,
  type PeerRejectReason,
  type TlsMaterial,
} from "./transport/mtls.js";
export { peerChainDer } from "./transport/peer.js";
