import { GOLDEN_BUCKET_COUNT } from "@weft/api";
import { describe, expect, it } from "vitest";
import { clusterService, LOAD_REPORT_LIMITS, loadReportEdges } from "./load-report.js";

const locality = (ok: number | string, failed: number | string, extra: Record<string, unknown> = {}) => ({
  locality: { region: "", zone: "", sub_zone: "" },
  total_successful_requests: String(ok),
  total_error_requests: String(failed),
  total_issued_requests: String(Number(ok) + Number(failed)),
  total_requests_in_progress: "0",
  ...extra,
});

describe("clusterService", () => {
  it.each([
    ["echo", "echo"],
    ["echo.v1", "echo"],
    ["echo@dc2", "echo"],
    ["api.v2@dc2", "api"],
    ["catalog~eu/a", "catalog"],
    ["catalog~*/a", "catalog"],
    ["my-svc-2.canary~us", "my-svc-2"],
  ])("%s -> %s", (name, service) => {
    expect(clusterService(name)).toBe(service);
  });

  it.each(["", "Echo", ".v1", "-echo", "echo!x", `${"a".repeat(64)}`, "outbound|80||echo.default"])(
    "%j is not a cluster of the mesh",
    (name) => {
      expect(clusterService(name)).toBeUndefined();
    },
  );
});

describe("loadReportEdges", () => {
  it("sums localities and subsets into one outbound edge per destination; drops are failures", () => {
    const r = loadReportEdges("client", [
      {
        cluster_name: "echo.v1",
        cluster_service_name: "echo.v1",
        upstream_locality_stats: [locality(10, 2), locality(5, 0)],
        total_dropped_requests: "3",
      },
      { cluster_name: "echo.v2", upstream_locality_stats: [locality(4, 1)] },
      { cluster_name: "billing", upstream_locality_stats: [locality(7, 0)], total_dropped_requests: "0" },
      // In progress only: nothing completed yet, no edge.
      {
        cluster_name: "idle",
        upstream_locality_stats: [locality(0, 0, { total_requests_in_progress: "4" })],
      },
    ]);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const zero = new Array(GOLDEN_BUCKET_COUNT).fill(0);
    expect(r.edges).toEqual([
      {
        direction: "outbound",
        source: "client",
        destination: "billing",
        requests: 7,
        success: 7,
        buckets: zero,
      },
      // 10+2 + 5+0 + 3 dropped + 4+1 = 25; 10+5+4 = 19 succeeded.
      {
        direction: "outbound",
        source: "client",
        destination: "echo",
        requests: 25,
        success: 19,
        buckets: zero,
      },
    ]);
  });

  it("takes numbers as well as decimal strings, and absent counts as zero", () => {
    const r = loadReportEdges("client", [
      { cluster_name: "echo", upstream_locality_stats: [{ total_successful_requests: 3 }, {}] },
    ]);
    expect(r).toMatchObject({ ok: true, edges: [{ destination: "echo", requests: 3, success: 3 }] });
  });

  it("reads an absent or empty cluster_stats as an empty report", () => {
    expect(loadReportEdges("client", undefined)).toEqual({ ok: true, edges: [] });
    expect(loadReportEdges("client", [])).toEqual({ ok: true, edges: [] });
  });

  const many = (n: number) => Array.from({ length: n }, () => ({ cluster_name: "echo" }));
  it.each([
    ["not a list", { cluster_name: "echo" }, /cluster_stats is not a list/],
    ["no cluster name", [{ upstream_locality_stats: [] }], /cluster_stats\[0\]\.cluster_name is missing/],
    ["a foreign cluster name", [{ cluster_name: "outbound|80||x" }], /not a cluster of this mesh/],
    ["localities not a list", [{ cluster_name: "echo", upstream_locality_stats: 3 }], /not a list/],
    ["a negative count", [{ cluster_name: "echo", upstream_locality_stats: [locality(-1, 0)] }], /bounded/],
    ["a fraction", [{ cluster_name: "echo", upstream_locality_stats: [locality(1.5, 0)] }], /bounded/],
    [
      "a non-digit string",
      [{ cluster_name: "echo", upstream_locality_stats: [locality("1e3", 0)] }],
      /bounded/,
    ],
    [
      "a count over the limit",
      [{ cluster_name: "echo", upstream_locality_stats: [locality(LOAD_REPORT_LIMITS.maxCount + 1, 0)] }],
      /bounded/,
    ],
    [
      "an edge total over the limit",
      [
        { cluster_name: "echo.a", upstream_locality_stats: [locality(LOAD_REPORT_LIMITS.maxCount, 0)] },
        { cluster_name: "echo.b", upstream_locality_stats: [locality(1, 0)] },
      ],
      /exceed/,
    ],
    [
      "a bad dropped count",
      [{ cluster_name: "echo", total_dropped_requests: { low: 1 } }],
      /total_dropped_requests/,
    ],
    [
      "an in-progress count of the wrong type",
      [
        {
          cluster_name: "echo",
          upstream_locality_stats: [locality(1, 0, { total_requests_in_progress: true })],
        },
      ],
      /bounded/,
    ],
    ["too many clusters", many(LOAD_REPORT_LIMITS.maxClusters + 1), /at most 512/],
    [
      "too many localities",
      [{ cluster_name: "echo", upstream_locality_stats: Array.from({ length: 257 }, () => locality(1, 0)) }],
      /at most 256/,
    ],
  ])("refuses a report with %s", (_what, stats, error) => {
    const r = loadReportEdges("client", stats);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(error);
  });

  it("accepts exactly the limits", () => {
    expect(loadReportEdges("client", many(LOAD_REPORT_LIMITS.maxClusters)).ok).toBe(true);
    const r = loadReportEdges("client", [
      { cluster_name: "echo", upstream_locality_stats: [locality(LOAD_REPORT_LIMITS.maxCount, 0)] },
    ]);
    expect(r).toMatchObject({ ok: true, edges: [{ requests: LOAD_REPORT_LIMITS.maxCount }] });
  });
});
