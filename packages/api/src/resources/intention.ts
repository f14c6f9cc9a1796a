/**
 * Intention: who may call a service. One per destination service (`name`).
 * Each source is either a plain allow/deny (`action`) or an ordered list of
 * L7 `permissions`, first match wins; a request matching no permission of
 * its source is denied. Sources not listed fall to the mesh's defaultPolicy.
 */
import { z } from "zod";
import { NAME_PATTERN, nameSchema } from "../names.js";
import { exactlyOne, headerMatchSchema, methodSchema, PATH_MATCH_KEYS, pathMatchFields } from "./common.js";

export const INTENTION_ACTIONS = ["allow", "deny"] as const;
export const intentionActionSchema = z.enum(INTENTION_ACTIONS);
export type IntentionAction = z.output<typeof intentionActionSchema>;

/** A source service name, or "*" for every source. */
export const sourceNameSchema = z
  .string()
  .refine(
    (s) => s === "*" || NAME_PATTERN.test(s),
    'must be a service name (lowercase DNS label) or "*" for every source',
  );

export const intentionHttpMatchSchema = z
  .strictObject({
    ...pathMatchFields,
    methods: z.array(methodSchema).min(1).max(16).optional(),
    headers: z.array(headerMatchSchema).max(32).optional(),
  })
  .superRefine((m, ctx) => {
    exactlyOne(m, PATH_MATCH_KEYS, ctx, { optional: true });
    if (Object.values(m).every((v) => v === undefined)) {
      ctx.addIssue({
        code: "custom",
        message:
          "an http permission needs at least one of pathExact, pathPrefix, pathRegex, methods, headers",
      });
    }
  });

export const intentionPermissionSchema = z.strictObject({
  action: intentionActionSchema,
  http: intentionHttpMatchSchema,
});
export type IntentionPermission = z.output<typeof intentionPermissionSchema>;

export const intentionSourceSchema = z
  .strictObject({
    name: sourceNameSchema,
    action: intentionActionSchema.optional(),
    permissions: z.array(intentionPermissionSchema).min(1).max(128).optional(),
    description: z.string().max(512).optional(),
  })
  .superRefine((s, ctx) => exactlyOne(s, ["action", "permissions"], ctx, { what: "a source needs exactly" }));
export type IntentionSource = z.output<typeof intentionSourceSchema>;

export const intentionSchema = z
  .strictObject({
    kind: z.literal("Intention"),
    name: nameSchema,
    sources: z.array(intentionSourceSchema).min(1).max(1024),
  })
  .superRefine((it, ctx) => {
    const seen = new Map<string, number>();
    it.sources.forEach((s, i) => {
      const first = seen.get(s.name);
      if (first !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["sources", i, "name"],
          message: `source "${s.name}" is already listed at sources[${first}]`,
        });
      } else {
        seen.set(s.name, i);
      }
    });
  });

export type IntentionInput = z.input<typeof intentionSchema>;
export type Intention = z.output<typeof intentionSchema>;
