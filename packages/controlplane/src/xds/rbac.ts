/**
 * A service's Intention (`snapshot.inbound.authz`) -> one Envoy RBAC HTTP
 * filter (`envoy.extensions.filters.http.rbac.v3.RBAC`, action ALLOW) that a
 * proxyless gRPC server (grpc-js-xds `XdsServer`) enforces with the same
 * decisions as the sidecar's authorizer (api/authz/authorizer.ts).
 *
 * RBAC has no order between policies: a request is allowed when any policy
 * matches. The authorizer's precedence is written into the policies instead:
 *  - a named source N (its first entry only, as compileAuthz) is the
 *    principal `authenticated.principal_name` matching N's SPIFFE ID;
 *    - `action: allow` -> one policy, any request; `deny` -> no policy;
 *    - L7 permissions, first match wins, none = deny -> for each allowing
 *      permission i: `and(not(deny j) for every deny j before i, i)`;
 *  - "*" applies to every caller no named source matches:
 *    `and_ids(mesh caller, not_id(or_ids(every named source)))`, with the
 *    same action / permissions encoding;
 *  - without "*", the mesh's defaultAction for those callers: allow -> one
 *    policy for them, deny -> none. No policy at all denies everything.
 *
 * Principals: a source is a service, whatever its namespace (the sidecar
 * reads the service out of the peer's workload ID and ignores the
 * namespace), in the mesh's trust domain: `safe_regex`
 * `spiffe://TD/ns/[^/]+/svc/NAME`. With mTLS ("mesh caller") an unnamed
 * caller must still present a mesh workload ID, as the sidecar refuses any
 * other peer; a plaintext server cannot know who calls, so every caller
 * is unnamed there ("*" or the default policy decide).
 *
 * Requests: gRPC's RBAC sees the method path (`/pkg.Service/Method`) as
 * `url_path`, `:method` (always POST) and the call metadata as headers.
 * Config paths are put in the canonical form the authorizer compares in.
 * Regexes are wrapped as `(?:p)`: gRPC anchors `^...$` around them without
 * a group, so `a|b` would otherwise mean `^a|b$`. Known gaps, which the
 * sidecar and gRPC see differently whatever the config: gRPC never matches
 * `-bin` metadata and always reads `content-type` as `application/grpc`.
 *
 * The filter is not optional: a gRPC server without RBAC support
 * (GRPC_XDS_EXPERIMENTAL_RBAC unset in grpc-js-xds 1.14) refuses the whole
 * Listener (NACK) and does not serve, rather than serving unchecked.
 */
import type { AuthzPermission, AuthzSource, InboundAuthz, SnapshotHttpMatch } from "@weft/api";
import { canonicalPath } from "@weft/api";
import { TYPE_PREFIX, type XdsResource } from "./resources.js";

export const RBAC_FILTER_NAME = "envoy.filters.http.rbac";
export const RBAC_TYPE = `${TYPE_PREFIX}envoy.extensions.filters.http.rbac.v3.RBAC`;

export interface RbacOptions {
  /** The mesh's trust domain: principals are SPIFFE IDs in it. */
  trustDomain: string;
  /** Callers present mesh certificates (the server's Listener requires them). */
  mtls: boolean;
}

type StringMatcher =
  | { exact: string }
  | { prefix: string }
  | { suffix: string }
  | { safe_regex: { regex: string } };

/** `envoy.config.rbac.v3.Permission` (the oneof `rule`). */
export type RbacPermission =
  | { any: true }
  | { and_rules: { rules: RbacPermission[] } }
  | { or_rules: { rules: RbacPermission[] } }
  | { not_rule: RbacPermission }
  | { url_path: { path: StringMatcher } }
  | { header: Record<string, unknown> };

/** `envoy.config.rbac.v3.Principal` (the oneof `identifier`). */
export type RbacPrincipal =
  | { any: true }
  | { and_ids: { ids: RbacPrincipal[] } }
  | { or_ids: { ids: RbacPrincipal[] } }
  | { not_id: RbacPrincipal }
  | { authenticated: { principal_name: StringMatcher } };

export interface RbacPolicy {
  permissions: RbacPermission[];
  principals: RbacPrincipal[];
}

/** `envoy.config.rbac.v3.RBAC`. */
export interface RbacRules {
  action: "ALLOW";
  policies: Record<string, RbacPolicy>;
}

const ANY = { any: true } as const;

/** RE2 and JS agree on these escapes. */
function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The SPIFFE IDs of `service` in the trust domain, any namespace. */
export function sourcePrincipal(trustDomain: string, service: string): RbacPrincipal {
  return {
    authenticated: {
      principal_name: {
        safe_regex: { regex: `spiffe://${escapeRegex(trustDomain)}/ns/[^/]+/svc/${escapeRegex(service)}` },
      },
    },
  };
}

/** Any workload of the mesh (what the sidecar accepts as a peer at all). */
function meshPrincipal(trustDomain: string): RbacPrincipal {
  return {
    authenticated: {
      principal_name: { safe_regex: { regex: `spiffe://${escapeRegex(trustDomain)}/ns/[^/]+/svc/[^/]+` } },
    },
  };
}

/** As the authorizer's canonicalConfigPath: a path without a plain canonical form is kept as written. */
function canonicalConfigPath(raw: string): string {
  const c = canonicalPath(raw);
  return c.ok && c.query === "" && !raw.includes("#") ? c.path : raw;
}

function and(rules: RbacPermission[]): RbacPermission {
  if (rules.length === 0) return ANY;
  if (rules.length === 1) return rules[0] as RbacPermission;
  return { and_rules: { rules } };
}

/** One HTTP match as a Permission: every given condition must hold (none given: any request). */
export function httpMatchPermission(m: SnapshotHttpMatch): RbacPermission {
  const rules: RbacPermission[] = [];
  if (m.pathExact !== undefined)
    rules.push({ url_path: { path: { exact: canonicalConfigPath(m.pathExact) } } });
  if (m.pathPrefix !== undefined) {
    rules.push({ url_path: { path: { prefix: canonicalConfigPath(m.pathPrefix) } } });
  }
  if (m.pathRegex !== undefined)
    rules.push({ url_path: { path: { safe_regex: { regex: `(?:${m.pathRegex})` } } } });
  if (m.methods !== undefined) {
    const methods = [...new Set(m.methods.map((x) => x.toUpperCase()))];
    const one = (x: string): RbacPermission => ({ header: { name: ":method", string_match: { exact: x } } });
    // No methods at all matches no request, as an empty set does in the authorizer.
    rules.push(methods.length === 1 ? one(methods[0] as string) : { or_rules: { rules: methods.map(one) } });
  }
  for (const h of m.headers ?? []) {
    const header: Record<string, unknown> = { name: h.name.toLowerCase() };
    if (h.exact !== undefined) header.string_match = { exact: h.exact };
    else if (h.prefix !== undefined) header.string_match = { prefix: h.prefix };
    else if (h.suffix !== undefined) header.string_match = { suffix: h.suffix };
    else if (h.regex !== undefined) header.string_match = { safe_regex: { regex: `(?:${h.regex})` } };
    else header.present_match = true;
    if (h.invert) header.invert_match = true;
    rules.push({ header });
  }
  return and(rules);
}

/** The requests a source's rules allow, or undefined when they allow none. */
function allowedRequests(src: AuthzSource): RbacPermission | undefined {
  if (src.permissions === undefined) return src.action === "allow" ? ANY : undefined;
  const earlierDenies: RbacPermission[] = [];
  const allows: RbacPermission[] = [];
  for (const p of src.permissions as AuthzPermission[]) {
    const match = httpMatchPermission(p.http);
    // First match wins: an allow counts only where no earlier deny matched
    // (an earlier allow would have allowed anyway).
    const own = "and_rules" in match ? match.and_rules.rules : [match];
    if (p.action === "allow") allows.push(and([...earlierDenies.map((d) => ({ not_rule: d })), ...own]));
    else earlierDenies.push(match);
  }
  if (allows.length === 0) return undefined;
  return allows.length === 1 ? allows[0] : { or_rules: { rules: allows } };
}

/** Policy names: `source:NAME`, `source:*`, `default`. */
export function compileRbac(authz: InboundAuthz, o: RbacOptions): RbacRules {
  const policies: Record<string, RbacPolicy> = {};
  const named = new Map<string, AuthzSource>();
  let wildcard: AuthzSource | undefined;
  for (const s of authz.sources) {
    if (s.name === "*") wildcard ??= s;
    else if (!named.has(s.name)) named.set(s.name, s);
  }
  const namedPrincipals = [...named.keys()].map((n) => sourcePrincipal(o.trustDomain, n));
  if (o.mtls) {
    for (const [name, src] of named) {
      const allowed = allowedRequests(src);
      if (allowed) {
        policies[`source:${name}`] = {
          permissions: [allowed],
          principals: [sourcePrincipal(o.trustDomain, name)],
        };
      }
    }
  }
  // Everyone no named source matches (with mTLS: still a mesh workload).
  const others: RbacPrincipal[] = [];
  if (o.mtls) others.push(meshPrincipal(o.trustDomain));
  if (o.mtls && namedPrincipals.length > 0) {
    others.push({
      not_id:
        namedPrincipals.length === 1
          ? (namedPrincipals[0] as RbacPrincipal)
          : { or_ids: { ids: namedPrincipals } },
    });
  }
  const othersPrincipal: RbacPrincipal =
    others.length === 0
      ? ANY
      : others.length === 1
        ? (others[0] as RbacPrincipal)
        : { and_ids: { ids: others } };
  const rest =
    wildcard ?? (authz.defaultAction === "allow" ? { name: "", action: "allow" as const } : undefined);
  const allowed = rest ? allowedRequests(rest) : undefined;
  if (allowed)
    policies[wildcard ? "source:*" : "default"] = { permissions: [allowed], principals: [othersPrincipal] };
  return { action: "ALLOW", policies };
}

/** The HTTP filter entry for an HttpConnectionManager (never optional: see the file comment). */
export function rbacHttpFilter(authz: InboundAuthz, o: RbacOptions): XdsResource {
  return {
    name: RBAC_FILTER_NAME,
    typed_config: { "@type": RBAC_TYPE, rules: compileRbac(authz, o) },
  } as unknown as XdsResource;
}
