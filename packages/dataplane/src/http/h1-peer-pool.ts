import { createRequire } from "node:module";
import type { TLSSocket } from "node:tls";
import { tracer, weftError } from "@weft/core";
import type { Client as UndiciClient } from "undici";
import { connectMtls, type MaterialSource } from "../transport/mtls.js";
import {
  authorityOf,
  type ConnectionLease,
  ConnectionLimitReached,
  keyOf,
  type PeerEndpoint,
} from "./h2-peer-pool.js";

/**
 * Kept-alive HTTP/1.1 connections to peer proxies over mTLS (ALPN
 * "http/1.1"), one request at a time each, reused last-in first-out. The
 * mesh hop for HTTP/1.1 apps' plain requests: on this machine it costs the
 * client sidecar less CPU than an HTTP/2 stream and, above all, far less
 * young-generation garbage that survives a scavenge (the p99 tail), see the
 * README. Everything else (gRPC, h2c apps, chunked bodies) keeps the
 * multiplexed HTTP/2 session of h2-peer-pool.ts.
 *
 * Each connection is an undici Client over a socket we connected and
 * verified ourselves: the SPIFFE check, the connect timeout and the
 * cluster's connection limit stay ours, and the outbound side connects
 * before it relays, exactly as with HTTP/2. The Client's connector hands
 * over that one socket and nothing else: undici never reconnects by itself.
 */

const trace = tracer("http");

/** Only undici's HTTP/1.1 Client: the package's index loads fetch, WebSocket and more. */
const Client = createRequire(import.meta.url)("undici/lib/dispatcher/client.js") as typeof UndiciClient;

/** A request dispatched on a connection whose socket is gone: nothing of it was written. */
export const STALE_CONNECTION = "WEFT_STALE_CONNECTION";

/**
 * The peer's HTTP/1.1 server closes idle connections after 60 s (limits.keepAliveTimeoutMs); ours
 * are dropped well before, so that a request is almost never written to a connection being closed.
 */
const KEEP_ALIVE_MS = 20_000;
/** Idle connections kept per peer; beyond, a connection is closed when its exchange ends. */
const MAX_IDLE_PER_PEER = 256;

export interface Http1PeerPoolOptions {
  source: MaterialSource;
}

/** One verified mTLS connection to a peer proxy and the undici Client that speaks HTTP/1.1 on it. */
export class PeerConnection {
  readonly client: UndiciClient;
  /**
   * The peer ended the connection (TLS close, then FIN). Our inbound side
   * only does so on an idle connection, and never processes a request that
   * arrives on a connection it has ended: a request that failed after this
   * was not processed, whatever its method.
   */
  peerEnded = false;
  #released = true;

  constructor(
    readonly key: string,
    readonly socket: TLSSocket,
    origin: string,
  ) {
    let handed: TLSSocket | undefined = socket;
    this.client = new Client(origin, {
      connect: (_opts, callback) => {
        const s = handed;
        handed = undefined;
        // Answered in a microtask: undici asks from inside its dispatch loop and ignores a
        // synchronous answer (the request would wait forever).
        queueMicrotask(() => {
          if (s !== undefined && !s.destroyed) callback(null, s);
          else callback(Object.assign(new Error("peer connection closed"), { code: STALE_CONNECTION }), null);
        });
      },
      pipelining: 1,
      keepAliveTimeout: KEEP_ALIVE_MS,
      keepAliveMaxTimeout: KEEP_ALIVE_MS,
      keepAliveTimeoutThreshold: 1_000,
      // No timeouts of our own on a request: the outbound side (route, retry policy) owns them.
      headersTimeout: 0,
      bodyTimeout: 0,
      maxHeaderSize: 64 * 1024,
    });
    socket.once("end", () => {
      this.peerEnded = true;
    });
  }

  /** Whether a new request may be sent on it. */
  get usable(): boolean {
    return !this.peerEnded && !this.socket.destroyed && !this.client.destroyed && !this.client.closed;
  }

  /** Taken for one exchange (false: it was already out). */
  take(): void {
    this.#released = false;
  }

  /** Its exchange is over; true the first time only. */
  release(): boolean {
    if (this.#released) return false;
    this.#released = true;
    return true;
  }

  destroy(): void {
    this.client.destroy().catch(() => {});
    this.socket.destroy();
  }
}

export class Http1PeerPool {
  readonly #opts: Http1PeerPoolOptions;
  /** Idle connections per peer, most recently used last. */
  readonly #idle = new Map<string, PeerConnection[]>();
  readonly #live = new Set<PeerConnection>();
  #closed = false;

  constructor(opts: Http1PeerPoolOptions) {
    this.#opts = opts;
  }

  /** Connections open, idle or busy. */
  get size(): number {
    return this.#live.size;
  }

  /** An idle connection to this peer, taken for one exchange (no connect, no promise: the hot path). */
  take(ep: PeerEndpoint, expectService: string): PeerConnection | undefined {
    const idle = this.#idle.get(keyOf(ep, expectService));
    if (idle === undefined) return undefined;
    for (let c = idle.pop(); c !== undefined; c = idle.pop()) {
      if (c.usable) {
        c.take();
        return c;
      }
      c.destroy();
    }
    return undefined;
  }

  /**
   * A new connection, taken for one exchange. It holds one of the cluster's
   * connections (`lease`) until it closes; none left → ConnectionLimitReached,
   * nothing attempted. Rejects as connectMtls does otherwise.
   */
  async connect(
    ep: PeerEndpoint,
    expectService: string,
    connectTimeoutMs: number,
    lease?: ConnectionLease,
  ): Promise<PeerConnection> {
    if (this.#closed) throw weftError("WEFT_ERR_UNAVAILABLE", { detail: "peer pool closed" });
    const release = lease?.();
    if (lease !== undefined && release === undefined) throw new ConnectionLimitReached();
    let socket: TLSSocket;
    try {
      ({ socket } = await connectMtls({
        host: ep.address,
        port: ep.port,
        source: this.#opts.source,
        expectService,
        alpn: ["http/1.1"],
        timeoutMs: connectTimeoutMs,
      }));
    } catch (e) {
      release?.();
      throw e;
    }
    if (release !== undefined) socket.once("close", release);
    socket.on("error", () => {});
    if (this.#closed) {
      socket.destroy();
      throw weftError("WEFT_ERR_UNAVAILABLE", { detail: "peer pool closed" });
    }
    const key = keyOf(ep, expectService);
    const conn = new PeerConnection(key, socket, `http://${authorityOf(ep)}`);
    this.#live.add(conn);
    conn.take();
    // Gone (idle timeout, the peer's close, an error): out of the pool at once.
    conn.client.once("disconnect", () => this.#drop(conn));
    socket.once("close", () => this.#drop(conn));
    trace("peer http/1.1 connection open", { key });
    return conn;
  }

  /** The exchange on `conn` is over: it goes back to the pool if it can take another request. */
  release(conn: PeerConnection): void {
    if (!conn.release()) return;
    if (this.#closed || !conn.usable) {
      conn.destroy();
      return;
    }
    let idle = this.#idle.get(conn.key);
    if (idle === undefined) {
      idle = [];
      this.#idle.set(conn.key, idle);
    }
    if (idle.length >= MAX_IDLE_PER_PEER) conn.destroy();
    else idle.push(conn);
  }

  #drop(conn: PeerConnection): void {
    if (!this.#live.delete(conn)) return;
    conn.destroy();
    const idle = this.#idle.get(conn.key);
    if (idle === undefined) return;
    const i = idle.indexOf(conn);
    if (i !== -1) idle.splice(i, 1);
    if (idle.length === 0) this.#idle.delete(conn.key);
  }

  /** Graceful: idle connections close now, busy ones when their exchange ends. */
  close(): void {
    this.#closed = true;
    for (const idle of this.#idle.values()) for (const c of idle) c.destroy();
    this.#idle.clear();
  }

  /** Immediate: every connection is torn down. */
  destroy(): void {
    this.close();
    for (const c of this.#live) c.destroy();
    this.#live.clear();
  }
}
