import tls, { type TLSSocket } from "node:tls";
import { describeError, isWeftError, type WeftError, weftError } from "@weft/core";
import type { TrustBundle } from "../identity/trust-bundle.js";
import type { DataplaneLogger } from "../logger.js";
import { type PeerIdentity, type PeerRejectReason, remoteOf, verifyPeer } from "./peer.js";

/**
 * Mutual TLS between workloads. TLS 1.3 only; OpenSSL is told not to reject
 * anything itself so that our X.509-SVID verifier decides, with a distinct
 * reason per failure, before any application byte is read.
 */

export type { PeerIdentity, PeerRejectReason } from "./peer.js";

export const DEFAULT_ALPN: readonly string[] = ["weft/1"];
const TLS13 = "TLSv1.3";
/** A peer that has not finished its handshake by then is dropped (slowloris on the handshake). */
const HANDSHAKE_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 10_000;

/** What a workload presents and trusts. Replace the whole object to rotate: objects are cache keys. */
export interface TlsMaterial {
  keyPem: string;
  /** The leaf, then intermediates (e.g. the new root cross-signed by the old one during a rotation). */
  chainPem: string;
  bundle: TrustBundle;
}

export interface MaterialSource {
  current(): TlsMaterial;
  onChange(fn: () => void): { dispose(): void };
}

export interface MtlsRejection {
  reason: PeerRejectReason;
  detail: string;
  remote: string;
}

export interface MtlsServerOptions {
  source: MaterialSource;
  /** Protocols offered; a client must agree on one. Default ["weft/1"]. */
  alpn?: string[];
  /** Which peer services may connect at all; others are refused as "identity-mismatch". */
  allowService?: (service: string) => boolean;
  onReject?: (r: MtlsRejection) => void;
  /** Every refused peer is logged here (warn, with reason, detail and remote address). */
  logger?: DataplaneLogger;
  /** A new material was refused (e.g. key and certificate do not match); the previous one stays in use. */
  onMaterialError?: (err: WeftError) => void;
  onConnection: (socket: TLSSocket, peer: PeerIdentity) => void;
  /** Keep the write side open after the peer's FIN (TCP proxying needs half-close). */
  allowHalfOpen?: boolean;
}

export interface MtlsConnectOptions {
  host: string;
  port: number;
  source: MaterialSource;
  expectService: string;
  alpn?: string[];
  /** Covers connect, handshake and verification. Default 10 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Keep the write side open after the peer's FIN (TCP proxying needs half-close). */
  allowHalfOpen?: boolean;
}

/** The WeftError connectMtls rejects with when the server's identity is refused. */
export type PeerRefusedError = WeftError & { reason: PeerRejectReason };

export function createMtlsServer(opts: MtlsServerOptions): tls.Server {
  const alpn = opts.alpn ?? [...DEFAULT_ALPN];
  // The material the server's context was built from: its bundle is what we verify against.
  let active = opts.source.current();
  const server = tls.createServer({
    ...contextOptions(active),
    requestCert: true,
    rejectUnauthorized: false,
    ALPNProtocols: alpn,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    allowHalfOpen: opts.allowHalfOpen ?? false,
  });

  const sub = opts.source.onChange(() => {
    const next = opts.source.current();
    if (next === active) return;
    try {
      // New handshakes use the new certificate and bundle; open connections keep theirs.
      server.setSecureContext(contextOptions(next));
      active = next;
    } catch (e) {
      opts.onMaterialError?.(
        weftError(
          "WEFT_ERR_CONFIG_INVALID",
          { detail: `TLS material refused: ${describeError(e)}` },
          { cause: e },
        ),
      );
    }
  });
  server.once("close", () => sub.dispose());

  const refuse = (r: MtlsRejection): void => {
    opts.logger?.warn({ reason: r.reason, detail: r.detail, remote: r.remote }, "mTLS peer refused");
    opts.onReject?.(r);
  };
  server.on("tlsClientError", (err, socket) => {
    refuse({ reason: "tls", detail: firstLine(err.message), remote: remoteOf(socket) });
    // With a tlsClientError listener Node leaves the socket open (e.g. on a handshake timeout):
    // a silent client would otherwise hold a descriptor forever.
    socket.destroy();
  });

  server.on("secureConnection", (socket: TLSSocket) => {
    // Small HTTP/2 frames and request/response exchanges must not wait for Nagle + delayed ACK (~40 ms).
    socket.setNoDelay(true);
    const verdict = verifyPeer(socket, active.bundle, alpn);
    // The address only for a refusal: reading it is a getpeername(2) call.
    if (!verdict.ok) {
      refuse({ reason: verdict.reason, detail: verdict.detail, remote: remoteOf(socket) });
      socket.destroy();
      return;
    }
    if (opts.allowService && !opts.allowService(verdict.peer.service)) {
      const detail = `service "${verdict.peer.service}" may not connect to this listener`;
      refuse({ reason: "identity-mismatch", detail, remote: remoteOf(socket) });
      socket.destroy();
      return;
    }
    opts.onConnection(socket, verdict.peer);
  });
  return server;
}

/**
 * Connects and verifies that the server is `expectService`. Once resolved the
 * socket is the caller's, including its "error" events.
 */
export function connectMtls(opts: MtlsConnectOptions): Promise<{ socket: TLSSocket; peer: PeerIdentity }> {
  const alpn = opts.alpn ?? [...DEFAULT_ALPN];
  const timeoutMs = opts.timeoutMs ?? CONNECT_TIMEOUT_MS;
  const where = `${opts.host}:${opts.port}`;
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(opts.signal.reason);
      return;
    }
    const material = opts.source.current();
    let secureContext: tls.SecureContext;
    try {
      secureContext = secureContextFor(material);
    } catch (e) {
      reject(
        weftError(
          "WEFT_ERR_CONFIG_INVALID",
          { detail: `TLS material refused: ${describeError(e)}` },
          { cause: e },
        ),
      );
      return;
    }
    const socket = tls.connect({
      host: opts.host,
      port: opts.port,
      secureContext,
      ALPNProtocols: alpn,
      rejectUnauthorized: false,
      // SNI carries the wanted service; it is not a DNS name to check: verifySvid checks the SPIFFE ID.
      servername: opts.expectService,
      checkServerIdentity: () => undefined,
      // Honoured by tls.connect (passed to the TLSSocket) though missing from the typings.
      ...({ allowHalfOpen: opts.allowHalfOpen ?? false } as tls.ConnectionOptions),
    });

    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (err: unknown, value?: { socket: TLSSocket; peer: PeerIdentity }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      socket.off("error", onError);
      socket.off("close", onClose);
      if (value) {
        resolve(value);
        return;
      }
      socket.destroy();
      reject(err);
    };
    const onError = (e: Error): void =>
      finish(
        weftError(
          "WEFT_ERR_UNAVAILABLE",
          { detail: `mTLS to ${where}: ${firstLine(e.message)}` },
          { cause: e },
        ),
      );
    const onClose = (): void =>
      finish(weftError("WEFT_ERR_UNAVAILABLE", { detail: `mTLS to ${where}: closed during the handshake` }));
    const onAbort = (): void => finish(opts.signal?.reason);
    timer = setTimeout(
      () =>
        finish(
          weftError("WEFT_ERR_TIMEOUT", { detail: `mTLS to ${where}: no handshake within ${timeoutMs} ms` }),
        ),
      timeoutMs,
    );

    socket.setNoDelay(true);
    socket.on("error", onError);
    socket.on("close", onClose);
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    socket.once("secureConnect", () => {
      const verdict = verifyPeer(socket, material.bundle, alpn, opts.expectService);
      if (!verdict.ok) {
        finish(peerRefused(verdict.reason, verdict.detail));
        return;
      }
      finish(undefined, { socket, peer: verdict.peer });
    });
  });
}

export function isPeerRefused(e: unknown): e is PeerRefusedError {
  return isWeftError(e, "WEFT_ERR_UNAVAILABLE") && "reason" in e;
}

function peerRefused(reason: PeerRejectReason, detail: string): PeerRefusedError {
  const err = weftError("WEFT_ERR_UNAVAILABLE", { detail: `peer identity refused: ${reason}: ${detail}` });
  return Object.assign(err, { reason });
}

function contextOptions(m: TlsMaterial): tls.SecureContextOptions {
  return {
    key: m.keyPem,
    cert: m.chainPem,
    // OpenSSL's own verdict (socket.authorized) is a second opinion; ours decides.
    ca: [...m.bundle.rootsPem],
    minVersion: TLS13,
    maxVersion: TLS13,
  };
}

// One context per material object: building one parses keys and certificates.
const contexts = new WeakMap<TlsMaterial, tls.SecureContext>();

function secureContextFor(m: TlsMaterial): tls.SecureContext {
  let ctx = contexts.get(m);
  if (ctx === undefined) {
    ctx = tls.createSecureContext(contextOptions(m));
    contexts.set(m, ctx);
  }
  return ctx;
}

/** OpenSSL messages carry a trailing newline and sometimes a second error; the first line says it. */
function firstLine(message: string): string {
  return message.trim().split("\n")[0] ?? message;
}
