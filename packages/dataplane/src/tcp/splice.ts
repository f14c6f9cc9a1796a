/**
 * Joins two byte streams both ways with backpressure (pipe) and correct
 * half-close: a FIN from one side ends only the other side's write half
 * (after its buffered bytes are flushed). The pair is done when both sockets
 * have closed; an error on either tears both down at once (RST, no silent
 * truncation). Both sockets must have been created with `allowHalfOpen:
 * true`, or Node ends the write half itself on the first FIN.
 */
import type { Socket } from "node:net";
import { pump } from "../http/pump.js";

export interface SpliceResult {
  /** Bytes from a to b and from b to a. */
  aToB: number;
  bToA: number;
  /** The first error seen, if the pair was torn down by one. */
  error?: Error;
}

/** After one side has closed, how long the other may take to finish before it is cut. */
const LINGER_MS = 30_000;

export function splice(
  a: Socket,
  b: Socket,
  opts: { idleTimeoutMs?: number; onDone?: (r: SpliceResult) => void } = {},
): void {
  const r: SpliceResult = { aToB: 0, bToA: 0 };
  let closed = 0;
  let linger: NodeJS.Timeout | undefined;
  const fail = (err: Error): void => {
    r.error ??= err;
    a.destroy();
    b.destroy();
  };
  const onClose = (other: Socket) => (): void => {
    closed += 1;
    if (closed === 2) {
      clearTimeout(linger);
      opts.onDone?.(r);
      return;
    }
    // One side is gone: let the other flush and finish, but not forever.
    other.end();
    linger = setTimeout(() => other.destroy(), LINGER_MS);
    linger.unref();
  };
  a.on("error", fail);
  b.on("error", fail);
  a.once("close", onClose(b));
  b.once("close", onClose(a));
  if (opts.idleTimeoutMs !== undefined && opts.idleTimeoutMs > 0) {
    const idle = (): void => fail(new Error(`idle for ${opts.idleTimeoutMs} ms`));
    a.setTimeout(opts.idleTimeoutMs, idle);
    b.setTimeout(opts.idleTimeoutMs, idle);
  }
  // One listener per direction that counts and writes (pump), rather than pipe plus a counter.
  pump(a, b, (n) => {
    r.aToB += n;
  });
  pump(b, a, (n) => {
    r.bToA += n;
  });
  a.once("end", () => b.end());
  b.once("end", () => a.end());
}
