/**
 * Split: weighted shares of the calls to a service (`name`) across subsets
 * or other services. Weights are percentages and sum to 100.
 */
import { z } from "zod";
import { nameSchema } from "../names.js";
import { headerOpsSchema, percentSchema } from "./common.js";

export const WEIGHT_TOLERANCE = 0.01;

export const splitEntrySchema = z.strictObject({
  weight: percentSchema,
  /** Default: the Split's own service. */
  service: nameSchema.optional(),
  subset: nameSchema.optional(),
  requestHeaders: headerOpsSchema.optional(),
  responseHeaders: headerOpsSchema.optional(),
});

export const splitSchema = z
  .strictObject({
    kind: z.literal("Split"),
    name: nameSchema,
    splits: z.array(splitEntrySchema).min(1, "a split needs at least one entry").max(64),
  })
  .superRefine((s, ctx) => {
    const sum = s.splits.reduce((acc, e) => acc + e.weight, 0);
    if (Math.abs(sum - 100) > WEIGHT_TOLERANCE) {
      ctx.addIssue({
        code: "custom",
        path: ["splits"],
        message: `weights must sum to 100, got ${Math.round(sum * 1000) / 1000}`,
      });
    }
    const seen = new Map<string, number>();
    s.splits.forEach((e, i) => {
      const key = `${e.service ?? s.name}/${e.subset ?? ""}`;
      const first = seen.get(key);
      if (first !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["splits", i],
          message: `same target as splits[${first}]; merge their weights`,
        });
      } else {
        seen.set(key, i);
      }
    });
  })
  .transform((s) => ({
    ...s,
    splits: s.splits.map((e) => ({ ...e, service: e.service ?? s.name })),
  }));

export type SplitInput = z.input<typeof splitSchema>;
export type Split = z.output<typeof splitSchema>;
export type SplitEntry = Split["splits"][number];
