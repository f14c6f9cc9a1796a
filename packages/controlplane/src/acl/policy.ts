/**
 * ACL policies and permissions. A token carries policy strings; a request
 * needs one permission; `policiesAllow` is the whole decision, a pure
 * function so that the table in policy.test.ts can pin it down.
 *
 *   operator             everything
 *   read                 every read except tokens
 *   service:<n>:write    register/heartbeat/deregister <n> instances, plus what
 *                        a sidecar reads: discovery of any service, the
 *                        services list, config. Never config writes or tokens.
 *   service:<n>:read     discovery of <n> only
 */
import { NAME_PATTERN } from "@weft/api";

export const PERMISSIONS = {
  /** List services (`GET /v1/catalog/services`). */
  catalogRead: "catalog:read",
  /** Read and validate config resources. */
  configRead: "config:read",
  /** Apply and delete config resources. */
  configWrite: "config:write",
  /** List tokens. */
  aclRead: "acl:read",
  /** Create and revoke tokens. */
  aclWrite: "acl:write",
  /** Rotate the CA root. */
  caWrite: "ca:write",
} as const;

export type ServicePermission = `service:${string}:read` | `service:${string}:write`;
export type Permission = (typeof PERMISSIONS)[keyof typeof PERMISSIONS] | ServicePermission;

/** `service:<name>:read` (discovery, instance reads) or `service:<name>:write` (register, heartbeat, deregister). */
export function servicePermission(service: string, access: "read" | "write"): ServicePermission {
  return `service:${service}:${access}`;
}

export type Policy = "operator" | "read" | ServicePermission;

const SERVICE_POLICY = /^service:([^:]+):(read|write)$/;

/** Validates a policy string; the error names what is expected. */
export function parsePolicy(text: string): { ok: true; policy: Policy } | { ok: false; error: string } {
  if (text === "operator" || text === "read") return { ok: true, policy: text };
  const m = SERVICE_POLICY.exec(text);
  if (m && NAME_PATTERN.test(m[1] as string)) return { ok: true, policy: text as ServicePermission };
  return {
    ok: false,
    error: `invalid policy "${text.slice(0, 100)}"; expected "operator", "read", "service:<name>:write" or "service:<name>:read"`,
  };
}

function policyAllows(policy: string, perm: Permission): boolean {
  if (policy === "operator") return true;
  const p = SERVICE_POLICY.exec(perm);
  if (policy === "read") {
    if (p) return p[2] === "read";
    return perm === "catalog:read" || perm === "config:read";
  }
  const own = SERVICE_POLICY.exec(policy);
  if (!own) return false;
  const [, ownService, ownAccess] = own;
  if (ownAccess === "write") {
    if (p) return p[2] === "read" || p[1] === ownService;
    return perm === "catalog:read" || perm === "config:read";
  }
  return p !== null && p[2] === "read" && p[1] === ownService;
}

export function policiesAllow(policies: readonly string[], perm: Permission): boolean {
  return policies.some((p) => policyAllows(p, perm));
}

/** Which policies grant `perm`, for error messages ("granted by operator or service:api:write"). */
export function grantedBy(perm: Permission): string {
  const p = SERVICE_POLICY.exec(perm);
  if (p) {
    return p[2] === "write" ? `operator or ${perm}` : `operator, read, ${perm} or any service:<name>:write`;
  }
  if (perm === "catalog:read" || perm === "config:read") return "operator, read or any service:<name>:write";
  return "operator";
}
