/**
 * A small router: method + path pattern (`/v1/catalog/instances/:id`).
 *
 * Paths are matched segment by segment on the raw path, each segment
 * percent-decoded once; there is no normalisation: `//x`, `/x/`, `..` and
 * `%2F` never match a literal route, and a decoded parameter is validated by
 * its handler before it reaches the store. So what is authorized is exactly
 * what is served (HARDENING: bypass by normalisation).
 */
import { weftError } from "@weft/core";

export type Params = Record<string, string>;

interface Route<H> {
  method: string;
  pattern: string;
  segments: readonly string[];
  literals: number;
  handler: H;
}

export type Match<H> = { handler: H; params: Params; pattern: string };

export class Router<H> {
  private readonly routes: Route<H>[] = [];

  add(method: string, pattern: string, handler: H): this {
    const segments = pattern.split("/").slice(1);
    this.routes.push({
      method,
      pattern,
      segments,
      literals: segments.filter((s) => !s.startsWith(":")).length,
      handler,
    });
    // More literal segments first: "/v1/config/apply" wins over "/v1/config/:kind".
    this.routes.sort((a, b) => b.literals - a.literals);
    return this;
  }

  /** The route for `method` + `path` (path without the query). Throws 400/404/405 as catalogued. */
  match(method: string, path: string): Match<H> {
    if (!path.startsWith("/"))
      throw weftError("WEFT_ERR_BAD_PATH", { detail: "request path must start with /" });
    const raw = path.split("/").slice(1);
    let decoded: string[];
    try {
      decoded = raw.map((s) => decodeURIComponent(s));
    } catch {
      throw weftError("WEFT_ERR_BAD_PATH", { detail: "malformed percent-encoding in path" });
    }
    const allowed = new Set<string>();
    for (const r of this.routes) {
      const params = matchSegments(r.segments, raw, decoded);
      if (!params) continue;
      if (r.method === method || (method === "HEAD" && r.method === "GET")) {
        return { handler: r.handler, params, pattern: r.pattern };
      }
      allowed.add(r.method);
    }
    const shown = path.length > 200 ? `${path.slice(0, 200)}...` : path;
    if (allowed.size > 0) {
      throw weftError("WEFT_ERR_METHOD_NOT_ALLOWED", {
        method,
        path: shown,
        allowed: [...allowed].sort().join(", "),
      });
    }
    throw weftError("WEFT_ERR_ROUTE_NOT_FOUND", { method, path: shown });
  }
}

function matchSegments(
  pattern: readonly string[],
  raw: readonly string[],
  decoded: readonly string[],
): Params | undefined {
  if (pattern.length !== raw.length) return undefined;
  const params: Params = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i] as string;
    const r = raw[i] as string;
    if (r.length === 0) return undefined;
    if (p.startsWith(":")) params[p.slice(1)] = decoded[i] as string;
    else if (p !== r) return undefined;
  }
  return params;
}
