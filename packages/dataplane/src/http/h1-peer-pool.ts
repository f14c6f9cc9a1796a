import { performance } from "node:perf_hooks";
import type { TLSSocket } from "node:tls";
import { tracer, weftError } from "@weft/core";
import { connectMtls, type MaterialSource } from "../transport/mtls.js";
import { ClientConnection } from "./h1-fast/client.js";
import {
  type ConnectionLease,
  ConnectionLimitReached,
  type Http2PeerPool,
  keyOf,
  type PeerEndpoint,
} from "./h2-peer-pool.js";

/**
 * Kept-alive HTTP/1.1 connections to peer proxies over mTLS (ALPN
 * "http/1.1"), one request at a time each, reused last-in first-out. The
 * mesh hop for plain requests (no body, or a declared length: unary gRPC
 * calls too, see outbound-http.ts): on this machine it costs the
 * client sidecar less CPU than an HTTP/2 stream and, above all, far less
 * young-generation garbage that survives a scavenge (the p99 tail), see the
 * README. Everything else (streamed bodies, an h2c app's requests beyond its
 * share of connections, peers that speak HTTP/2 only) keeps the multiplexed
 * HTTP/2 session of h2-peer-pool.ts.
 *
 * Each connection is a socket we connected and verified ourselves (the
 * SPIFFE check, the connect timeout and the cluster's connection limit),
 * spoken to by the fast HTTP/1.1 client (h1-fast/client.ts); the outbound
 * side connects before it relays, exactly as with HTTP/2.
 */

const trace = tracer("http");

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

/**
 * One verified mTLS connection to a peer proxy, speaking HTTP/1.1 through
 * the fast client (h1-fast/client.ts). `ended`: the peer ended it (TLS
 * close, then FIN). Our inbound side only does so on an idle connection,
 * and never processes a request that arrives on a connection it has ended:
 * a request that failed after this was not processed, whatever its method.
 */
export class PeerConnection extends ClientConnection {
  #released = true;

  constructor(
    readonly key: string,
    override readonly socket: TLSSocket,
  ) {
    super(socket);
  }

  /** Taken for one exchange. */
  take(): void {
    this.#released = false;
  }

  /** Its exchange is over; true the first time only. */
  release(): boolean {
    if (this.#released) return false;
    this.#released = true;
    this.idleSince = performance.now();
    return true;
  }

  /** Whether it may carry a request now: usable and not idle for too long. */
  get fresh(): boolean {
    return this.usable && performance.now() - this.idleSince < KEEP_ALIVE_MS;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * The peer does not speak HTTP/1.1 (its TLS server refused our ALPN "http/1.1": a proxyless gRPC
 * server, say). Nothing was sent; the pool remembers it and the request goes over HTTP/2.
 */
export class PeerWithoutHttp1 extends Error {
  constructor(readonly key: string) {
    super(`peer ${key} does not speak HTTP/1.1`);
  }
}

/** Peers remembered as speaking HTTP/2 only; beyond this many the memory starts over. */
const MAX_HTTP2_ONLY = 10_000;

/** A request waiting for a connection to a peer to come free: given one, or "retry" (a lease may be free). */
type Waiter = (conn: PeerConnection | "retry") => void;

export class Http1PeerPool {
  readonly #opts: Http1PeerPoolOptions;
  /** Idle connections per peer, most recently used last. */
  readonly #idle = new Map<string, PeerConnection[]>();
  /** Connections out for an exchange, per peer. */
  readonly #busy = new Map<string, number>();
  /** Requests waiting for one of those, per peer, oldest first. */
  readonly #waiters = new Map<string, Waiter[]>();
  readonly #live = new Set<PeerConnection>();
  /** Peers whose TLS server refused ALPN "http/1.1" (they speak HTTP/2 only). */
  readonly #http2Only = new Set<string>();
  #closed = false;

  constructor(opts: Http1PeerPoolOptions) {
    this.#opts = opts;
  }

  /** Connections open, idle or busy. */
  get size(): number {
    return this.#live.size;
  }

  /** Whether this peer may be spoken to over HTTP/1.1 (false once it refused the protocol). */
  speaksHttp1(ep: PeerEndpoint, expectService: string): boolean {
    return this.#http2Only.size === 0 || !this.#http2Only.has(keyOf(ep, expectService));
  }

  /** Connections to this peer out for an exchange or being connected for one. */
  busy(ep: PeerEndpoint, expectService: string): number {
    return this.#busy.get(keyOf(ep, expectService)) ?? 0;
  }

  /** An idle connection to this peer, taken for one exchange (no connect, no promise: the hot path). */
  take(ep: PeerEndpoint, expectService: string): PeerConnection | undefined {
    const idle = this.#idle.get(keyOf(ep, expectService));
    if (idle === undefined) return undefined;
    for (let c = idle.pop(); c !== undefined; c = idle.pop()) {
      if (c.fresh) {
        this.#taken(c);
        return c;
      }
      c.destroy();
    }
    return undefined;
  }

  #taken(conn: PeerConnection): void {
    conn.take();
    this.#countBusy(conn.key, 1);
  }

  /** Connections out for an exchange, or being connected for one: what a waiting request may get. */
  #countBusy(key: string, delta: number): void {
    const n = (this.#busy.get(key) ?? 0) + delta;
    if (n > 0) this.#busy.set(key, n);
    else this.#busy.delete(key);
  }

  /**
   * A connection for one exchange when none is idle: a new one, holding one
   * of the cluster's connections (`lease`) until it closes. With none left,
   * the request waits, as Envoy's pending requests do, for a connection to
   * this peer that another exchange releases (at most `connectTimeoutMs`,
   * the time a connect may take anyway); when no exchange with this peer is
   * in progress there is nothing to wait for: ConnectionLimitReached at once,
   * nothing attempted. Rejects as connectMtls does otherwise.
   */
  async connect(
    ep: PeerEndpoint,
    expectService: string,
    connectTimeoutMs: number,
    lease?: ConnectionLease,
  ): Promise<PeerConnection> {
    if (this.#closed) throw weftError("WEFT_ERR_UNAVAILABLE", { detail: "peer pool closed" });
    const key = keyOf(ep, expectService);
    let release = lease?.();
    if (lease !== undefined && release === undefined) {
      if (!this.#busy.has(key)) throw new ConnectionLimitReached();
      const freed = await this.#wait(key, connectTimeoutMs);
      if (freed === "timeout") throw new ConnectionLimitReached();
      if (freed !== "retry") return freed;
      if (this.#closed) throw weftError("WEFT_ERR_UNAVAILABLE", { detail: "peer pool closed" });
      // A connection closed meanwhile: its lease may be ours now.
      release = lease();
      if (release === undefined) throw new ConnectionLimitReached();
    }
    // Counted as out from now: requests that find the limit reached wait for this one too.
    this.#countBusy(key, 1);
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
      this.#countBusy(key, -1);
      // A request waiting for this connection tries for itself (the lease is free again).
      this.#nextWaiter(key)?.("retry");
      if (
        (e as { cause?: { code?: unknown } }).cause?.code === "ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL"
      ) {
        if (this.#http2Only.size >= MAX_HTTP2_ONLY) this.#http2Only.clear();
        this.#http2Only.add(key);
        trace("peer speaks no http/1.1", { key });
        throw new PeerWithoutHttp1(key);
      }
      throw e;
    }
    if (release !== undefined) socket.once("close", release);
    socket.on("error", () => {});
    if (this.#closed) {
      socket.destroy();
      this.#countBusy(key, -1);
      throw weftError("WEFT_ERR_UNAVAILABLE", { detail: "peer pool closed" });
    }
    const conn = new PeerConnection(key, socket);
    this.#live.add(conn);
    conn.take();
    // Gone (the peer's close, an error, a broken exchange): out of the pool at once.
    socket.once("close", () => this.#drop(conn));
    trace("peer http/1.1 connection open", { key });
    return conn;
  }

  /** Until a connection to this peer is released, or closes ("retry"), within `ms` ("timeout"). */
  #wait(key: string, ms: number): Promise<PeerConnection | "retry" | "timeout"> {
    return new Promise((resolve) => {
      let waiters = this.#waiters.get(key);
      if (waiters === undefined) {
        waiters = [];
        this.#waiters.set(key, waiters);
      }
      const timer = setTimeout(() => {
        const i = waiters.indexOf(waiter);
        if (i !== -1) waiters.splice(i, 1);
        if (waiters.length === 0 && this.#waiters.get(key) === waiters) this.#waiters.delete(key);
        resolve("timeout");
      }, ms);
      const waiter: Waiter = (conn) => {
        clearTimeout(timer);
        resolve(conn);
      };
      waiters.push(waiter);
    });
  }

  /** The oldest request waiting for a connection to this peer, taken off the queue. */
  #nextWaiter(key: string): Waiter | undefined {
    const waiters = this.#waiters.get(key);
    const w = waiters?.shift();
    if (waiters !== undefined && waiters.length === 0) this.#waiters.delete(key);
    return w;
  }

  /** The exchange on `conn` is over: it goes to a waiting request, or back to the pool if it can take another. */
  release(conn: PeerConnection): void {
    if (!conn.release()) return;
    this.#countBusy(conn.key, -1);
    if (this.#closed || !conn.usable) {
      conn.destroy();
      // Its lease is free once it has closed: a waiting request may connect anew.
      const w = this.#nextWaiter(conn.key);
      if (w !== undefined) {
        if (conn.socket.closed) w("retry");
        else conn.socket.once("close", () => w("retry"));
      }
      return;
    }
    const w = this.#nextWaiter(conn.key);
    if (w !== undefined) {
      this.#taken(conn);
      w(conn);
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
    for (const waiters of this.#waiters.values()) for (const w of waiters) w("retry");
    this.#waiters.clear();
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

/** Closes both peer pools of a proxy: gracefully after a drain, else at once. */
export async function closePeerPools(
  drained: boolean,
  h2: Http2PeerPool | undefined,
  h1: Http1PeerPool | undefined,
): Promise<void> {
  if (drained) {
    h1?.close();
    await h2?.close();
  } else {
    h1?.destroy();
    h2?.destroy();
  }
}
