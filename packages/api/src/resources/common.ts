/**
 * Pieces shared by the config resource kinds: HTTP matches, header
 * operations, retries, timeouts, fault injection, rate limits, mirroring.
 *
 * Every object is strict (unknown keys refused). Defaults live here, in the
 * schema, and nowhere else: the exported `*_DEFAULTS` constants are what the
 * schemas fill in, for the data plane to use when a resource is absent.
 * Durations are strings in config ("5s") and milliseconds after parsing.
 */
import { z } from "zod";
import { durationSchema, nameSchema } from "../names.js";
import { checkRegex } from "../safe-regex.js";

// ---------------------------------------------------------------- primitives

/** A regular expression from config, refused when costly (see safe-regex.ts). */
export const regexSchema = z.string().superRefine((pattern, ctx) => {
  const reason = checkRegex(pattern);
  if (reason) ctx.addIssue({ code: "custom", message: reason });
});

/** Keys that would reach an object's prototype if used as a plain property name. */
const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/** An HTTP header name (RFC 9110 token), normalised to lower case. */
export const headerNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,256}$/, "must be an HTTP header name (RFC 9110 token, 1-256 chars)")
  .refine((s) => !FORBIDDEN_KEYS.has(s.toLowerCase()), "reserved name")
  .transform((s) => s.toLowerCase());

/** A header value: visible ASCII and spaces/tabs, no CR, LF or NUL (header injection). */
export const headerValueSchema = z
  .string()
  .max(8192)
  .regex(/^[\t\x20-\x7e\x80-\xff]*$/, "header values may not contain control characters (CR, LF, NUL)");

/** A URL path as sent on the wire: starts with "/", no whitespace or control characters. */
export const pathSchema = z
  .string()
  .max(1024)
  .refine(
    (p) =>
      p.startsWith("/") &&
      !/\s/.test(p) &&
      ![...p].some((ch) => (ch.codePointAt(0) as number) < 0x20 || ch === "\u007f"),
    'must be a path starting with "/" without spaces or control characters',
  );

export const percentSchema = z.number().min(0).max(100);

/** A fraction of traffic, 0..1. */
export const ratioSchema = z.number().min(0).max(1);

export const HTTP_METHOD_PATTERN = /^[A-Za-z]{1,16}$/;
/** An HTTP method, normalised to upper case. */
export const methodSchema = z
  .string()
  .regex(HTTP_METHOD_PATTERN, "must be an HTTP method such as GET or POST")
  .transform((s) => s.toUpperCase());

export const PROTOCOLS = ["tcp", "http", "http2", "grpc"] as const;
export const protocolSchema = z.enum(PROTOCOLS);
export type Protocol = z.output<typeof protocolSchema>;

/** A DNS host name or a "*.example.com" / "*" wildcard, normalised to lower case. */
export const hostPatternSchema = z
  .string()
  .max(253)
  .regex(
    /^(\*|(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)$/,
    'must be a host name, "*.example.com" or "*"',
  )
  .transform((s) => s.toLowerCase());

/** A host name or IP literal to connect to. */
export const hostSchema = z
  .string()
  .max(253)
  .regex(
    /^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])$/,
    "must be a host name or an IP address",
  );

/** A file path on the machine running the proxy or gateway. */
export const filePathSchema = z
  .string()
  .min(1)
  .max(4096)
  .refine((s) => !s.includes("\0"), "may not contain NUL");

/** A string-to-string map with safe keys, bounded in size. */
export function boundedRecord<K extends z.ZodType<string, string>>(key: K, value: z.ZodType, max = 64) {
  return z.record(key, value).refine((m) => Object.keys(m).length <= max, `at most ${max} entries`);
}

/** Adds an issue unless exactly one (or, when `optional`, at most one) of `keys` is set. */
export function exactlyOne(
  value: Record<string, unknown>,
  keys: readonly string[],
  ctx: z.RefinementCtx,
  opts: { optional?: boolean; what?: string } = {},
): void {
  const present = keys.filter((k) => value[k] !== undefined);
  const list = keys.join(", ");
  if (present.length > 1) {
    ctx.addIssue({
      code: "custom",
      path: [present[1] as string],
      message: `${present.join(" and ")} cannot be combined; set at most one of ${list}`,
    });
  } else if (present.length === 0 && !opts.optional) {
    ctx.addIssue({ code: "custom", path: [], message: `${opts.what ?? "expected"} one of ${list}` });
  }
}

// ---------------------------------------------------------------- matches

/**
 * A header match. Exactly one of exact, prefix, suffix, regex, present;
 * `invert` negates the result.
 */
export const headerMatchSchema = z
  .strictObject({
    name: headerNameSchema,
    exact: headerValueSchema.optional(),
    prefix: headerValueSchema.optional(),
    suffix: headerValueSchema.optional(),
    regex: regexSchema.optional(),
    present: z.literal(true, { error: "present must be true (use invert: true for absent)" }).optional(),
    invert: z.boolean().default(false),
  })
  .superRefine((m, ctx) =>
    exactlyOne(m, ["exact", "prefix", "suffix", "regex", "present"], ctx, { what: "a header match needs" }),
  );
export type HeaderMatch = z.output<typeof headerMatchSchema>;

/** A query parameter match: exactly one of exact, regex, present. */
export const queryMatchSchema = z
  .strictObject({
    name: z.string().min(1).max(256),
    exact: z.string().max(4096).optional(),
    regex: regexSchema.optional(),
    present: z.literal(true, { error: "present must be true" }).optional(),
  })
  .superRefine((m, ctx) =>
    exactlyOne(m, ["exact", "regex", "present"], ctx, { what: "a query match needs" }),
  );
export type QueryMatch = z.output<typeof queryMatchSchema>;

export const PATH_MATCH_KEYS = ["pathExact", "pathPrefix", "pathRegex"] as const;

/** Path match fields shared by routes, intentions and gateway routes: at most one of them. */
export const pathMatchFields = {
  pathExact: pathSchema.optional(),
  pathPrefix: pathSchema.optional(),
  pathRegex: regexSchema.optional(),
};

/**
 * An HTTP request match. All given criteria must hold; none given matches
 * every request. At most one path criterion.
 */
export const httpMatchSchema = z
  .strictObject({
    ...pathMatchFields,
    methods: z.array(methodSchema).min(1).max(16).optional(),
    headers: z.array(headerMatchSchema).max(32).optional(),
    query: z.array(queryMatchSchema).max(32).optional(),
  })
  .superRefine((m, ctx) => exactlyOne(m, PATH_MATCH_KEYS, ctx, { optional: true }));
export type HttpMatch = z.output<typeof httpMatchSchema>;

// ---------------------------------------------------------------- actions

const headerMapSchema = boundedRecord(headerNameSchema, headerValueSchema);

/** Header changes applied to a request or a response: add (append), set (replace), remove. */
export const headerOpsSchema = z.strictObject({
  add: headerMapSchema.optional(),
  set: headerMapSchema.optional(),
  remove: z.array(headerNameSchema).max(64).optional(),
});
export type HeaderOps = z.output<typeof headerOpsSchema>;

/** Path/host rewrite before forwarding. */
export const rewriteSchema = z
  .strictObject({
    /** Replaces the matched path prefix (or the whole path for exact matches). */
    prefix: pathSchema.optional(),
    /** Replaces the Host/:authority header. */
    host: hostSchema.optional(),
  })
  .superRefine((r, ctx) => {
    if (r.prefix === undefined && r.host === undefined) {
      ctx.addIssue({ code: "custom", message: "a rewrite needs prefix or host" });
    }
  });
export type Rewrite = z.output<typeof rewriteSchema>;

export const RETRY_ON = [
  "connect-failure",
  "reset",
  "5xx",
  "gateway-error",
  "retriable-status-codes",
  "refused-stream",
  // retriable gRPC status codes
  "cancelled",
  "deadline-exceeded",
  "internal",
  "resource-exhausted",
  "unavailable",
] as const;

export const RETRIES_DEFAULTS = {
  numRetries: 2,
  retryOn: ["connect-failure", "reset", "gateway-error"] as (typeof RETRY_ON)[number][],
  backoff: { baseInterval: 25, maxInterval: 250 },
  budget: { percent: 20, minRetriesPerSecond: 10 },
  retryNonIdempotent: false,
} as const;

export const backoffSchema = z
  .strictObject({
    /** First delay; doubles each try, with full jitter. */
    baseInterval: durationSchema.prefault("25ms"),
    maxInterval: durationSchema.prefault("250ms"),
  })
  .superRefine((b, ctx) => {
    if (b.maxInterval < b.baseInterval) {
      ctx.addIssue({
        code: "custom",
        path: ["maxInterval"],
        message: "must not be shorter than baseInterval",
      });
    }
  });

/** Retries at most `percent` of active requests (plus a floor), so retries cannot amplify an outage. */
export const retryBudgetSchema = z.strictObject({
  percent: percentSchema.default(20),
  minRetriesPerSecond: z.number().int().min(0).max(10_000).default(10),
});

export const retriesSchema = z.strictObject({
  /** Retries after the first try (0 disables). */
  numRetries: z.number().int().min(0).max(10).default(2),
  retryOn: z
    .array(z.enum(RETRY_ON))
    .min(1)
    .max(RETRY_ON.length)
    .default(["connect-failure", "reset", "gateway-error"]),
  /** HTTP statuses retried when retryOn includes "retriable-status-codes". */
  retryOnStatusCodes: z.array(z.number().int().min(100).max(599)).max(32).optional(),
  perTryTimeout: durationSchema.optional(),
  backoff: backoffSchema.prefault({}),
  budget: retryBudgetSchema.prefault({}),
  /** Retry a request whose body was sent even when its method is not idempotent. */
  retryNonIdempotent: z.boolean().default(false),
});
export type Retries = z.output<typeof retriesSchema>;

/** Delay and/or abort a percentage of requests. */
export const faultSchema = z
  .strictObject({
    delay: z
      .strictObject({
        percent: percentSchema,
        duration: durationSchema,
      })
      .optional(),
    abort: z
      .strictObject({
        percent: percentSchema,
        httpStatus: z.number().int().min(200).max(599).optional(),
        grpcStatus: z.number().int().min(1).max(16).optional(),
      })
      .superRefine((a, ctx) => exactlyOne(a, ["httpStatus", "grpcStatus"], ctx, { what: "an abort needs" }))
      .optional(),
  })
  .superRefine((f, ctx) => {
    if (!f.delay && !f.abort) ctx.addIssue({ code: "custom", message: "a fault needs delay or abort" });
  });
export type Fault = z.output<typeof faultSchema>;

/** Copy a share of requests to another service; its responses are ignored. */
export const mirrorSchema = z.strictObject({
  service: nameSchema,
  subset: nameSchema.optional(),
  percent: percentSchema.default(100),
});
export type Mirror = z.output<typeof mirrorSchema>;

/** A local token bucket: `requestsPerSecond` refill, `burst` capacity (default: one second's worth). */
export const rateLimitSchema = z
  .strictObject({
    requestsPerSecond: z.number().positive().max(1_000_000),
    burst: z.number().int().min(1).max(10_000_000).optional(),
  })
  .transform((r) => ({ ...r, burst: r.burst ?? Math.max(1, Math.ceil(r.requestsPerSecond)) }));
export type RateLimit = z.output<typeof rateLimitSchema>;

export const REDIRECT_STATUSES = [301, 302, 303, 307, 308] as const;

/** An HTTP redirect answered by the proxy. Unset parts keep the request's. */
export const httpRedirectSchema = z
  .strictObject({
    scheme: z.enum(["http", "https"]).optional(),
    host: hostSchema.optional(),
    port: z.number().int().min(1).max(65535).optional(),
    path: pathSchema.optional(),
    prefixRewrite: pathSchema.optional(),
    statusCode: z
      .number()
      .int()
      .refine((n) => (REDIRECT_STATUSES as readonly number[]).includes(n), {
        message: `expected one of ${REDIRECT_STATUSES.join(", ")}`,
      })
      .default(302),
  })
  .superRefine((r, ctx) => {
    exactlyOne(r, ["path", "prefixRewrite"], ctx, { optional: true });
    if (!r.scheme && !r.host && !r.port && !r.path && !r.prefixRewrite) {
      ctx.addIssue({
        code: "custom",
        message: "a redirect needs at least one of scheme, host, port, path, prefixRewrite",
      });
    }
  });
export type HttpRedirect = z.output<typeof httpRedirectSchema>;

/** A response the proxy sends itself. */
export const directResponseSchema = z.strictObject({
  status: z.number().int().min(200).max(599),
  body: z.string().max(65_536).optional(),
  headers: headerMapSchema.optional(),
});
export type DirectResponse = z.output<typeof directResponseSchema>;

/** Cross-origin resource sharing, answered at the gateway. */
export const corsSchema = z
  .strictObject({
    allowOrigins: z.array(z.string().min(1).max(512)).max(64).default([]),
    allowOriginRegex: z.array(regexSchema).max(16).optional(),
    allowMethods: z.array(methodSchema).max(16).default(["GET", "HEAD", "POST"]),
    allowHeaders: z.array(headerNameSchema).max(64).default([]),
    exposeHeaders: z.array(headerNameSchema).max(64).default([]),
    maxAge: durationSchema.optional(),
    allowCredentials: z.boolean().default(false),
  })
  .superRefine((c, ctx) => {
    if (c.allowCredentials && c.allowOrigins.includes("*")) {
      ctx.addIssue({
        code: "custom",
        path: ["allowCredentials"],
        message: 'allowCredentials cannot be combined with the origin "*"',
      });
    }
  });
export type Cors = z.output<typeof corsSchema>;
