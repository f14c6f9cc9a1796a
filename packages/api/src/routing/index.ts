/**
 * `@weft/api/routing`: HTTP route matching, rewrites, redirects and header
 * changes, shared by the sidecar (which routes) and the control plane
 * (`weft explain`). Zod-free: the sidecar loads it.
 */
export { type FailoverView, servingCluster } from "./failover.js";
export { applyHeaderOps, type MutableHeaders } from "./header-ops.js";
export { type RedirectRequest, redirectLocation, rewritePath } from "./rewrite.js";
export { compileRouteTable, type MatchedRoute, type RouteRequest, type RouteTable } from "./route-table.js";
