import { parseDuration } from "@weft/core";
import { z } from "zod";

import { NAME_PATTERN } from "./patterns.js";

export { NAME_PATTERN };

export const nameSchema = z
  .string()
  .regex(
    NAME_PATTERN,
    "must be a lowercase DNS label: a-z, 0-9 and '-', 1-63 chars, not starting or ending with '-'",
  );

/** An instance id: chosen by the registrant or generated. */
export const instanceIdSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/,
    "must be 1-128 chars of A-Z a-z 0-9 . _ : - (starting alphanumeric)",
  );

/** A check id, unique within its instance. */
export const checkIdSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    "must be 1-64 chars of A-Z a-z 0-9 . _ - (starting alphanumeric)",
  );

/** A Go-style duration string ("500ms", "10s", "1h30m"), carried as milliseconds after parsing. */
export const durationSchema = z.string().transform((text, ctx) => {
  const r = parseDuration(text);
  if (!r.ok) {
    ctx.addIssue({ code: "custom", message: r.error });
    return z.NEVER;
  }
  return r.ms;
});

export const portSchema = z.number().int().min(1).max(65535);

export const tagsSchema = z.array(z.string().min(1).max(128)).max(64);

export const metaSchema = z
  .record(
    z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/, "meta keys: 1-128 chars of A-Z a-z 0-9 . _ / -"),
    z.string().max(512),
  )
  .refine((m) => Object.keys(m).length <= 64, "at most 64 meta entries");
