/**
 * Gateway: the mesh's edges.
 * - ingress: listeners (http, https with SNI, or tcp) route by host and path
 *   to mesh services, with JWT, CORS, rate limits and request limits;
 * - terminating: mesh services reach named external services (host:port,
 *   optionally TLS-originated) through it, under intentions;
 * - mesh: passes mTLS between datacenters by SNI (tcp listeners only).
 */
import { z } from "zod";
import { durationSchema, nameSchema, portSchema } from "../names.js";
import {
  corsSchema,
  exactlyOne,
  filePathSchema,
  headerNameSchema,
  headerOpsSchema,
  hostPatternSchema,
  hostSchema,
  PATH_MATCH_KEYS,
  pathMatchFields,
  retriesSchema,
  rewriteSchema,
} from "./common.js";

export const GATEWAY_TYPES = ["ingress", "terminating", "mesh"] as const;
export const LISTENER_PROTOCOLS = ["http", "https", "tcp"] as const;

/** Asymmetric algorithms only: `none` and HMAC (the RSA-public-key-as-secret confusion) are never accepted. */
export const JWT_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;

export const jwksSchema = z
  .strictObject({
    url: z
      .url({ protocol: /^https?$/, error: "must be an http(s) URL" })
      .max(2048)
      .optional(),
    file: filePathSchema.optional(),
    /** How long fetched keys are trusted before refetching. */
    cacheDuration: durationSchema.prefault("5m"),
  })
  .superRefine((j, ctx) => exactlyOne(j, ["url", "file"], ctx, { what: "jwks needs exactly" }));

export const jwtProviderSchema = z.strictObject({
  name: nameSchema,
  issuer: z.string().min(1).max(1024),
  audiences: z.array(z.string().min(1).max(1024)).min(1).max(32),
  jwks: jwksSchema,
  /** Allowed signing algorithms for this provider's keys. */
  algorithms: z.array(z.enum(JWT_ALGORITHMS)).min(1).max(JWT_ALGORITHMS.length),
  clockSkew: durationSchema.prefault("30s"),
  /** Copy claims into request headers for the upstream. */
  claimToHeaders: z
    .array(z.strictObject({ claim: z.string().min(1).max(256), header: headerNameSchema }))
    .max(32)
    .default([]),
  /** Keep the Authorization header when forwarding. */
  forwardToken: z.boolean().default(false),
});
export type JwtProvider = z.output<typeof jwtProviderSchema>;

/** Which providers a listener or route requires; a token from any one of them is accepted. */
export const jwtRequirementSchema = z.strictObject({
  providers: z.array(nameSchema).min(1).max(16),
  /** Let requests without a token through (a present but invalid token is still refused). */
  optional: z.boolean().default(false),
});

export const listenerRateLimitSchema = z
  .strictObject({
    requestsPerSecond: z.number().positive().max(1_000_000),
    burst: z.number().int().min(1).max(10_000_000).optional(),
    /** One bucket per client address instead of one for the listener. */
    perClient: z.boolean().default(false),
  })
  .transform((r) => ({ ...r, burst: r.burst ?? Math.max(1, Math.ceil(r.requestsPerSecond)) }));

export const LIMITS_DEFAULTS = {
  maxRequestBodyBytes: 1_048_576,
  maxHeaderBytes: 16_384,
  maxHeaders: 100,
  headersTimeout: 10_000,
  requestTimeout: 30_000,
  idleTimeout: 60_000,
  maxConnections: 10_000,
} as const;

export const listenerLimitsSchema = z.strictObject({
  maxRequestBodyBytes: z
    .number()
    .int()
    .min(0)
    .max(1024 * 1024 * 1024)
    .default(LIMITS_DEFAULTS.maxRequestBodyBytes),
  maxHeaderBytes: z.number().int().min(1024).max(1_048_576).default(LIMITS_DEFAULTS.maxHeaderBytes),
  maxHeaders: z.number().int().min(1).max(1000).default(LIMITS_DEFAULTS.maxHeaders),
  headersTimeout: durationSchema.prefault("10s"),
  requestTimeout: durationSchema.prefault("30s"),
  idleTimeout: durationSchema.prefault("60s"),
  maxConnections: z.number().int().min(1).max(1_000_000).default(LIMITS_DEFAULTS.maxConnections),
});

export const gatewayRouteSchema = z
  .strictObject({
    /** Host header / SNI pattern. */
    host: hostPatternSchema.default("*"),
    ...pathMatchFields,
    service: nameSchema,
    subset: nameSchema.optional(),
    rewrite: rewriteSchema.optional(),
    timeout: durationSchema.optional(),
    retries: retriesSchema.optional(),
    jwt: jwtRequirementSchema.optional(),
    cors: corsSchema.optional(),
    rateLimit: listenerRateLimitSchema.optional(),
    requestHeaders: headerOpsSchema.optional(),
    responseHeaders: headerOpsSchema.optional(),
  })
  .superRefine((r, ctx) => exactlyOne(r, PATH_MATCH_KEYS, ctx, { optional: true }));
export type GatewayRoute = z.output<typeof gatewayRouteSchema>;

export const sniCertificateSchema = z.strictObject({
  hosts: z.array(hostPatternSchema).min(1).max(64),
  certFile: filePathSchema,
  keyFile: filePathSchema,
});

export const listenerTlsSchema = z.strictObject({
  /** The default certificate (served when no SNI entry matches). */
  certFile: filePathSchema,
  keyFile: filePathSchema,
  /** More certificates chosen by the client's SNI host. */
  sni: z.array(sniCertificateSchema).max(64).optional(),
  minVersion: z.enum(["TLSv1.2", "TLSv1.3"]).default("TLSv1.2"),
});

export const listenerSchema = z
  .strictObject({
    port: portSchema,
    /** Bind address. */
    address: z.string().min(1).max(64).default("0.0.0.0"),
    protocol: z.enum(LISTENER_PROTOCOLS).default("http"),
    tls: listenerTlsSchema.optional(),
    routes: z.array(gatewayRouteSchema).max(256).default([]),
    jwt: jwtRequirementSchema.optional(),
    cors: corsSchema.optional(),
    rateLimit: listenerRateLimitSchema.optional(),
    limits: listenerLimitsSchema.prefault({}),
  })
  .superRefine((l, ctx) => {
    if (l.protocol === "https" && !l.tls) {
      ctx.addIssue({
        code: "custom",
        path: ["tls"],
        message: "an https listener needs tls: {certFile, keyFile}",
      });
    }
    if (l.protocol !== "https" && l.tls) {
      ctx.addIssue({
        code: "custom",
        path: ["tls"],
        message: `tls needs protocol "https", not "${l.protocol}"`,
      });
    }
    if (l.protocol === "tcp") {
      for (const key of ["jwt", "cors", "rateLimit"] as const) {
        if (l[key])
          ctx.addIssue({ code: "custom", path: [key], message: `${key} needs an http or https listener` });
      }
      l.routes.forEach((r, i) => {
        if (r.host !== "*" || PATH_MATCH_KEYS.some((k) => r[k] !== undefined)) {
          ctx.addIssue({
            code: "custom",
            path: ["routes", i],
            message: "a tcp listener cannot match on host or path",
          });
        }
      });
    }
  });
export type Listener = z.output<typeof listenerSchema>;

export const externalServiceSchema = z.strictObject({
  /** The name mesh services call it by (and intentions name). */
  name: nameSchema,
  host: hostSchema,
  port: portSchema,
  /** Originate TLS to the external service. */
  tls: z
    .strictObject({
      /** SNI and name to verify; default: host. */
      sni: hostSchema.optional(),
      caFile: filePathSchema.optional(),
    })
    .optional(),
  connectTimeout: durationSchema.prefault("5s"),
});
export type ExternalService = z.output<typeof externalServiceSchema>;

export const gatewaySchema = z
  .strictObject({
    kind: z.literal("Gateway"),
    name: nameSchema,
    type: z.enum(GATEWAY_TYPES),
    listeners: z.array(listenerSchema).max(32).default([]),
    /** terminating: the external services reached through this gateway. */
    services: z.array(externalServiceSchema).max(256).optional(),
    jwtProviders: z.array(jwtProviderSchema).max(16).optional(),
    /** How many x-forwarded-for hops in front of the gateway to trust (0: the peer address is the client). */
    trustedHops: z.number().int().min(0).max(10).default(0),
  })
  .superRefine((g, ctx) => {
    const ports = new Map<string, number>();
    g.listeners.forEach((l, i) => {
      const first = ports.get(String(l.port));
      if (first !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["listeners", i, "port"],
          message: `port ${l.port} is already used by listeners[${first}]`,
        });
      } else {
        ports.set(String(l.port), i);
      }
    });
    if (g.type === "ingress") {
      if (g.listeners.length === 0) {
        ctx.addIssue({ code: "custom", path: ["listeners"], message: "an ingress gateway needs listeners" });
      }
      g.listeners.forEach((l, i) => {
        if (l.routes.length === 0) {
          ctx.addIssue({
            code: "custom",
            path: ["listeners", i, "routes"],
            message: "a listener needs routes",
          });
        }
        if (l.protocol === "tcp" && l.routes.length > 1) {
          ctx.addIssue({
            code: "custom",
            path: ["listeners", i, "routes"],
            message: "a tcp listener routes to exactly one service",
          });
        }
      });
    }
    if (g.type === "mesh") {
      g.listeners.forEach((l, i) => {
        if (l.protocol !== "tcp") {
          ctx.addIssue({
            code: "custom",
            path: ["listeners", i, "protocol"],
            message: 'a mesh gateway passes mTLS through: protocol must be "tcp"',
          });
        }
        if (l.routes.length > 0) {
          ctx.addIssue({
            code: "custom",
            path: ["listeners", i, "routes"],
            message: "a mesh gateway routes by SNI, not by routes",
          });
        }
      });
      if (g.listeners.length === 0) {
        ctx.addIssue({ code: "custom", path: ["listeners"], message: "a mesh gateway needs a listener" });
      }
    }
    if (g.type === "terminating") {
      if (!g.services || g.services.length === 0) {
        ctx.addIssue({ code: "custom", path: ["services"], message: "a terminating gateway needs services" });
      }
      if (g.listeners.length > 0) {
        ctx.addIssue({
          code: "custom",
          path: ["listeners"],
          message: "a terminating gateway is reached through the mesh; it has no listeners",
        });
      }
      const names = new Map<string, number>();
      g.services?.forEach((s, i) => {
        const first = names.get(s.name);
        if (first !== undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["services", i, "name"],
            message: `"${s.name}" is already defined at services[${first}]`,
          });
        } else {
          names.set(s.name, i);
        }
      });
    } else if (g.services) {
      ctx.addIssue({ code: "custom", path: ["services"], message: "services are for terminating gateways" });
    }
    const providers = new Set<string>();
    g.jwtProviders?.forEach((p, i) => {
      if (providers.has(p.name)) {
        ctx.addIssue({
          code: "custom",
          path: ["jwtProviders", i, "name"],
          message: `provider "${p.name}" is defined twice`,
        });
      }
      providers.add(p.name);
    });
    const checkJwt = (req: { providers: string[] } | undefined, path: (string | number)[]) => {
      req?.providers.forEach((name, j) => {
        if (!providers.has(name)) {
          ctx.addIssue({
            code: "custom",
            path: [...path, "jwt", "providers", j],
            message: `no jwtProviders entry named "${name}"`,
          });
        }
      });
    };
    g.listeners.forEach((l, i) => {
      checkJwt(l.jwt, ["listeners", i]);
      l.routes.forEach((r, j) => {
        checkJwt(r.jwt, ["listeners", i, "routes", j]);
      });
    });
  });

export type GatewayInput = z.input<typeof gatewaySchema>;
export type Gateway = z.output<typeof gatewaySchema>;
