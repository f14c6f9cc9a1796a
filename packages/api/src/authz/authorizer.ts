import type { AuthzPermission, AuthzSource, InboundAuthz, SnapshotHttpMatch } from "../snapshot.js";
import { canonicalPath } from "./canonical-path.js";
import {
  type CompiledHeaderMatch,
  compileHeaderMatch,
  fullMatchRegex,
  type HeaderLookup,
} from "./header-match.js";

/**
 * The sidecar's inbound authorization: the destination's Intention, compiled
 * once per snapshot into an immutable Authorizer (api/resources/intention.ts
 * has the resource semantics; this is its enforcement).
 *
 * Lookup, as Consul ranks precedence: the source's exact name, else the "*"
 * source, else the mesh's default policy. A source is either
 * - an `action`: allow or deny everything, connections and requests alike;
 * - ordered L7 `permissions`: the first whose HTTP match holds decides; no
 *   match denies. On a TCP listener such a source is denied outright: L7
 *   rules cannot be enforced on raw bytes, and letting the connection through
 *   would grant more than the rules say (Consul does the same).
 *
 * HTTP matches (all given conditions must hold; none given matches all):
 * - the path is the canonical path (canonical-path.ts), without the query;
 *   config paths for pathExact/pathPrefix are put in the same canonical form
 *   when compiled, so `/a/%7Eb` in config matches a request for `/a/~b`;
 * - pathExact: equality; pathPrefix: a plain string prefix, as Consul and
 *   Envoy do: `/admin` also matches `/administrator` and `/admin;x`. Write
 *   `/admin/` for a segment-bounded allow; for a deny, prefer `/admin`, which
 *   is broader (see canonical-path.ts on matrix parameters);
 * - pathRegex: a full match (`^(?:pattern)$`), flag "u";
 * - methods: the request method, compared in upper case;
 * - headers: see header-match.ts (invert, absent headers).
 *
 * Hot path: a decision is a frozen object built at compile time; a request
 * allocates nothing unless it is denied for matching no permission (the
 * reason names its method and path) or falls to the default policy (the
 * reason names the source).
 */

export type AuthzCode =
  | "intention-allow"
  | "intention-deny"
  | "permission-allow"
  | "permission-deny"
  | "no-permission-matched"
  | "default-allow"
  | "default-deny";

export interface AuthzDecision {
  readonly allow: boolean;
  /**
   * Human explanation naming the rule, e.g. `intention "api": source "web"
   * allows`, `intention "api": source "admin" permission[1] (pathPrefix
   * /admin, methods GET) denies`. Used in the 403 body and logs.
   */
  readonly reason: string;
  /** Machine code for metrics. */
  readonly code: AuthzCode;
}

export interface HttpRequestFacts {
  method: string;
  /** The canonical path (canonicalPath(...).path), without the query. */
  path: string;
  /** Lowercase name; multiple values joined with ",". */
  headers: HeaderLookup;
}

/** A connection-level verdict, or "per-request" when the source's rules are L7 permissions. */
export type L4Decision = AuthzDecision | "per-request";

/** Immutable; safe to share between connections; must not block. */
export interface Authorizer {
  readonly destService: string;
  /**
   * Connection-level decision for an HTTP listener: lets the listener decide
   * once per connection when the source is wholly allowed or denied, and
   * call `http` per request otherwise. A TCP listener must use `tcp`.
   */
  l4(sourceService: string): L4Decision;
  /** Decision for a raw TCP connection: a source with L7 permissions is denied (they cannot be checked). */
  tcp(sourceService: string): AuthzDecision;
  /** Decision for one HTTP request (complete on its own; `l4` is only a shortcut). */
  http(sourceService: string, req: HttpRequestFacts): AuthzDecision;
}

/** Longest part of a request path quoted in a reason (it ends up in logs and 403 bodies). */
const MAX_QUOTED_PATH = 256;
const MAX_QUOTED_METHOD = 32;

type RequestTest = (req: HttpRequestFacts) => boolean;

interface CompiledPermission {
  readonly decision: AuthzDecision;
  readonly test: RequestTest;
}

type CompiledSource =
  | { readonly kind: "action"; readonly decision: AuthzDecision }
  | {
      readonly kind: "permissions";
      readonly permissions: readonly CompiledPermission[];
      /** `intention "api": source "web": no permission matches` (method and path appended per request). */
      readonly noMatch: string;
      readonly tcp: AuthzDecision;
    };

function decision(allow: boolean, code: AuthzCode, reason: string): AuthzDecision {
  return Object.freeze({ allow, code, reason });
}

/**
 * Compiles the inbound authorization of `destService`. Expects an `authz`
 * that passed checkSnapshot; throws a SyntaxError on a regex that does not
 * compile (the caller then keeps its last good Authorizer). Duplicate source
 * names (the resource schema refuses them): the first one counts.
 */
export function compileAuthz(destService: string, authz: InboundAuthz): Authorizer {
  const sources = new Map<string, CompiledSource>();
  for (const src of authz.sources) {
    if (!sources.has(src.name)) sources.set(src.name, compileSource(destService, src));
  }
  const wildcard = sources.get("*");
  const defaultAllow = authz.defaultAction === "allow";
  const defaultCode: AuthzCode = defaultAllow ? "default-allow" : "default-deny";
  const q = JSON.stringify;
  const defaultReason = authz.intention
    ? (source: string) =>
        `intention ${q(destService)} names neither ${q(source)} nor "*" (default policy ${authz.defaultAction})`
    : defaultAllow
      ? (source: string) =>
          `no intention denies ${q(source)} calling ${q(destService)} (default policy allow)`
      : (source: string) =>
          `no intention allows ${q(source)} to call ${q(destService)} (default policy deny)`;

  const lookup = (source: string): CompiledSource | undefined => sources.get(source) ?? wildcard;
  const byDefault = (source: string): AuthzDecision =>
    decision(defaultAllow, defaultCode, defaultReason(source));

  const authorizer: Authorizer = {
    destService,
    l4(sourceService) {
      const s = lookup(sourceService);
      if (s === undefined) return byDefault(sourceService);
      return s.kind === "action" ? s.decision : "per-request";
    },
    tcp(sourceService) {
      const s = lookup(sourceService);
      if (s === undefined) return byDefault(sourceService);
      return s.kind === "action" ? s.decision : s.tcp;
    },
    http(sourceService, req) {
      const s = lookup(sourceService);
      if (s === undefined) return byDefault(sourceService);
      if (s.kind === "action") return s.decision;
      for (const p of s.permissions) {
        if (p.test(req)) return p.decision;
      }
      return decision(
        false,
        "no-permission-matched",
        `${s.noMatch} ${clip(req.method, MAX_QUOTED_METHOD)} ${clip(req.path, MAX_QUOTED_PATH)}`,
      );
    },
  };
  return Object.freeze(authorizer);
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}...`;
}

function compileSource(dest: string, src: AuthzSource): CompiledSource {
  const who = `intention ${JSON.stringify(dest)}: source ${JSON.stringify(src.name)}`;
  if (src.permissions === undefined) {
    // The snapshot check guarantees exactly one of action/permissions; a
    // source with neither is treated as a deny rather than trusted.
    const allow = src.action === "allow";
    return Object.freeze({
      kind: "action",
      decision: decision(
        allow,
        allow ? "intention-allow" : "intention-deny",
        `${who} ${allow ? "allows" : "denies"}`,
      ),
    });
  }
  const permissions = src.permissions.map((p, i) => compilePermission(who, p, i));
  return Object.freeze({
    kind: "permissions",
    permissions: Object.freeze(permissions),
    noMatch: `${who}: no permission matches`,
    tcp: decision(
      false,
      "no-permission-matched",
      `${who} has only L7 (HTTP) permissions, which a TCP connection cannot meet: denied`,
    ),
  });
}

function compilePermission(who: string, p: AuthzPermission, index: number): CompiledPermission {
  const { test, description } = compileHttpMatch(p.http);
  const allow = p.action === "allow";
  return Object.freeze({
    test,
    decision: decision(
      allow,
      allow ? "permission-allow" : "permission-deny",
      `${who} permission[${index}] (${description}) ${allow ? "allows" : "denies"}`,
    ),
  });
}

/**
 * A config path in the canonical form requests are compared in. A path that
 * has no plain canonical form (it holds "?", "#", "%2F", climbs above the
 * root...) is kept as written: no canonical request path equals it, and as a
 * prefix it keeps plain string semantics on what was written.
 */
function canonicalConfigPath(raw: string): string {
  const c = canonicalPath(raw);
  return c.ok && c.query === "" && !raw.includes("#") ? c.path : raw;
}

/**
 * One HTTP match as a test and a description (`pathPrefix /admin, methods
 * GET`). Exported for explanations (`weft explain` lists each permission it
 * tried); the authorizer compiles through the same function, so the two
 * cannot disagree.
 */
export function compileHttpMatch(m: SnapshotHttpMatch): {
  test: (req: HttpRequestFacts) => boolean;
  description: string;
} {
  const tests: RequestTest[] = [];
  const parts: string[] = [];
  if (m.pathExact !== undefined) {
    const want = canonicalConfigPath(m.pathExact);
    parts.push(`pathExact ${m.pathExact}`);
    tests.push((r) => r.path === want);
  }
  if (m.pathPrefix !== undefined) {
    const want = canonicalConfigPath(m.pathPrefix);
    parts.push(`pathPrefix ${m.pathPrefix}`);
    tests.push((r) => r.path.startsWith(want));
  }
  if (m.pathRegex !== undefined) {
    const re = fullMatchRegex(m.pathRegex);
    parts.push(`pathRegex ${m.pathRegex}`);
    tests.push((r) => re.test(r.path));
  }
  if (m.methods !== undefined) {
    const methods = new Set(m.methods.map((x) => x.toUpperCase()));
    parts.push(`methods ${[...methods].join(",")}`);
    tests.push((r) => methods.has(r.method) || methods.has(r.method.toUpperCase()));
  }
  const headers: CompiledHeaderMatch[] = (m.headers ?? []).map(compileHeaderMatch);
  for (const h of headers) {
    parts.push(h.description);
    tests.push((r) => h.test(r.headers));
  }
  const description = parts.length === 0 ? "any request" : parts.join(", ");
  // Specialise the common shapes so a request runs no loop for one condition.
  const [first, second] = tests;
  if (first === undefined) return { test: () => true, description };
  if (second === undefined) return { test: first, description };
  const all = Object.freeze(tests);
  return {
    description,
    test: (r) => {
      for (const t of all) if (!t(r)) return false;
      return true;
    },
  };
}
