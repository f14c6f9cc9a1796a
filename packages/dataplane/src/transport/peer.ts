import type { DetailedPeerCertificate, TLSSocket } from "node:tls";
import { MAX_CHAIN_CERTS } from "../identity/chain-path.js";
import { type SvidRejection, verifyCachedLeaf, verifySvid } from "../identity/svid.js";
import type { TrustBundle } from "../identity/trust-bundle.js";

/** Who is on the other end of an mTLS connection, from its verified X.509-SVID. */
export interface PeerIdentity {
  spiffeId: string;
  service: string;
  namespace: string;
  trustDomain: string;
}

/** Why a peer was refused: an SVID rule, or "tls" for the handshake itself (ALPN, protocol errors). */
export type PeerRejectReason = SvidRejection | "tls";

export type PeerVerdict =
  | { ok: true; peer: PeerIdentity }
  | { ok: false; reason: PeerRejectReason; detail: string };

/**
 * The peer's chain as DER, leaf first, walking `issuerCertificate` until it
 * points to itself. Node orders the chain by issuer and may append the
 * matching root from our own `ca` store; verifySvid accepts either.
 */
export function peerChainDer(socket: TLSSocket): Buffer[] {
  const out: Buffer[] = [];
  const seen = new Set<DetailedPeerCertificate>();
  let cert: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  // One more than verifySvid accepts, so an oversized chain is still seen as oversized.
  while (cert?.raw !== undefined && !seen.has(cert) && out.length <= MAX_CHAIN_CERTS) {
    seen.add(cert);
    out.push(cert.raw);
    const next: DetailedPeerCertificate | undefined = cert.issuerCertificate;
    if (next === undefined || next === cert || next.raw?.equals(cert.raw)) break;
    cert = next;
  }
  return out;
}

/** Runs after the handshake and before any application byte is read. */
export function verifyPeer(
  socket: TLSSocket,
  bundle: TrustBundle,
  alpn: readonly string[],
  expectService?: string,
): PeerVerdict {
  const opts = expectService === undefined ? {} : { expectService };
  // A leaf seen before is decided from the cache with the leaf alone: getPeerCertificate(false)
  // costs ~30 µs, the whole chain (true) ~300 µs. Not getPeerX509Certificate(): on a client
  // socket, calling it first makes a later getPeerCertificate(true) return {} (Node 20).
  const leaf = socket.getPeerCertificate(false)?.raw;
  const svid =
    (leaf && verifyCachedLeaf(leaf, bundle, opts)) ?? verifySvid(peerChainDer(socket), bundle, opts);
  if (!svid.ok) return svid;
  // Our verifier is the authority; OpenSSL disagreeing still means no.
  if (socket.authorized === false) {
    return {
      ok: false,
      reason: "untrusted",
      detail: String(socket.authorizationError ?? "TLS verification failed"),
    };
  }
  const proto = socket.alpnProtocol;
  if (typeof proto !== "string" || !alpn.includes(proto)) {
    return { ok: false, reason: "tls", detail: `no agreed ALPN protocol (offered ${alpn.join(", ")})` };
  }
  const { trustDomain, namespace, service } = svid.identity;
  return { ok: true, peer: { spiffeId: svid.spiffeId, service, namespace, trustDomain } };
}

export function remoteOf(socket: TLSSocket): string {
  return `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
}
