/**
 * The boundary check of a sidecar's stats report (`POST /v1/proxy/stats/:id`):
 * unknown keys refused, every count a bounded non-negative integer, the
 * histogram of the fixed size and summing to `requests`, at most
 * STATS_REPORT_LIMITS.maxEdges edges (the body limit bounds the bytes).
 * Whether the edges belong to the reporter's service is checked by the route.
 */
import { GOLDEN_BUCKET_COUNT, nameSchema, STATS_REPORT_LIMITS } from "@weft/api";
import { z } from "zod";

const count = z.number().int().min(0).max(STATS_REPORT_LIMITS.maxCount);

export const edgeStatsDeltaSchema = z
  .strictObject({
    direction: z.enum(["inbound", "outbound"]),
    source: nameSchema,
    destination: nameSchema,
    requests: count,
    success: count,
    buckets: z.array(count).length(GOLDEN_BUCKET_COUNT),
  })
  .superRefine((e, ctx) => {
    if (e.success > e.requests) {
      ctx.addIssue({ code: "custom", path: ["success"], message: "must not exceed requests" });
    }
    const sum = e.buckets.reduce((a, b) => a + b, 0);
    if (sum !== e.requests) {
      ctx.addIssue({
        code: "custom",
        path: ["buckets"],
        message: `bucket counts sum to ${sum}, not to requests (${e.requests})`,
      });
    }
  });

export const proxyStatsReportSchema = z.strictObject({
  session: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 chars of A-Z a-z 0-9 _ -"),
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  edges: z.array(edgeStatsDeltaSchema).max(STATS_REPORT_LIMITS.maxEdges),
});

export type ParsedProxyStatsReport = z.output<typeof proxyStatsReportSchema>;
