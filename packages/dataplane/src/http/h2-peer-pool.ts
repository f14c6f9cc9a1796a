import http2, { type ClientHttp2Session, type SecureClientSessionOptions } from "node:http2";
import type { TLSSocket } from "node:tls";
import { describeError, tracer, weftError } from "@weft/core";
import type { DataplaneLogger } from "../logger.js";
import { connectMtls, type MaterialSource, type PeerIdentity } from "../transport/mtls.js";

/**
 * One multiplexed HTTP/2 session per (address, port, expected service) to
 * peer proxies, over mTLS with ALPN "h2" (linkerd's and Envoy's model: the
 * mesh hop is always HTTP/2, whatever the app speaks). A session leaves the
 * pool on error, GOAWAY or close, and the next caller opens a new one;
 * callers arriving while a connect is pending share it.
 */

const trace = tracer("http");

export interface PeerEndpoint {
  address: string;
  port: number;
}

export interface Http2PeerPoolOptions {
  source: MaterialSource;
  logger?: DataplaneLogger;
  /** A session without any frame for this long is closed gracefully. Default 5 min. */
  idleTimeoutMs?: number;
}

/** Our receive windows: ~256 KiB per stream, 1 MiB per connection (Envoy's edge guidance). */
const STREAM_WINDOW = 256 * 1024;
const CONNECTION_WINDOW = 1024 * 1024;

export const PEER_SESSION_OPTIONS: SecureClientSessionOptions = {
  settings: {
    enablePush: false,
    initialWindowSize: STREAM_WINDOW,
    maxHeaderListSize: 64 * 1024,
  },
  // MB of nghttp2 state and queued output before new streams are refused.
  maxSessionMemory: 32,
  maxHeaderListPairs: 256,
  maxOutstandingPings: 10,
  maxSettings: 32,
};

/** The pool key of a peer: its address and the service it must prove to be. */
export function keyOf(ep: PeerEndpoint, service: string): string {
  return `${ep.address}|${ep.port}|${service}`;
}

export function authorityOf(ep: PeerEndpoint): string {
  return ep.address.includes(":") ? `[${ep.address}]:${ep.port}` : `${ep.address}:${ep.port}`;
}

/**
 * A new connection was needed and the cluster's connection limit
 * (circuitBreaker.maxConnections) had none left: nothing was attempted.
 */
export class ConnectionLimitReached extends Error {
  constructor() {
    super("connection limit reached");
  }
}

/** Takes one connection of a cluster's limit; the release, or undefined when none is left. */
export type ConnectionLease = () => (() => void) | undefined;

export class Http2PeerPool {
  readonly #opts: Http2PeerPoolOptions;
  readonly #sessions = new Map<string, ClientHttp2Session>();
  readonly #pending = new Map<string, Promise<ClientHttp2Session>>();
  /** Every session ever handed out and not yet closed, pooled or evicted (for close/destroy). */
  readonly #live = new Set<ClientHttp2Session>();
  #closed = false;

  constructor(opts: Http2PeerPoolOptions) {
    this.#opts = opts;
  }

  /** Sessions currently pooled (usable for new streams). */
  get size(): number {
    return this.#sessions.size;
  }

  /**
   * The pooled session to this peer, connecting if there is none. Rejects
   * with the connectMtls error (WEFT_ERR_UNAVAILABLE, with `reason` when the
   * peer's identity was refused, or WEFT_ERR_TIMEOUT).
   */
  session(
    ep: PeerEndpoint,
    expectService: string,
    connectTimeoutMs: number,
    lease?: ConnectionLease,
  ): Promise<ClientHttp2Session> {
    if (this.#closed)
      return Promise.reject(weftError("WEFT_ERR_UNAVAILABLE", { detail: "peer pool closed" }));
    const key = keyOf(ep, expectService);
    const existing = this.#sessions.get(key);
    if (existing !== undefined && !existing.closed && !existing.destroyed) return Promise.resolve(existing);
    const pending = this.#pending.get(key);
    if (pending !== undefined) return pending;
    // Only a new connection counts against the limit: joining a session (or its connect) is free.
    const release = lease?.();
    if (lease !== undefined && release === undefined) return Promise.reject(new ConnectionLimitReached());
    const created = this.#open(key, ep, expectService, connectTimeoutMs);
    if (release !== undefined) {
      created.then((session) => {
        if (session.closed || session.destroyed) release();
        else session.once("close", release);
      }, release);
    }
    this.#pending.set(key, created);
    const clear = (): void => {
      if (this.#pending.get(key) === created) this.#pending.delete(key);
    };
    created.then(clear, clear);
    return created;
  }

  /** The open pooled session to this peer, if there is one (no connect, no promise: the hot path). */
  pooled(ep: PeerEndpoint, expectService: string): ClientHttp2Session | undefined {
    if (this.#closed) return undefined;
    const s = this.#sessions.get(keyOf(ep, expectService));
    return s !== undefined && !s.closed && !s.destroyed ? s : undefined;
  }

  /** Drops a session from the pool (it stays open for its streams); the next caller connects anew. */
  evict(session: ClientHttp2Session): void {
    for (const [key, s] of this.#sessions) if (s === session) this.#sessions.delete(key);
  }

  /**
   * A dedicated, unpooled mTLS connection to a peer (for HTTP/1.1 upgrades,
   * which cannot share a multiplexed session). The caller owns the socket.
   */
  connect(
    ep: PeerEndpoint,
    expectService: string,
    connectTimeoutMs: number,
    alpn: string[],
  ): Promise<{ socket: TLSSocket; peer: PeerIdentity }> {
    if (this.#closed)
      return Promise.reject(weftError("WEFT_ERR_UNAVAILABLE", { detail: "peer pool closed" }));
    return connectMtls({
      host: ep.address,
      port: ep.port,
      source: this.#opts.source,
      expectService,
      alpn,
      timeoutMs: connectTimeoutMs,
    });
  }

  async #open(
    key: string,
    ep: PeerEndpoint,
    expectService: string,
    connectTimeoutMs: number,
  ): Promise<ClientHttp2Session> {
    const { socket } = await this.connect(ep, expectService, connectTimeoutMs, ["h2"]);
    if (this.#closed) {
      socket.destroy();
      throw weftError("WEFT_ERR_UNAVAILABLE", { detail: "peer pool closed" });
    }
    const session = http2.connect(`http://${authorityOf(ep)}`, {
      ...PEER_SESSION_OPTIONS,
      createConnection: () => socket,
    });
    this.#live.add(session);
    this.#sessions.set(key, session);
    trace("peer session open", { key });
    const evict = (): void => {
      if (this.#sessions.get(key) === session) this.#sessions.delete(key);
    };
    session.on("error", (e: Error) => {
      evict();
      this.#opts.logger?.info(
        { peer: authorityOf(ep), service: expectService, error: describeError(e) },
        "peer session error",
      );
    });
    session.on("goaway", (code: number) => {
      evict();
      trace("peer session goaway", { key, code });
    });
    session.once("close", () => {
      evict();
      this.#live.delete(session);
      trace("peer session closed", { key });
    });
    session.once("connect", () => {
      try {
        session.setLocalWindowSize(CONNECTION_WINDOW);
      } catch {
        // The session died already; the close handler evicts it.
      }
    });
    session.setTimeout(this.#opts.idleTimeoutMs ?? 300_000, () => session.close());
    return session;
  }

  /** Graceful: no new sessions; open ones finish their streams, then close. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#sessions.clear();
    await Promise.all([...this.#live].map(closeSession));
  }

  /** Immediate: every session and stream is torn down. */
  destroy(): void {
    this.#closed = true;
    this.#sessions.clear();
    for (const s of this.#live) s.destroy();
    this.#live.clear();
  }
}

/** GOAWAY, then resolves once the session's streams are done and it has closed. */
export function closeSession(s: ClientHttp2Session): Promise<void> {
  return new Promise<void>((resolve) => {
    if (s.destroyed) {
      resolve();
      return;
    }
    s.once("close", () => resolve());
    s.close();
  });
}
