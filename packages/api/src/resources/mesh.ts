/**
 * Mesh: the one mesh-wide settings resource (its name is always "mesh"):
 * trust domain, default policy for calls no intention covers, certificate
 * lifetimes, tracing and access logs.
 */
import { z } from "zod";
import { durationSchema } from "../names.js";
import { ratioSchema } from "./common.js";

export const MESH_NAME = "mesh";

/** A SPIFFE trust domain: a bare lowercase DNS name, no port or userinfo. */
export const trustDomainSchema = z
  .string()
  .max(255)
  .regex(
    /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/,
    "must be a lowercase DNS name such as weft.local (no scheme, port or path)",
  );

export const certificatesSchema = z
  .strictObject({
    /** Lifetime of the leaf certificates the CA signs; proxies renew at about half of it. */
    leafTtl: durationSchema.prefault("24h"),
    /** The longest lifetime a CSR may ask for. */
    maxLeafTtl: durationSchema.prefault("72h"),
    rootTtl: durationSchema.prefault("87600h"),
  })
  .superRefine((c, ctx) => {
    if (c.leafTtl < 1000) ctx.addIssue({ code: "custom", path: ["leafTtl"], message: "must be at least 1s" });
    if (c.leafTtl > c.maxLeafTtl) {
      ctx.addIssue({ code: "custom", path: ["leafTtl"], message: "must not be longer than maxLeafTtl" });
    }
    if (c.maxLeafTtl >= c.rootTtl) {
      ctx.addIssue({ code: "custom", path: ["maxLeafTtl"], message: "must be shorter than rootTtl" });
    }
  });

export const tracingSchema = z.strictObject({
  /** OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces. */
  endpoint: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).max(2048),
  /** Share of new traces sampled, 0..1; an incoming sampling decision is honoured. */
  sampling: ratioSchema.default(1),
});

export const meshAccessLogsSchema = z.strictObject({
  enabled: z.boolean().default(true),
  sampling: ratioSchema.default(1),
});

export const meshSchema = z.strictObject({
  kind: z.literal("Mesh"),
  name: z.literal(MESH_NAME, { error: `the Mesh resource is always named "${MESH_NAME}"` }),
  trustDomain: trustDomainSchema.default("weft.local"),
  /** For calls no intention covers. */
  defaultPolicy: z.enum(["allow", "deny"]).default("deny"),
  certificates: certificatesSchema.prefault({}),
  tracing: tracingSchema.optional(),
  accessLogs: meshAccessLogsSchema.prefault({}),
});

export type MeshInput = z.input<typeof meshSchema>;
export type Mesh = z.output<typeof meshSchema>;
