import type { RetriesConfig } from "@weft/api/snapshot";
import { describe, expect, it } from "vitest";
import {
  compileRetryPolicy,
  grpcStatusOf,
  isIdempotent,
  ReplayBody,
  RetryPolicy,
  type TryFailure,
} from "./retry-policy.js";
import type { Downstream } from "./types.js";

function cfg(over: Partial<RetriesConfig> = {}): RetriesConfig {
  return {
    numRetries: 2,
    retryOn: ["connect-failure", "reset", "gateway-error"],
    backoff: { baseIntervalMs: 25, maxIntervalMs: 250 },
    budget: { percent: 20, minRetriesPerSecond: 10 },
    retryNonIdempotent: false,
    ...over,
  };
}

const status = (s: number, grpcStatus?: number): TryFailure =>
  grpcStatus === undefined ? { kind: "response", status: s } : { kind: "response", status: s, grpcStatus };

describe("RetryPolicy.retriable", () => {
  const cases: [string, RetriesConfig["retryOn"], TryFailure, boolean][] = [
    ["connect-failure covers a connect failure", ["connect-failure"], { kind: "connect-failure" }, true],
    ["connect-failure does not cover a reset", ["connect-failure"], { kind: "reset" }, false],
    ["connect-failure does not cover a 503", ["connect-failure"], status(503), false],
    ["reset covers a reset", ["reset"], { kind: "reset" }, true],
    ["reset covers a per-try timeout", ["reset"], { kind: "per-try-timeout" }, true],
    ["reset covers a refused stream", ["reset"], { kind: "refused-stream" }, true],
    ["reset does not cover a 503", ["reset"], status(503), false],
    ["5xx covers 500", ["5xx"], status(500), true],
    ["5xx covers 599", ["5xx"], status(599), true],
    ["5xx does not cover 429", ["5xx"], status(429), false],
    ["5xx covers failures without a response", ["5xx"], { kind: "connect-failure" }, true],
    ["gateway-error covers 502", ["gateway-error"], status(502), true],
    ["gateway-error covers 503", ["gateway-error"], status(503), true],
    ["gateway-error covers 504", ["gateway-error"], status(504), true],
    ["gateway-error does not cover 500", ["gateway-error"], status(500), false],
    ["gateway-error covers a per-try timeout", ["gateway-error"], { kind: "per-try-timeout" }, true],
    ["refused-stream covers a refused stream", ["refused-stream"], { kind: "refused-stream" }, true],
    ["refused-stream does not cover a reset", ["refused-stream"], { kind: "reset" }, false],
    ["unavailable covers grpc-status 14", ["unavailable"], status(200, 14), true],
    ["unavailable does not cover grpc-status 13", ["unavailable"], status(200, 13), false],
    ["internal covers grpc-status 13", ["internal"], status(200, 13), true],
    ["cancelled covers grpc-status 1", ["cancelled"], status(200, 1), true],
    ["deadline-exceeded covers grpc-status 4", ["deadline-exceeded"], status(200, 4), true],
    ["resource-exhausted covers grpc-status 8", ["resource-exhausted"], status(200, 8), true],
    ["a gRPC code alone does not cover a 503", ["unavailable"], status(503), false],
    ["grpc-status 0 is never retried", ["5xx", "unavailable"], status(200, 0), false],
  ];
  it.each(cases)("%s", (_name, retryOn, failure, expected) => {
    expect(new RetryPolicy(cfg({ retryOn })).retriable(failure)).toBe(expected);
  });

  it("retries listed statuses only with retriable-status-codes", () => {
    const listed = new RetryPolicy(
      cfg({ retryOn: ["retriable-status-codes"], retryOnStatusCodes: [409, 429] }),
    );
    expect(listed.retriable(status(409))).toBe(true);
    expect(listed.retriable(status(429))).toBe(true);
    expect(listed.retriable(status(503))).toBe(false);
    const unlisted = new RetryPolicy(cfg({ retryOn: ["reset"], retryOnStatusCodes: [409] }));
    expect(unlisted.retriable(status(409))).toBe(false);
  });
});

describe("RetryPolicy.mayResend", () => {
  const p = new RetryPolicy(cfg());
  it("resends anything that never reached the peer", () => {
    expect(p.mayResend("POST", { kind: "connect-failure" })).toBe(true);
    expect(p.mayResend("POST", { kind: "refused-stream" })).toBe(true);
  });
  it("resends idempotent methods after they were sent", () => {
    for (const m of ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "get"]) {
      expect(p.mayResend(m, status(503))).toBe(true);
    }
  });
  it("does not resend a sent POST or PATCH unless the policy says so", () => {
    expect(p.mayResend("POST", status(503))).toBe(false);
    expect(p.mayResend("PATCH", { kind: "reset" })).toBe(false);
    const lax = new RetryPolicy(cfg({ retryNonIdempotent: true }));
    expect(lax.mayResend("POST", status(503))).toBe(true);
  });
  it("knows the idempotent methods", () => {
    expect(isIdempotent("PUT")).toBe(true);
    expect(isIdempotent("POST")).toBe(false);
  });
});

describe("RetryPolicy.backoffMs", () => {
  const p = new RetryPolicy(cfg({ backoff: { baseIntervalMs: 10, maxIntervalMs: 100 } }));
  it("is full jitter over a doubling ceiling, capped", () => {
    expect(p.backoffMs(1, () => 0.999)).toBe(10);
    expect(p.backoffMs(2, () => 0.999)).toBe(20);
    expect(p.backoffMs(3, () => 0.999)).toBe(40);
    expect(p.backoffMs(5, () => 0.999)).toBe(100);
    expect(p.backoffMs(9, () => 0.999)).toBe(100);
    expect(p.backoffMs(3, () => 0.5)).toBe(20);
    // Full jitter goes down to the floor of 1 ms, never 0 (no tight loop).
    expect(p.backoffMs(3, () => 0)).toBe(1);
  });
  it("is zero when the policy has no backoff", () => {
    const none = new RetryPolicy(cfg({ backoff: { baseIntervalMs: 0, maxIntervalMs: 0 } }));
    expect(none.backoffMs(3, () => 0.9)).toBe(0);
  });
  it("spreads delays over the whole range", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(p.backoffMs(4));
    expect(Math.max(...seen)).toBeLessThanOrEqual(80);
    expect(Math.min(...seen)).toBeGreaterThanOrEqual(1);
    expect(seen.size).toBeGreaterThan(20);
  });
});

describe("compileRetryPolicy", () => {
  it("is undefined without config or with zero retries", () => {
    expect(compileRetryPolicy(undefined)).toBeUndefined();
    expect(compileRetryPolicy(cfg({ numRetries: 0 }))).toBeUndefined();
  });
  it("is frozen", () => {
    const p = compileRetryPolicy(cfg({ perTryTimeoutMs: 300 }));
    expect(p?.numRetries).toBe(2);
    expect(p?.perTryTimeoutMs).toBe(300);
    expect(Object.isFrozen(p)).toBe(true);
  });
});

describe("grpcStatusOf", () => {
  it("reads a numeric grpc-status and refuses anything else", () => {
    expect(grpcStatusOf("14")).toBe(14);
    expect(grpcStatusOf(["0"])).toBe(0);
    expect(grpcStatusOf(undefined)).toBeUndefined();
    expect(grpcStatusOf("x")).toBeUndefined();
    expect(grpcStatusOf("123")).toBeUndefined();
  });
});

describe("ReplayBody", () => {
  const fakeDown = { method: "PUT", grpc: false, headersSent: false } as unknown as Downstream;

  async function read(down: Downstream): Promise<string> {
    const parts: Buffer[] = [];
    for await (const c of down.body ?? []) parts.push(c as Buffer);
    return Buffer.concat(parts).toString();
  }

  it("replays a complete body within the limit, as many times as asked", async () => {
    const r = new ReplayBody(10);
    r.record(Buffer.from("hello "));
    expect(r.replayable()).toBe(false);
    r.record(Buffer.from("you"));
    r.end({ "x-t": "1" });
    expect(r.replayable()).toBe(true);
    const a = r.downstream(fakeDown);
    expect(await read(a)).toBe("hello you");
    expect(a.bodyComplete()).toBe(true);
    expect(a.trailers()).toEqual({ "x-t": "1" });
    expect(a.method).toBe("PUT");
    expect(await read(r.downstream(fakeDown))).toBe("hello you");
  });

  it("is not replayable past the limit", () => {
    const r = new ReplayBody(10);
    r.record(Buffer.alloc(6));
    r.record(Buffer.alloc(6));
    r.end(undefined);
    expect(r.replayable()).toBe(false);
  });
});
