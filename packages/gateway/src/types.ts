/**
 * The Gateway resource as this package consumes it: the schema's output
 * types (already validated, defaults filled, durations in ms). Type-only
 * imports: the schemas (zod) stay at the config boundary, in the CLI.
 */
import type { ExternalService, Gateway, GatewayRoute, JwtProvider, Listener } from "@weft/api";

export type GatewayConfig = Gateway;
export type ListenerConfig = Listener;
export type RouteConfig = GatewayRoute;
export type JwtProviderConfig = JwtProvider;
export type ExternalServiceConfig = ExternalService;
