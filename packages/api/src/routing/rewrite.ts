/**
 * Path rewrites and redirect targets, pure functions of the matched route
 * and the request (Envoy's prefix_rewrite and redirect action).
 */
import type { RedirectConfig, RouteMatch } from "../snapshot.js";

/**
 * The path forwarded after a prefix rewrite: the matched prefix replaced
 * (for a pathPrefix match), else the whole path. The query is kept as is.
 * A rewrite never yields "//x": a prefix "/" rewritten to "/v2/" on "/a"
 * gives "/v2/a".
 */
export function rewritePath(match: RouteMatch, rewrite: string, path: string): string {
  if (match.pathPrefix === undefined || !path.startsWith(match.pathPrefix)) return rewrite;
  const rest = path.slice(match.pathPrefix.length);
  if (rewrite.endsWith("/") && rest.startsWith("/")) return rewrite + rest.slice(1);
  return rewrite + rest;
}

export interface RedirectRequest {
  scheme: "http" | "https";
  /** The request's authority (Host), possibly with a port. */
  authority: string;
  path: string;
  /** The raw query with "?", or "". */
  query: string;
}

function splitAuthority(authority: string): { host: string; port: string | undefined } {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(authority);
  return m ? { host: m[1] ?? authority, port: m[2] } : { host: authority, port: undefined };
}

/** The Location of a redirect: the request's parts, each replaced where the redirect says. */
export function redirectLocation(r: RedirectConfig, match: RouteMatch, req: RedirectRequest): string {
  const scheme = r.scheme ?? req.scheme;
  const own = splitAuthority(req.authority);
  const host = r.host ?? own.host;
  // The request's port belonged to its host and scheme: a new host or scheme drops it unless one is set.
  const keepPort = r.host === undefined && (r.scheme === undefined || r.scheme === req.scheme);
  let port = r.port !== undefined ? String(r.port) : keepPort ? own.port : undefined;
  if ((scheme === "http" && port === "80") || (scheme === "https" && port === "443")) port = undefined;
  let path = req.path;
  if (r.path !== undefined) path = r.path;
  else if (r.prefixRewrite !== undefined) path = rewritePath(match, r.prefixRewrite, req.path);
  return `${scheme}://${host}${port !== undefined ? `:${port}` : ""}${path}${req.query}`;
}
