/**
 * Liveness of HTTP/2 sessions whose writes stall. A peer that stops reading
 * its socket and then resets the connection is never noticed by node:http2
 * on a TLS socket with a write in progress (Node 20: no "close", no "error";
 * nodejs/node#55804): its streams, and the app connections behind them, would
 * stay pinned for good, and the stream timeouts cannot help because they
 * need a frame written. So when a session with open streams has written
 * nothing for `stallMs`, it is sent a PING (as gRPC keepalive does); a peer
 * that is alive answers even when its flow-control windows are closed, and
 * one that does not within `pingTimeoutMs` is destroyed.
 */
import type { Http2Session } from "node:http2";

export interface LivenessOptions {
  /** How often write progress is checked; also the shortest stall that triggers a PING. */
  stallMs: number;
  pingTimeoutMs: number;
}

export const DEFAULT_LIVENESS: LivenessOptions = { stallMs: 1_000, pingTimeoutMs: 2_000 };

/** Watches a session; `openStreams` says whether any stream is in flight. Stops when the session closes. */
export function watchLiveness(
  session: Http2Session,
  openStreams: () => number,
  opts: LivenessOptions = DEFAULT_LIVENESS,
): void {
  const socket = session.socket;
  let lastWritten = socket.bytesWritten;
  let pinging = false;
  const timer = setInterval(() => {
    if (session.destroyed || session.closed) {
      clearInterval(timer);
      return;
    }
    const written = socket.bytesWritten;
    if (written !== lastWritten || openStreams() === 0 || pinging) {
      lastWritten = written;
      return;
    }
    pinging = true;
    const deadline = setTimeout(() => session.destroy(), opts.pingTimeoutMs);
    deadline.unref();
    try {
      session.ping((err) => {
        clearTimeout(deadline);
        pinging = false;
        if (err) session.destroy();
      });
    } catch {
      // Too many pings outstanding, or the session is closing: it is not answering.
      clearTimeout(deadline);
      session.destroy();
    }
  }, opts.stallMs);
  timer.unref();
  session.once("close", () => clearInterval(timer));
}
