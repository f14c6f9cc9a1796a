/**
 * Resolver: how calls to a service (`name`) find instances: named subsets
 * (instances carrying all the given tags and meta), a default subset, a
 * connect timeout, a redirect to another service, and failover targets
 * tried in order when no healthy instance remains in the primary.
 */
import { z } from "zod";
import { localitySchema } from "../catalog.js";
import { durationSchema, metaSchema, nameSchema, tagsSchema } from "../names.js";

export const subsetSchema = z.strictObject({
  /** Instances having every one of these tags. */
  tags: tagsSchema.optional(),
  /** Instances whose meta has every one of these entries. */
  meta: metaSchema.optional(),
  /** Only passing instances (the default); false also admits warning ones. */
  onlyPassing: z.boolean().default(true),
});
export type Subset = z.output<typeof subsetSchema>;

/** A place to send traffic: another subset, service, datacenter or locality. */
export const resolverTargetSchema = z
  .strictObject({
    service: nameSchema.optional(),
    subset: nameSchema.optional(),
    datacenter: nameSchema.optional(),
    locality: localitySchema.optional(),
  })
  .superRefine((t, ctx) => {
    if (!t.service && !t.subset && !t.datacenter && !t.locality) {
      ctx.addIssue({ code: "custom", message: "a target needs service, subset, datacenter or locality" });
    }
  });
export type ResolverTarget = z.output<typeof resolverTargetSchema>;

export const failoverSchema = z.strictObject({
  targets: z.array(resolverTargetSchema).min(1).max(16),
});

export const resolverSchema = z
  .strictObject({
    kind: z.literal("Resolver"),
    name: nameSchema,
    subsets: z
      .record(nameSchema, subsetSchema)
      .refine((m) => Object.keys(m).length <= 64, "at most 64 subsets")
      .default({}),
    defaultSubset: nameSchema.optional(),
    connectTimeout: durationSchema.prefault("5s"),
    /** Send every call for this service elsewhere instead. */
    redirect: resolverTargetSchema.optional(),
    failover: failoverSchema.optional(),
  })
  .superRefine((r, ctx) => {
    if (r.defaultSubset !== undefined && !Object.hasOwn(r.subsets, r.defaultSubset)) {
      ctx.addIssue({
        code: "custom",
        path: ["defaultSubset"],
        message: `subset "${r.defaultSubset}" is not defined in subsets`,
      });
    }
    if (r.redirect && r.failover) {
      ctx.addIssue({
        code: "custom",
        path: ["failover"],
        message: "a redirecting resolver has no failover of its own; set failover on the redirect's target",
      });
    }
    const own = (t: ResolverTarget) => t.service === undefined || t.service === r.name;
    if (r.redirect && own(r.redirect) && !r.redirect.datacenter && !r.redirect.locality) {
      if (r.redirect.subset === undefined) {
        ctx.addIssue({ code: "custom", path: ["redirect"], message: "redirects to itself" });
      } else if (!Object.hasOwn(r.subsets, r.redirect.subset)) {
        ctx.addIssue({
          code: "custom",
          path: ["redirect", "subset"],
          message: `subset "${r.redirect.subset}" is not defined in subsets`,
        });
      }
    }
    r.failover?.targets.forEach((t, i) => {
      if (!own(t) || t.datacenter || t.locality) return;
      if (t.subset === undefined) {
        ctx.addIssue({ code: "custom", path: ["failover", "targets", i], message: "fails over to itself" });
      } else if (!Object.hasOwn(r.subsets, t.subset)) {
        ctx.addIssue({
          code: "custom",
          path: ["failover", "targets", i, "subset"],
          message: `subset "${t.subset}" is not defined in subsets`,
        });
      }
    });
  });

export type ResolverInput = z.input<typeof resolverSchema>;
export type Resolver = z.output<typeof resolverSchema>;
