/**
 * A listener's routes matched by host and path, first match wins (declared
 * order, as the Gateway lists them). Hosts: "*", an exact name, or
 * "*.example.com" (one or more labels in front). The path is matched in its
 * canonical form (`canonicalPath`, the same form the destination's
 * authorizer checks and the gateway forwards), without the query.
 */

export interface HostPathMatch {
  host: string;
  pathExact?: string | undefined;
  pathPrefix?: string | undefined;
  pathRegex?: string | undefined;
}

export interface CompiledMatch<R> {
  route: R;
  index: number;
  matches(host: string, path: string): boolean;
}

/** The host of an authority, lowercased, without port or trailing dot. */
export function hostOf(authority: string | undefined): string {
  if (authority === undefined) return "";
  let h = authority.toLowerCase();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    return end > 0 ? h.slice(0, end + 1) : h;
  }
  const colon = h.lastIndexOf(":");
  if (colon >= 0) h = h.slice(0, colon);
  return h.endsWith(".") ? h.slice(0, -1) : h;
}

export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === "*") return true;
  if (pattern.startsWith("*.")) return host.length > pattern.length - 1 && host.endsWith(pattern.slice(1));
  return pattern === host;
}

function pathMatcher(m: HostPathMatch): (path: string) => boolean {
  if (m.pathExact !== undefined) {
    const exact = m.pathExact;
    return (p) => p === exact;
  }
  if (m.pathPrefix !== undefined) {
    const prefix = m.pathPrefix;
    return (p) => p.startsWith(prefix);
  }
  if (m.pathRegex !== undefined) {
    // Checked for cost when the Gateway was written (safe-regex).
    const re = new RegExp(`^(?:${m.pathRegex})$`);
    return (p) => re.test(p);
  }
  return () => true;
}

export function compileMatches<R extends HostPathMatch>(routes: readonly R[]): CompiledMatch<R>[] {
  return routes.map((route, index) => {
    const host = route.host.toLowerCase();
    const path = pathMatcher(route);
    return { route, index, matches: (h, p) => hostMatches(host, h) && path(p) };
  });
}

export function firstMatch<R>(
  table: readonly CompiledMatch<R>[],
  host: string,
  path: string,
): CompiledMatch<R> | undefined {
  for (const m of table) if (m.matches(host, path)) return m;
  return undefined;
}
