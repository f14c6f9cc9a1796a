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
export { type HostPort, Sidecar, type SidecarOptions } from "./proxy/sidecar.js";
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
