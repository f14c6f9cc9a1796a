/**
 * Workload: a process `weft up` runs, `replicas` times, each with a sidecar.
 * Only meaningful in a `weft up` file; the control plane stores it like any
 * other resource but does not act on it.
 */
import { z } from "zod";
import { localitySchema } from "../catalog.js";
import { durationSchema, metaSchema, nameSchema, portSchema, tagsSchema } from "../names.js";
import { exactlyOne, filePathSchema, pathSchema, protocolSchema } from "./common.js";

export const MAX_REPLICAS = 64;

/**
 * How the sidecar checks its app: exactly one of an HTTP GET of `http`
 * (a path), a TCP connect, or the gRPC health protocol (`true` for the
 * server as a whole, or a service name).
 */
export const workloadHealthSchema = z
  .strictObject({
    http: pathSchema.optional(),
    tcp: z.literal(true, { error: "tcp must be true" }).optional(),
    grpc: z
      .union([z.literal(true), z.string().min(1).max(256)], {
        error: "grpc must be true or a gRPC service name",
      })
      .optional(),
    interval: durationSchema.prefault("10s"),
    timeout: durationSchema.prefault("2s"),
  })
  .superRefine((h, ctx) => {
    exactlyOne(h, ["http", "tcp", "grpc"], ctx, { what: "a health check needs exactly" });
    // The sidecar's limits (weft proxy --health-interval / --health-timeout).
    if (h.interval < 100)
      ctx.addIssue({ code: "custom", path: ["interval"], message: "must be at least 100ms" });
    if (h.timeout < 10) ctx.addIssue({ code: "custom", path: ["timeout"], message: "must be at least 10ms" });
    if (h.timeout > h.interval) {
      ctx.addIssue({ code: "custom", path: ["timeout"], message: "must not be longer than interval" });
    }
  });
export type WorkloadHealth = z.output<typeof workloadHealthSchema>;

export const upstreamSchema = z.strictObject({
  service: nameSchema,
  /** The app reaches the service at 127.0.0.1:localPort. */
  localPort: portSchema,
});
export type Upstream = z.output<typeof upstreamSchema>;

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

export const envSchema = z
  .record(
    z
      .string()
      .regex(
        ENV_KEY,
        "environment variable names: A-Z a-z 0-9 _ (not starting with a digit), up to 128 chars",
      )
      .refine((k) => k !== "__proto__", "reserved name")
      .refine((k) => k !== "PORT", "PORT is set by weft; use the workload's `port` field to fix it"),
    z
      .string()
      .max(32_768)
      .refine((v) => !v.includes("\0"), "may not contain NUL"),
  )
  .refine((m) => Object.keys(m).length <= 256, "at most 256 environment variables");

export const workloadSchema = z
  .strictObject({
    kind: z.literal("Workload"),
    name: nameSchema,
    /** The service this workload provides; two workloads may be two versions of one service. */
    service: nameSchema.optional(),
    /** argv; the app gets its port in PORT. */
    command: z
      .array(
        z
          .string()
          .max(4096)
          .refine((s) => !s.includes("\0"), "may not contain NUL"),
      )
      .min(1, "command needs at least the program to run")
      .max(256),
    cwd: filePathSchema.optional(),
    replicas: z.number().int().min(1).max(MAX_REPLICAS).default(1),
    protocol: protocolSchema.default("tcp"),
    /** A fixed app port (only with one replica); otherwise a free port is allocated. */
    port: portSchema.optional(),
    health: workloadHealthSchema.optional(),
    upstreams: z.array(upstreamSchema).max(128).default([]),
    env: envSchema.default({}),
    tags: tagsSchema.default([]),
    meta: metaSchema.default({}),
    locality: localitySchema.optional(),
  })
  .superRefine((w, ctx) => {
    if (w.port !== undefined && w.replicas > 1) {
      ctx.addIssue({
        code: "custom",
        path: ["port"],
        message: `a fixed port cannot be shared by ${w.replicas} replicas; drop port or set replicas: 1`,
      });
    }
    const seen = new Map<number, number>();
    w.upstreams.forEach((u, i) => {
      const first = seen.get(u.localPort);
      if (first !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["upstreams", i, "localPort"],
          message: `localPort ${u.localPort} is already used by upstreams[${first}]`,
        });
      } else {
        seen.set(u.localPort, i);
      }
      if (w.port !== undefined && u.localPort === w.port) {
        ctx.addIssue({
          code: "custom",
          path: ["upstreams", i, "localPort"],
          message: `localPort ${u.localPort} is the workload's own port`,
        });
      }
    });
  })
  .transform((w) => ({ ...w, service: w.service ?? w.name }));

export type WorkloadInput = z.input<typeof workloadSchema>;
export type Workload = z.output<typeof workloadSchema>;
