/**
 * CORS at the gateway (Envoy's cors filter): preflights are answered here
 * and never reach the service; an actual cross-origin request from an
 * allowed origin is forwarded and its response gets the
 * `access-control-allow-*` fields. A request from an origin not allowed is
 * forwarded without them (the browser then blocks it); a preflight from one
 * is answered 403.
 */
import type { HeaderMap } from "@weft/dataplane";

export interface CorsSpec {
  allowOrigins: readonly string[];
  allowOriginRegex?: readonly string[] | undefined;
  allowMethods: readonly string[];
  allowHeaders: readonly string[];
  exposeHeaders: readonly string[];
  maxAge?: number | undefined;
  allowCredentials: boolean;
}

export type CorsDecision =
  /** Not a CORS request, or nothing to add. */
  | { kind: "none" }
  /** A preflight, answered by the gateway. */
  | { kind: "preflight"; status: number; headers: HeaderMap }
  /** An actual request from an allowed origin: these response fields are set. */
  | { kind: "actual"; responseHeaders: Record<string, string> };

const NONE: CorsDecision = Object.freeze({ kind: "none" });

export class CorsPolicy {
  private readonly regexes: RegExp[];
  private readonly anyOrigin: boolean;

  constructor(private readonly spec: CorsSpec) {
    // Patterns were checked for cost when the Gateway was written (safe-regex); full match here.
    this.regexes = (spec.allowOriginRegex ?? []).map((p) => new RegExp(`^(?:${p})$`));
    this.anyOrigin = spec.allowOrigins.includes("*");
  }

  private allowed(origin: string): boolean {
    return (
      this.anyOrigin || this.spec.allowOrigins.includes(origin) || this.regexes.some((r) => r.test(origin))
    );
  }

  private originFields(origin: string): Record<string, string> {
    const out: Record<string, string> = {
      "access-control-allow-origin": this.anyOrigin && !this.spec.allowCredentials ? "*" : origin,
      vary: "origin",
    };
    if (this.spec.allowCredentials) out["access-control-allow-credentials"] = "true";
    return out;
  }

  decide(
    method: string,
    origin: string | undefined,
    requestMethod: string | undefined,
    requestHeaders: string | undefined,
  ): CorsDecision {
    if (origin === undefined) return NONE;
    const ok = this.allowed(origin);
    if (method === "OPTIONS" && requestMethod !== undefined) {
      if (!ok) return { kind: "preflight", status: 403, headers: { "content-length": "0", vary: "origin" } };
      const m = requestMethod.toUpperCase();
      const headers: HeaderMap = { ...this.originFields(origin), "content-length": "0" };
      if (!this.spec.allowMethods.includes(m)) return { kind: "preflight", status: 403, headers };
      // Every asked header must be allowed (names compared case-insensitively).
      const asked = (requestHeaders ?? "")
        .split(",")
        .map((h) => h.trim().toLowerCase())
        .filter((h) => h !== "");
      const allowedHeaders = this.spec.allowHeaders.map((h) => h.toLowerCase());
      if (asked.some((h) => !allowedHeaders.includes(h))) return { kind: "preflight", status: 403, headers };
      headers["access-control-allow-methods"] = this.spec.allowMethods.join(", ");
      if (allowedHeaders.length > 0) headers["access-control-allow-headers"] = allowedHeaders.join(", ");
      if (this.spec.maxAge !== undefined)
        headers["access-control-max-age"] = String(Math.floor(this.spec.maxAge / 1000));
      return { kind: "preflight", status: 204, headers };
    }
    if (!ok) return NONE;
    const fields = this.originFields(origin);
    if (this.spec.exposeHeaders.length > 0)
      fields["access-control-expose-headers"] = this.spec.exposeHeaders.join(", ");
    return { kind: "actual", responseHeaders: fields };
  }
}
