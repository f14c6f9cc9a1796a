/**
 * Route: ordered HTTP routes for calls to a destination service (`name`).
 * The first route whose match holds decides; a request matching none goes
 * to the service itself. Each route forwards to a destination, redirects, or
 * answers directly.
 */
import { z } from "zod";
import { durationSchema, nameSchema } from "../names.js";
import {
  directResponseSchema,
  faultSchema,
  headerOpsSchema,
  httpMatchSchema,
  httpRedirectSchema,
  mirrorSchema,
  retriesSchema,
  rewriteSchema,
} from "./common.js";

export const routeDestinationSchema = z.strictObject({
  /** Default: the Route's own service. */
  service: nameSchema.optional(),
  subset: nameSchema.optional(),
  rewrite: rewriteSchema.optional(),
  /** Request timeout, retries included. */
  timeout: durationSchema.optional(),
  idleTimeout: durationSchema.optional(),
  retries: retriesSchema.optional(),
  fault: faultSchema.optional(),
  mirror: mirrorSchema.optional(),
  requestHeaders: headerOpsSchema.optional(),
  responseHeaders: headerOpsSchema.optional(),
});

export const httpRouteSchema = z
  .strictObject({
    /** For `weft explain` and metrics labels. */
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "route names: 1-63 chars of A-Z a-z 0-9 . _ -")
      .optional(),
    match: httpMatchSchema.prefault({}),
    destination: routeDestinationSchema.optional(),
    redirect: httpRedirectSchema.optional(),
    directResponse: directResponseSchema.optional(),
  })
  .superRefine((r, ctx) => {
    const actions = (["destination", "redirect", "directResponse"] as const).filter(
      (k) => r[k] !== undefined,
    );
    if (actions.length > 1) {
      ctx.addIssue({
        code: "custom",
        path: [actions[1] as string],
        message: `${actions.join(" and ")} cannot be combined; a route has one of destination, redirect, directResponse`,
      });
    }
  });

export const routeSchema = z
  .strictObject({
    kind: z.literal("Route"),
    name: nameSchema,
    routes: z.array(httpRouteSchema).min(1).max(256),
  })
  .transform((rt) => ({
    ...rt,
    // A route without an action forwards to the service itself; fill the
    // destination here so consumers never guess.
    routes: rt.routes.map((r) =>
      r.redirect || r.directResponse
        ? r
        : { ...r, destination: { ...r.destination, service: r.destination?.service ?? rt.name } },
    ),
  }));

export type RouteInput = z.input<typeof routeSchema>;
export type Route = z.output<typeof routeSchema>;
export type HttpRoute = Route["routes"][number];
export type RouteDestination = NonNullable<HttpRoute["destination"]>;
