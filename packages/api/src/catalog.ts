/**
 * The catalog's wire types: services, instances and their health.
 * Health in the control plane is TTL-based: whoever registers an instance
 * (normally its sidecar, which runs the app's HTTP/TCP/gRPC check itself)
 * reports check results; a check not reported within its TTL goes critical,
 * and an instance critical for longer than `deregisterCriticalAfter` is
 * removed from the catalog.
 */
import { z } from "zod";
import type { InstanceCertificate } from "./ca.js";
import {
  checkIdSchema,
  durationSchema,
  instanceIdSchema,
  metaSchema,
  nameSchema,
  portSchema,
  tagsSchema,
} from "./names.js";

export const HEALTH_STATUSES = ["passing", "warning", "critical"] as const;
export const healthStatusSchema = z.enum(HEALTH_STATUSES);
export type HealthStatus = z.infer<typeof healthStatusSchema>;

/** Worst status wins: critical > warning > passing. */
export function worstStatus(statuses: Iterable<HealthStatus>): HealthStatus {
  let worst: HealthStatus = "passing";
  for (const s of statuses) {
    if (s === "critical") return "critical";
    if (s === "warning") worst = "warning";
  }
  return worst;
}

export const localitySchema = z.strictObject({
  region: z.string().min(1).max(63).optional(),
  zone: z.string().min(1).max(63).optional(),
});

export const checkRegistrationSchema = z.strictObject({
  /** Unique within the instance. Default: "ttl". */
  id: checkIdSchema.default("ttl"),
  name: z.string().max(128).optional(),
  /** The check goes critical when not reported within this long. */
  ttl: durationSchema,
  /** Remove the instance once this check has been critical this long. Default: 1m. */
  deregisterCriticalAfter: durationSchema.optional(),
  /** Status before the first report. Consul's default is critical: unproven means unhealthy. */
  status: healthStatusSchema.default("critical"),
  notes: z.string().max(1024).optional(),
});
export type CheckRegistration = z.output<typeof checkRegistrationSchema>;

/** The protocols a proxy may declare (same list as resources/common PROTOCOLS, kept zod-light here). */
export const proxyProtocolSchema = z.enum(["tcp", "http", "http2", "grpc"]);

export const proxyUpstreamSchema = z.strictObject({
  service: nameSchema,
  /** The loopback port where the app reaches this upstream through its sidecar. */
  localPort: portSchema,
});

/**
 * A sidecar's own registration (Consul's `Proxy` block): the upstreams its
 * app calls, which scope the config snapshot it receives, and the protocol
 * its app speaks (ServiceDefaults.protocol overrides it).
 */
export const proxyRegistrationSchema = z
  .strictObject({
    protocol: proxyProtocolSchema.default("tcp"),
    upstreams: z.array(proxyUpstreamSchema).max(64).default([]),
  })
  .superRefine((p, ctx) => {
    const ports = new Map<number, number>();
    p.upstreams.forEach((u, i) => {
      const first = ports.get(u.localPort);
      if (first !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["upstreams", i, "localPort"],
          message: `port ${u.localPort} is already used by upstreams[${first}]`,
        });
      } else ports.set(u.localPort, i);
    });
  });
export type ProxyRegistration = z.output<typeof proxyRegistrationSchema>;

export const instanceRegistrationSchema = z.strictObject({
  id: instanceIdSchema.optional(),
  service: nameSchema,
  /** Where the instance is reached: the sidecar's inbound address for meshed instances. */
  address: z.string().min(1).max(253),
  port: portSchema,
  /** Named extra ports (e.g. admin, app). */
  ports: z.record(z.string().regex(/^[a-z][a-z0-9-]{0,31}$/), portSchema).optional(),
  tags: tagsSchema.default([]),
  meta: metaSchema.default({}),
  datacenter: nameSchema.default("dc1"),
  locality: localitySchema.optional(),
  checks: z.array(checkRegistrationSchema).max(16).default([]),
  /** Present when the instance is a meshed workload registered by its sidecar. */
  proxy: proxyRegistrationSchema.optional(),
});
export type InstanceRegistration = z.input<typeof instanceRegistrationSchema>;
export type ParsedInstanceRegistration = z.output<typeof instanceRegistrationSchema>;

export const checkUpdateSchema = z.strictObject({
  status: healthStatusSchema,
  output: z.string().max(4096).default(""),
});
export type CheckUpdate = z.input<typeof checkUpdateSchema>;

export interface CheckState {
  id: string;
  name?: string | undefined;
  ttlMs: number;
  deregisterCriticalAfterMs: number;
  status: HealthStatus;
  output: string;
  /** Epoch ms of the last report (or registration). */
  updatedAt: number;
  /** Epoch ms since when the check has been critical, if it is. */
  criticalSince?: number | undefined;
}

export interface Instance {
  id: string;
  service: string;
  address: string;
  port: number;
  ports: Record<string, number>;
  tags: string[];
  meta: Record<string, string>;
  datacenter: string;
  locality?: { region?: string | undefined; zone?: string | undefined } | undefined;
  checks: CheckState[];
  /** Aggregate: the worst of the checks, passing when there are none. */
  status: HealthStatus;
  registeredAt: number;
  /** Store revision of the last change to this instance. */
  modifyIndex: number;
  proxy?: ProxyRegistration;
  /** The newest certificate the CA signed for this instance, when its proxy asked with its id. */
  certificate?: InstanceCertificate;
}

export interface ServiceSummary {
  name: string;
  instances: number;
  passing: number;
  warning: number;
  critical: number;
  tags: string[];
  /** Store revision of the last change to any instance of the service. */
  modifyIndex: number;
}

export { BLOCKING_DEFAULT_WAIT_MS, BLOCKING_MAX_WAIT_MS } from "./patterns.js";

/** Response of the blocking discovery endpoint. */
export interface ServiceInstancesResponse {
  service: string;
  index: number;
  instances: Instance[];
}
