/**
 * Start-up steps of a proxy (a sidecar, a gateway) that must wait out a
 * control-plane outage: obtain a certificate, register. Runs `fn` until it
 * succeeds, with jittered backoff, until the proxy stops (fail closed: a
 * proxy started during an outage waits instead of serving without identity).
 * Errors that retrying cannot cure (a token that may not act for the
 * service, a refused registration) are thrown at once.
 */
import { Backoff, type Clock, describeError, type ErrorCode, isWeftError } from "@weft/core";
import type { DataplaneLogger } from "../logger.js";

/** A token that may not act for the service will not get better by retrying. */
const NOT_RETRIED: readonly ErrorCode[] = [
  "WEFT_ERR_PERMISSION_DENIED",
  "WEFT_ERR_UNAUTHENTICATED",
  "WEFT_ERR_IDENTITY_DENIED",
];

export interface RetryUntilOptions {
  what: string;
  clock: Clock;
  logger: DataplaneLogger;
  /** Aborted when the proxy stops: the wait ends and the step throws. */
  signal: AbortSignal;
  /** More error codes that end the retries (a gateway's refused registration). */
  alsoFatal?: readonly ErrorCode[];
}

export async function retryUntil<T>(fn: () => Promise<T>, o: RetryUntilOptions): Promise<T> {
  const backoff = new Backoff({ baseMs: 200, maxMs: 5_000 });
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (o.signal.aborted) throw e;
      for (const code of [...NOT_RETRIED, ...(o.alsoFatal ?? [])]) if (isWeftError(e, code)) throw e;
      const delay = backoff.next();
      o.logger.warn({ err: describeError(e), retryInMs: delay }, `could not ${o.what}; retrying`);
      await new Promise<void>((resolve) => {
        const t = o.clock.setTimeout(resolve, delay);
        o.signal.addEventListener(
          "abort",
          () => {
            t.cancel();
            resolve();
          },
          { once: true },
        );
      });
      if (o.signal.aborted) throw new Error(`stopped before it could ${o.what}`);
    }
  }
}
