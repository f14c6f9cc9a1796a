import { Readable } from "node:stream";
import type { RetriesConfig, SnapshotRetryOn } from "@weft/api/snapshot";
import { backoffDelay } from "@weft/core";
import type { Downstream, HeaderMap } from "./types.js";

/**
 * A cluster's retry policy (Envoy's `retry_policy`, Consul's service-router
 * retries), compiled once from the snapshot's `RetriesConfig` and immutable:
 * which failed tries may be retried, how long each try may take, and how long
 * to wait before the next one. Whether a retry actually happens also depends
 * on the request (its body must be replayable), on what reached the app
 * (nothing of the response may have), on the deadline and on the cluster's
 * retry budget: outbound-http.ts asks all of them, in that order.
 */

/** Request bodies up to this size are kept while they stream, so a retry can send them again. */
export const MAX_REPLAY_BODY_BYTES = 64 * 1024;

/** Why a try failed, as far as retrying is concerned. */
export type TryFailure =
  /** No connection to the peer could be made: nothing was sent. */
  | { kind: "connect-failure" }
  /** The peer refused the stream (REFUSED_STREAM): it did not process it. */
  | { kind: "refused-stream" }
  /** The stream or connection broke before a response head arrived. */
  | { kind: "reset" }
  /** The per-try timeout expired before a response head arrived. */
  | { kind: "per-try-timeout" }
  /** A response head arrived; `grpcStatus` when it is a trailers-only gRPC response. */
  | { kind: "response"; status: number; grpcStatus?: number };

/** gRPC status codes named by RETRY_ON (grpc/doc/statuscodes.md). */
const GRPC_CODES: Partial<Record<SnapshotRetryOn, number>> = {
  cancelled: 1,
  "deadline-exceeded": 4,
  "resource-exhausted": 8,
  internal: 13,
  unavailable: 14,
};

/** RFC 9110 §9.2.2: repeating these has the effect of sending them once. */
const IDEMPOTENT_METHODS = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT_METHODS.has(method.toUpperCase());
}

/** The gRPC status of a trailers-only response's headers, if it carries a valid one. */
export function grpcStatusOf(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || !/^[0-9]{1,2}$/.test(v)) return undefined;
  return Number(v);
}

export class RetryPolicy {
  readonly numRetries: number;
  readonly perTryTimeoutMs: number | undefined;
  readonly retryNonIdempotent: boolean;
  private readonly on: ReadonlySet<SnapshotRetryOn>;
  private readonly statuses: ReadonlySet<number>;
  private readonly grpcCodes: ReadonlySet<number>;
  private readonly baseMs: number;
  private readonly maxMs: number;

  constructor(cfg: RetriesConfig) {
    this.numRetries = cfg.numRetries;
    this.perTryTimeoutMs = cfg.perTryTimeoutMs;
    this.retryNonIdempotent = cfg.retryNonIdempotent;
    this.on = new Set(cfg.retryOn);
    this.statuses = new Set(this.on.has("retriable-status-codes") ? (cfg.retryOnStatusCodes ?? []) : []);
    const codes: number[] = [];
    for (const c of cfg.retryOn) {
      const code = GRPC_CODES[c];
      if (code !== undefined) codes.push(code);
    }
    this.grpcCodes = new Set(codes);
    this.baseMs = cfg.backoff.baseIntervalMs;
    this.maxMs = cfg.backoff.maxIntervalMs;
    Object.freeze(this);
  }

  /**
   * Whether `retryOn` covers this failure. Envoy's meanings: `5xx` covers any
   * 5xx and every failure without a response (connect failure, refused
   * stream, reset, per-try timeout); `gateway-error` 502/503/504 and the
   * failures the proxy itself would answer with one of them; `reset` a reset
   * or timeout without response; `connect-failure` and `refused-stream` only
   * themselves.
   */
  retriable(f: TryFailure): boolean {
    const on = this.on;
    const noResponse = on.has("5xx") || on.has("gateway-error");
    switch (f.kind) {
      case "connect-failure":
        return noResponse || on.has("connect-failure");
      case "refused-stream":
        return noResponse || on.has("refused-stream") || on.has("reset");
      case "reset":
      case "per-try-timeout":
        return noResponse || on.has("reset");
      case "response": {
        if (f.grpcStatus !== undefined && f.grpcStatus !== 0 && this.grpcCodes.has(f.grpcStatus)) return true;
        const s = f.status;
        if (on.has("5xx") && s >= 500 && s <= 599) return true;
        if (on.has("gateway-error") && (s === 502 || s === 503 || s === 504)) return true;
        return this.statuses.has(s);
      }
    }
  }

  /**
   * Whether the request may be sent again after a failure of this kind.
   * Before any byte reached the peer (connect failure, refused stream) a
   * replayable request always may; after, the method must be idempotent or
   * the policy must allow non-idempotent retries (a bodiless request is
   * held to the same rule: a POST without body still has effects).
   */
  mayResend(method: string, f: TryFailure): boolean {
    if (f.kind === "connect-failure" || f.kind === "refused-stream") return true;
    return this.retryNonIdempotent || isIdempotent(method);
  }

  /** Delay before retry number `retry` (1-based): full jitter, base doubling per retry, capped. */
  backoffMs(retry: number, random: () => number = Math.random): number {
    if (this.maxMs <= 0) return 0;
    return backoffDelay(Math.max(0, retry - 1), {
      baseMs: Math.max(1, this.baseMs),
      maxMs: this.maxMs,
      random,
    });
  }
}

/** The compiled policy for a config, or undefined when it retries nothing. */
export function compileRetryPolicy(cfg: RetriesConfig | undefined): RetryPolicy | undefined {
  if (cfg === undefined || cfg.numRetries <= 0) return undefined;
  return new RetryPolicy(cfg);
}

/**
 * A copy of a request body taken while the first try streams it (never
 * delaying it), so that a retry can send it again. Only a body that ended
 * completely within `limit` bytes is replayable; past the limit the copy is
 * dropped at once, so a large upload costs nothing extra (Envoy's
 * per-request buffer limit for retries).
 */
export class ReplayBody {
  /** Set once the original body has been handed to a try. */
  used = false;
  private chunks: Buffer[] = [];
  private bytes = 0;
  private overflow = false;
  private ended = false;
  private trailers: HeaderMap | undefined;

  constructor(private readonly limit: number) {}

  record(chunk: Buffer): void {
    if (this.overflow) return;
    this.bytes += chunk.length;
    if (this.bytes > this.limit) {
      this.overflow = true;
      this.chunks = [];
      return;
    }
    this.chunks.push(chunk);
  }

  end(trailers: HeaderMap | undefined): void {
    this.ended = true;
    this.trailers = trailers;
  }

  replayable(): boolean {
    return this.ended && !this.overflow;
  }

  /** The whole body and its trailers, once replayable (for a mirror copy). */
  kept(): { chunks: readonly Buffer[]; trailers: HeaderMap | undefined } | undefined {
    return this.replayable() ? { chunks: this.chunks, trailers: this.trailers } : undefined;
  }

  /** `down` with a fresh copy of the body, for one more try. Call only when replayable. */
  downstream(down: Downstream): Downstream {
    const body = Readable.from(this.chunks, { objectMode: false });
    const trailers = this.trailers;
    // Kept whole, it can go whole as the first try's did (when there are no trailers to send).
    const wholeBody =
      trailers !== undefined
        ? undefined
        : this.chunks.length === 1
          ? this.chunks[0]
          : Buffer.concat(this.chunks);
    return {
      method: down.method,
      grpc: down.grpc,
      http1: down.http1,
      body,
      wholeBody,
      trailers: () => trailers,
      bodyComplete: () => true,
      get headersSent() {
        return down.headersSent;
      },
      respond: (status, headers, endStream) => down.respond(status, headers, endStream),
      ...(down.respondWhole !== undefined
        ? { respondWhole: down.respondWhole.bind(down) as NonNullable<Downstream["respondWhole"]> }
        : {}),
      sink: down.sink,
      end: (t) => down.end(t),
      reset: () => down.reset(),
      localReply: (status, text, flags, extra) => down.localReply(status, text, flags, extra),
      refuse: () => down.refuse(),
      onGone: (fn) => down.onGone(fn),
    };
  }
}
