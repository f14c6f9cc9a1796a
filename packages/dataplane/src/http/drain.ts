import type { Http2Session } from "node:http2";
import type { Duplex } from "node:stream";

/**
 * What a listener needs for a graceful drain: how many exchanges are in
 * flight, which HTTP/1.1 connections are idle (closed at once on drain) or
 * busy (closed after their last response, which says `Connection: close`),
 * and which HTTP/2 sessions to send GOAWAY on.
 */
export class DrainTracker {
  #inFlight = 0;
  #draining = false;
  readonly #waiters: (() => void)[] = [];
  /** HTTP/1.1 connections → exchanges in progress on each. */
  readonly #h1 = new Map<Duplex, number>();
  readonly #sessions = new Set<Http2Session>();
  /** Connections in raw tunnels (upgrades): only closed by destroyAll. */
  readonly #tunnels = new Set<Duplex>();

  get draining(): boolean {
    return this.#draining;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Starts tracking an HTTP/1.1 connection. */
  addConnection(socket: Duplex): void {
    this.#h1.set(socket, 0);
    socket.once("close", () => {
      this.#h1.delete(socket);
      this.#tunnels.delete(socket);
    });
  }

  addSession(session: Http2Session): void {
    this.#sessions.add(session);
    session.once("close", () => this.#sessions.delete(session));
    if (this.#draining) session.close();
  }

  /** An exchange began; on an HTTP/1.1 connection when `socket` is given. */
  begin(socket?: Duplex): void {
    this.#inFlight++;
    if (socket !== undefined && this.#h1.has(socket)) this.#h1.set(socket, (this.#h1.get(socket) ?? 0) + 1);
  }

  /** A connection left HTTP for a raw tunnel: drain no longer closes it as idle. */
  tunnel(socket: Duplex): void {
    this.#h1.delete(socket);
    this.#tunnels.add(socket);
    socket.once("close", () => this.#tunnels.delete(socket));
  }

  end(socket?: Duplex): void {
    this.#inFlight = Math.max(0, this.#inFlight - 1);
    if (socket !== undefined && this.#h1.has(socket)) {
      const n = Math.max(0, (this.#h1.get(socket) ?? 1) - 1);
      this.#h1.set(socket, n);
      if (this.#draining && n === 0) socket.end();
    }
    if (this.#inFlight === 0) for (const w of this.#waiters.splice(0)) w();
  }

  /** Whether an HTTP/1.1 connection has a response in progress (a parse error must not write over it). */
  busy(socket: Duplex): boolean {
    return (this.#h1.get(socket) ?? 0) > 0;
  }

  /** Stops new work and resolves when in-flight exchanges are over. */
  drain(): Promise<void> {
    this.#draining = true;
    for (const [socket, n] of this.#h1) if (n === 0) socket.end();
    for (const s of this.#sessions) if (!s.closed) s.close();
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  destroyAll(): void {
    this.#draining = true;
    for (const socket of this.#h1.keys()) socket.destroy();
    for (const socket of this.#tunnels) socket.destroy();
    for (const s of this.#sessions) s.destroy();
  }
}
