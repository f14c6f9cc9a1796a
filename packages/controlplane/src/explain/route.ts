/**
 * The route part of an explanation: the destination's routes tried as the
 * calling sidecar tries them (dataplane/src/proxy/listener-routes.ts), with
 * the same `@weft/api/routing` functions — route table, path rewrite,
 * redirect Location — so what explain says cannot drift from what the
 * sidecar does.
 */
import type {
  canonicalPath,
  ExplainRequest,
  ExplainRoute,
  ExplainRouteAction,
  ExplainRouteTried,
  HttpRouteConfig,
  SplitTarget,
  UpstreamListener,
} from "@weft/api";
import { compileRouteTable, type MatchedRoute, redirectLocation, rewritePath } from "@weft/api/routing";

/** Where the request goes: the clusters that may take it, or a reply by the calling sidecar. */
export interface RouteOutcome {
  /** Null when the listener has no routes. */
  route: ExplainRoute | null;
  /** The cluster (and split) the request goes to; undefined when the calling sidecar answers itself. */
  target: { cluster: string; splits: readonly SplitTarget[] | undefined } | undefined;
}

function tried(m: MatchedRoute, matched: boolean): ExplainRouteTried {
  return { index: m.index, name: m.route.name ?? null, description: m.description, matched };
}

function weights(splits: readonly SplitTarget[] | undefined): { cluster: string; weight: number }[] | null {
  return splits !== undefined && splits.length > 0
    ? splits.map((t) => ({ cluster: t.cluster, weight: t.weight }))
    : null;
}

/**
 * The action of a matched route. `authority` is what the sidecar uses for a
 * redirect's own parts: the request's Host, else the listener's service.
 */
function action(
  r: HttpRouteConfig,
  m: MatchedRoute,
  path: string,
  query: string,
  authority: string,
): ExplainRouteAction {
  if (r.redirect !== undefined) {
    return {
      kind: "redirect",
      status: r.redirect.statusCode,
      location: redirectLocation(r.redirect, m.route.match, { scheme: "http", authority, path, query }),
    };
  }
  if (r.forward === undefined) return { kind: "directResponse", status: r.directResponse?.status ?? 200 };
  const f = r.forward;
  return {
    kind: "forward",
    cluster: f.cluster,
    splits: weights(f.splits),
    path: f.prefixRewrite !== undefined ? rewritePath(m.route.match, f.prefixRewrite, path) + query : null,
    hostRewrite: f.hostRewrite ?? null,
    timeoutMs: f.timeoutMs ?? null,
    idleTimeoutMs: f.idleTimeoutMs ?? null,
    retries: f.retries ?? null,
    fault: f.fault ?? null,
    mirror: f.mirror ?? null,
    requestHeaders: f.requestHeaders ?? null,
    responseHeaders: f.responseHeaders ?? null,
  };
}

/** Routes `req` (path already canonicalized by the caller) through the listener's routes. */
export function explainRoute(
  listener: UpstreamListener,
  req: ExplainRequest,
  c: ReturnType<typeof canonicalPath>,
): RouteOutcome {
  const byDefault = { cluster: listener.cluster, splits: listener.splits };
  const table = compileRouteTable(listener.routes);
  if (table.size === 0) return { route: null, target: byDefault };
  // The sidecar refuses a path it cannot canonicalize (400) before any route is tried.
  if (!c.ok) return { route: { count: table.size, tried: [], taken: null }, target: undefined };
  const trace = table.trace({
    method: req.method,
    path: c.path,
    query: c.query,
    headers: (name) => req.headers[name],
  });
  const route: ExplainRoute = {
    count: table.size,
    tried: trace.map((t) => tried(t.route, t.matched)),
    taken: null,
  };
  const hit = trace.find((t) => t.matched)?.route;
  if (hit === undefined) return { route, target: byDefault };
  const authority = req.headers.host ?? listener.service;
  const a = action(hit.route, hit, c.path, c.query, authority);
  route.taken = { ...tried(hit, true), action: a };
  const f = hit.route.forward;
  return { route, target: f ? { cluster: f.cluster, splits: f.splits } : undefined };
}
