/**
 * `@weft/api/authz`: the inbound authorizer and the canonical request path,
 * shared by the sidecar (which enforces them) and the control plane (which
 * explains them, `GET /v1/explain`), so an explanation runs the very code
 * that decides. Zod-free, like `@weft/api/snapshot`: the sidecar loads it.
 */
export {
  type Authorizer,
  type AuthzCode,
  type AuthzDecision,
  compileAuthz,
  compileHttpMatch,
  type HttpRequestFacts,
  type L4Decision,
} from "./authorizer.js";
export { type CanonicalPath, canonicalPath, MAX_TARGET_LENGTH } from "./canonical-path.js";
export type { HeaderLookup } from "./header-match.js";
