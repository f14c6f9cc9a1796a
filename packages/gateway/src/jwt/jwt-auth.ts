/**
 * JWT authentication of one request against a listener's or route's
 * requirement (Gateway `jwt: {providers, optional}`): the bearer token must
 * verify under one of the named providers — signature by a key of its
 * JWKS with an algorithm on its allowlist, `iss` equal to its issuer, `aud`
 * naming one of its audiences, `exp`/`nbf` within the clock skew. The
 * outcome is a union; a refusal carries the `www-authenticate` value
 * (RFC 6750) and is always a 401, never a 500.
 */
import type { Clock } from "@weft/core";
import type { JwksKeySet } from "./jwks.js";
import { decodeJws, isJwsAlgorithm, type JwsAlgorithm, verifySignature } from "./jws.js";

export interface JwtProviderRuntime {
  name: string;
  issuer: string;
  audiences: readonly string[];
  algorithms: readonly JwsAlgorithm[];
  clockSkewMs: number;
  claimToHeaders: readonly { claim: string; header: string }[];
  forwardToken: boolean;
  keys: JwksKeySet;
}

export type JwtOutcome =
  /** No token and the requirement is optional: forwarded without claims. */
  | { ok: true; provider: undefined; claims: undefined }
  | { ok: true; provider: JwtProviderRuntime; claims: Record<string, unknown> }
  | { ok: false; reason: string; wwwAuthenticate: string };

const REALM = 'Bearer realm="weft"';

function refuse(reason: string, withError = true): JwtOutcome {
  // The description is ours (fixed strings and names from config), never token content.
  return {
    ok: false,
    reason,
    wwwAuthenticate: withError ? `${REALM}, error="invalid_token", error_description="${reason}"` : REALM,
  };
}

/** The token of an `Authorization: Bearer` header; undefined when there is none, null when malformed. */
export function bearerToken(authorization: string | undefined): string | undefined | null {
  if (authorization === undefined) return undefined;
  const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(authorization);
  return m ? (m[1] as string) : null;
}

function audienceOk(aud: unknown, audiences: readonly string[]): boolean {
  if (typeof aud === "string") return audiences.includes(aud);
  if (Array.isArray(aud)) return aud.some((a) => typeof a === "string" && audiences.includes(a));
  return false;
}

/** Verifies `token` under one provider. */
export function verifyJwt(token: string, p: JwtProviderRuntime, nowMs: number): JwtOutcome {
  const d = decodeJws(token);
  if (!d.ok) return refuse(d.reason);
  const { header, payload } = d.jws;
  const alg = header.alg;
  if (!isJwsAlgorithm(alg) || !p.algorithms.includes(alg)) return refuse("algorithm not allowed");
  const kid = header.kid;
  if (kid !== undefined && typeof kid !== "string") return refuse("malformed token");
  const keys = p.keys.candidates(kid);
  if (keys.length === 0) return refuse(kid === undefined ? "no signing keys" : "unknown key id");
  if (!keys.some((k) => verifySignature(d.jws, alg, k))) return refuse("invalid signature");
  if (payload.iss !== p.issuer) return refuse("wrong issuer");
  if (!audienceOk(payload.aud, p.audiences)) return refuse("wrong audience");
  const now = nowMs / 1000;
  const skew = p.clockSkewMs / 1000;
  const exp = payload.exp;
  // A token without an expiry never stops working: refused.
  if (typeof exp !== "number" || !Number.isFinite(exp)) return refuse("no expiry");
  if (now > exp + skew) return refuse("token expired");
  const nbf = payload.nbf;
  if (nbf !== undefined && (typeof nbf !== "number" || now + skew < nbf))
    return refuse("token not yet valid");
  return { ok: true, provider: p, claims: payload };
}

export interface JwtRequirementRuntime {
  providers: readonly JwtProviderRuntime[];
  optional: boolean;
}

/** Authenticates a request's Authorization header against a requirement: the first provider that accepts wins. */
export function authenticate(
  req: JwtRequirementRuntime,
  authorization: string | undefined,
  clock: Clock,
): JwtOutcome {
  const token = bearerToken(authorization);
  if (token === undefined) {
    return req.optional
      ? { ok: true, provider: undefined, claims: undefined }
      : refuse("missing token", false);
  }
  if (token === null) return refuse("malformed authorization header");
  let first: JwtOutcome | undefined;
  const now = clock.now();
  for (const p of req.providers) {
    const r = verifyJwt(token, p, now);
    if (r.ok) return r;
    first ??= r;
  }
  return first ?? refuse("no provider");
}

/** The header value of a claim: strings as they are, numbers and booleans as text, others as JSON; undefined when absent. */
export function claimValue(claims: Record<string, unknown>, claim: string): string | undefined {
  // Nested claims by dots ("realm.role"), as the claimToHeaders names them.
  let v: unknown = claims;
  for (const part of claim.split(".")) {
    if (typeof v !== "object" || v === null || !Object.hasOwn(v, part)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  if (v === undefined || v === null) return undefined;
  const text =
    typeof v === "string"
      ? v
      : typeof v === "number" || typeof v === "boolean"
        ? String(v)
        : JSON.stringify(v);
  // A header value cannot carry controls (CR/LF injection) nor be unbounded.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing controls is the point
  if (text.length > 4096 || /[\x00-\x08\x0a-\x1f\x7f]/.test(text)) return undefined;
  return text;
}
