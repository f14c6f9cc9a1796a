/**
 * ServiceDefaults: per-service settings (`name` = the service): protocol,
 * load balancing, timeouts, circuit breaking, outlier detection, local rate
 * limits, default retries and access logs. Absent sections mean "off" for
 * outlierDetection, rateLimit and retries, and the built-in limits for
 * circuitBreaker (CIRCUIT_BREAKER_DEFAULTS).
 */
import { z } from "zod";
import { durationSchema, nameSchema } from "../names.js";
import {
  exactlyOne,
  headerNameSchema,
  PATH_MATCH_KEYS,
  pathMatchFields,
  percentSchema,
  protocolSchema,
  ratioSchema,
  retriesSchema,
} from "./common.js";

export const LB_POLICIES = ["round_robin", "least_request", "random", "weighted", "ring_hash"] as const;

/** What ring_hash hashes on: a request header, a cookie, or the source address. */
export const hashPolicySchema = z
  .strictObject({
    header: headerNameSchema.optional(),
    cookie: z
      .string()
      .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/, "must be a cookie name")
      .optional(),
    sourceIp: z.literal(true).optional(),
  })
  .superRefine((h, ctx) =>
    exactlyOne(h, ["header", "cookie", "sourceIp"], ctx, { what: "hashOn needs exactly" }),
  );

export const loadBalancerSchema = z
  .strictObject({
    policy: z.enum(LB_POLICIES).default("round_robin"),
    /** least_request: how many random instances to compare (power of two choices). */
    choiceCount: z.number().int().min(2).max(100).optional(),
    /** ring_hash: ordered hash inputs; default source address. */
    hashOn: z.array(hashPolicySchema).min(1).max(8).optional(),
    ringSize: z.number().int().min(64).max(8_388_608).optional(),
  })
  .superRefine((lb, ctx) => {
    if (lb.hashOn && lb.policy !== "ring_hash") {
      ctx.addIssue({ code: "custom", path: ["hashOn"], message: 'hashOn needs policy "ring_hash"' });
    }
    if (lb.ringSize !== undefined && lb.policy !== "ring_hash") {
      ctx.addIssue({ code: "custom", path: ["ringSize"], message: 'ringSize needs policy "ring_hash"' });
    }
    if (lb.choiceCount !== undefined && lb.policy !== "least_request") {
      ctx.addIssue({
        code: "custom",
        path: ["choiceCount"],
        message: 'choiceCount needs policy "least_request"',
      });
    }
  });
export type LoadBalancer = z.output<typeof loadBalancerSchema>;

export const TIMEOUTS_DEFAULTS = { connect: 5_000, idle: 3_600_000 } as const;

export const timeoutsSchema = z.strictObject({
  connect: durationSchema.prefault("5s"),
  /** The whole request including retries; absent = no request timeout. */
  request: durationSchema.optional(),
  idle: durationSchema.prefault("1h"),
});
export type Timeouts = z.output<typeof timeoutsSchema>;

/**
 * Built-in limits per upstream. Concurrent retries are not capped at Envoy's
 * 3 by default: under concurrency that silently turns retries off, and the
 * retry budget (ServiceDefaults.retries.budget) is what bounds amplification.
 */
export const CIRCUIT_BREAKER_DEFAULTS = {
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxRequests: 1024,
  maxRetries: 1024,
} as const;

export const circuitBreakerSchema = z.strictObject({
  maxConnections: z.number().int().min(1).max(1_000_000).default(CIRCUIT_BREAKER_DEFAULTS.maxConnections),
  maxPendingRequests: z
    .number()
    .int()
    .min(0)
    .max(1_000_000)
    .default(CIRCUIT_BREAKER_DEFAULTS.maxPendingRequests),
  maxRequests: z.number().int().min(1).max(1_000_000).default(CIRCUIT_BREAKER_DEFAULTS.maxRequests),
  maxRetries: z.number().int().min(0).max(1_000_000).default(CIRCUIT_BREAKER_DEFAULTS.maxRetries),
});
export type CircuitBreaker = z.output<typeof circuitBreakerSchema>;

export const outlierDetectionSchema = z
  .strictObject({
    consecutive5xx: z.number().int().min(1).max(1000).default(5),
    consecutiveGatewayErrors: z.number().int().min(1).max(1000).default(5),
    interval: durationSchema.prefault("10s"),
    /** First ejection; each further ejection of the same instance lasts one more multiple. */
    baseEjectionTime: durationSchema.prefault("30s"),
    maxEjectionTime: durationSchema.prefault("5m"),
    maxEjectionPercent: percentSchema.default(10),
  })
  .superRefine((o, ctx) => {
    if (o.maxEjectionTime < o.baseEjectionTime) {
      ctx.addIssue({
        code: "custom",
        path: ["maxEjectionTime"],
        message: "must not be shorter than baseEjectionTime",
      });
    }
  });
export type OutlierDetection = z.output<typeof outlierDetectionSchema>;

/** A rate limit for requests matching one path criterion, instead of the service-wide one. */
export const routeRateLimitSchema = z
  .strictObject({
    ...pathMatchFields,
    requestsPerSecond: z.number().positive().max(1_000_000),
    burst: z.number().int().min(1).max(10_000_000).optional(),
  })
  .superRefine((r, ctx) => exactlyOne(r, PATH_MATCH_KEYS, ctx, { what: "a route rate limit needs exactly" }))
  .transform((r) => ({ ...r, burst: r.burst ?? Math.max(1, Math.ceil(r.requestsPerSecond)) }));

export const serviceRateLimitSchema = z
  .strictObject({
    requestsPerSecond: z.number().positive().max(1_000_000).optional(),
    burst: z.number().int().min(1).max(10_000_000).optional(),
    routes: z.array(routeRateLimitSchema).max(64).optional(),
  })
  .superRefine((r, ctx) => {
    if (r.requestsPerSecond === undefined && !r.routes) {
      ctx.addIssue({ code: "custom", message: "a rate limit needs requestsPerSecond or routes" });
    }
    if (r.burst !== undefined && r.requestsPerSecond === undefined) {
      ctx.addIssue({ code: "custom", path: ["burst"], message: "burst needs requestsPerSecond" });
    }
  })
  .transform((r) => ({
    ...r,
    burst:
      r.requestsPerSecond === undefined
        ? undefined
        : (r.burst ?? Math.max(1, Math.ceil(r.requestsPerSecond))),
  }));
export type ServiceRateLimit = z.output<typeof serviceRateLimitSchema>;

export const accessLogsSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** Share of requests logged, 0..1. */
  sampling: ratioSchema.default(1),
});

export const serviceDefaultsSchema = z.strictObject({
  kind: z.literal("ServiceDefaults"),
  name: nameSchema,
  /** Overrides the protocol the service's workloads declare. */
  protocol: protocolSchema.optional(),
  loadBalancer: loadBalancerSchema.prefault({}),
  timeouts: timeoutsSchema.prefault({}),
  circuitBreaker: circuitBreakerSchema.optional(),
  outlierDetection: outlierDetectionSchema.optional(),
  rateLimit: serviceRateLimitSchema.optional(),
  /** Retries for requests no Route gives its own. */
  retries: retriesSchema.optional(),
  accessLogs: accessLogsSchema.optional(),
  /** Largest request body accepted by the service's inbound listener. */
  maxRequestBodyBytes: z
    .number()
    .int()
    .min(0)
    .max(1024 * 1024 * 1024)
    .optional(),
});

export type ServiceDefaultsInput = z.input<typeof serviceDefaultsSchema>;
export type ServiceDefaults = z.output<typeof serviceDefaultsSchema>;
