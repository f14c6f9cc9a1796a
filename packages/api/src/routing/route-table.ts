/**
 * The compiled routes of one upstream listener: the first route whose match
 * holds decides (Consul's service router, Envoy's route table). Shared by
 * the sidecar, which routes with it, and `weft explain`, which reports with
 * it, so an explanation cannot drift from what the proxy does.
 *
 * A request is matched on its canonical path (the form authorization uses,
 * `@weft/api/authz` canonicalPath), its method, headers and query
 * parameters. Path, method and header matches compile through
 * `compileHttpMatch`, exactly as intention permissions do. Query parameters
 * are decoded as URLSearchParams does (`+` is a space, escapes decoded); a
 * parameter given several times matches when any of its values does.
 *
 * Compiled once per snapshot; a request allocates nothing unless a route
 * has query matches (the query is parsed once, lazily, for all of them).
 */
import { compileHttpMatch, type HttpRequestFacts } from "../authz/authorizer.js";
import { fullMatchRegex } from "../authz/header-match.js";
import type { HttpRouteConfig, SnapshotQueryMatch } from "../snapshot.js";

export interface RouteRequest extends HttpRequestFacts {
  /** The raw query with its leading "?", or "" (canonicalPath(...).query). */
  query: string;
}

export interface MatchedRoute {
  /** Position in the listener's routes, for explanations and logs. */
  readonly index: number;
  readonly route: HttpRouteConfig;
  /** `route[1] "canary" (pathPrefix /api, header x-canary exact "1")`. */
  readonly description: string;
}

export interface RouteTable {
  readonly size: number;
  /** The first matching route, or undefined: the listener's default cluster takes the request. */
  match(req: RouteRequest): MatchedRoute | undefined;
  /** Every route with whether it matched, in order, up to and including the first match (for explanations). */
  trace(req: RouteRequest): { route: MatchedRoute; matched: boolean }[];
}

type QueryParams = URLSearchParams | undefined;

interface CompiledRoute {
  readonly matched: MatchedRoute;
  readonly test: (req: RouteRequest, query: () => URLSearchParams) => boolean;
}

function compileQueryMatch(q: SnapshotQueryMatch): {
  test: (p: URLSearchParams) => boolean;
  description: string;
} {
  if (q.present) return { test: (p) => p.has(q.name), description: `query ${q.name} present` };
  if (q.regex !== undefined) {
    const re = fullMatchRegex(q.regex);
    return {
      test: (p) => p.getAll(q.name).some((v) => re.test(v)),
      description: `query ${q.name} regex ${JSON.stringify(q.regex)}`,
    };
  }
  const want = q.exact ?? "";
  return {
    test: (p) => p.getAll(q.name).includes(want),
    description: `query ${q.name} exact ${JSON.stringify(want)}`,
  };
}

function compileRoute(route: HttpRouteConfig, index: number): CompiledRoute {
  const http = compileHttpMatch(route.match);
  const queries = (route.match.query ?? []).map(compileQueryMatch);
  const parts = [http.description === "any request" && queries.length > 0 ? "" : http.description];
  for (const q of queries) parts.push(q.description);
  const label = route.name !== undefined ? `route[${index}] "${route.name}"` : `route[${index}]`;
  const matched: MatchedRoute = Object.freeze({
    index,
    route,
    description: `${label} (${parts.filter((p) => p !== "").join(", ")})`,
  });
  if (queries.length === 0) return { matched, test: (req) => http.test(req) };
  return {
    matched,
    test: (req, query) => {
      if (!http.test(req)) return false;
      const params = query();
      for (const q of queries) if (!q.test(params)) return false;
      return true;
    },
  };
}

const NO_ROUTES: RouteTable = Object.freeze({
  size: 0,
  match: () => undefined,
  trace: () => [],
});

export function compileRouteTable(routes: readonly HttpRouteConfig[] | undefined): RouteTable {
  if (routes === undefined || routes.length === 0) return NO_ROUTES;
  const compiled = Object.freeze(routes.map(compileRoute));
  const lazyQuery = (req: RouteRequest): (() => URLSearchParams) => {
    let parsed: QueryParams;
    return () => {
      parsed ??= new URLSearchParams(req.query);
      return parsed;
    };
  };
  return Object.freeze({
    size: compiled.length,
    match(req: RouteRequest): MatchedRoute | undefined {
      const query = lazyQuery(req);
      for (const r of compiled) if (r.test(req, query)) return r.matched;
      return undefined;
    },
    trace(req: RouteRequest) {
      const query = lazyQuery(req);
      const out: { route: MatchedRoute; matched: boolean }[] = [];
      for (const r of compiled) {
        const matched = r.test(req, query);
        out.push({ route: r.matched, matched });
        if (matched) break;
      }
      return out;
    },
  });
}
