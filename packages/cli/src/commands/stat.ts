/**
 * `weft stat SERVICE [--json]`: one service's golden metrics over the
 * control plane's window (`GET /v1/metrics/services/:name`): request rate,
 * success rate and p50/p95/p99 latency as the service's own sidecars served
 * it, then its inbound edges (callers) and outbound edges (what it calls),
 * as the calling sidecars saw them. `--json` prints the API answer.
 *
 * Percentiles come from fixed histogram buckets (see @weft/api metrics.ts):
 * they are exact to within a bucket's width.
 */
import type { EdgeGolden, GoldenStats, ServiceMetricsResponse } from "@weft/api/client";
import type { Command } from "commander";
import { type ClientFlags, clientFrom, withClientOptions } from "../client-options.js";
import type { Io } from "../io.js";
import { json, paint, table, useColor } from "../output.js";

/** "12.5" / "0.333": requests per second, three significant decimals at most. */
export function rpsCell(rps: number): string {
  if (rps === 0) return "0";
  return rps >= 100 ? rps.toFixed(0) : rps >= 10 ? rps.toFixed(1) : rps.toFixed(rps >= 1 ? 2 : 3);
}

/** "99.50%", or "-" without requests; red below 95 %, yellow below 99 % when colour is on. */
export function successCell(rate: number | null, color: boolean): string {
  if (rate === null) return "-";
  const text = `${(rate * 100).toFixed(2)}%`;
  if (rate < 0.95) return paint(text, "red", color);
  if (rate < 0.99) return paint(text, "yellow", color);
  return paint(text, "green", color);
}

/** "3.2ms", "1.25s", or "-". */
export function latencyCell(ms: number | null): string {
  if (ms === null) return "-";
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)}s`;
  return ms >= 100 ? `${ms.toFixed(0)}ms` : ms >= 10 ? `${ms.toFixed(1)}ms` : `${ms.toFixed(2)}ms`;
}

export const GOLDEN_HEADERS = ["RPS", "SUCCESS", "P50", "P95", "P99", "REQUESTS"] as const;

export function goldenCells(g: GoldenStats, color: boolean): string[] {
  return [
    rpsCell(g.rps),
    successCell(g.successRate, color),
    latencyCell(g.latencyMs.p50),
    latencyCell(g.latencyMs.p95),
    latencyCell(g.latencyMs.p99),
    String(g.requests),
  ];
}

export function edgeTable(edges: readonly EdgeGolden[], color: boolean): string {
  return table(
    ["SOURCE", "DESTINATION", ...GOLDEN_HEADERS],
    edges.map((e) => [e.source, e.destination, ...goldenCells(e, color)]),
  );
}

export function formatStat(r: ServiceMetricsResponse, color: boolean): string {
  const out: string[] = [];
  out.push(table(["SERVICE", ...GOLDEN_HEADERS], [[r.service.service, ...goldenCells(r.service, color)]]));
  out.push(`\ninbound (callers of ${r.service.service}):\n`);
  out.push(r.inbound.length > 0 ? edgeTable(r.inbound, color) : "  none in the window\n");
  out.push(`\noutbound (called by ${r.service.service}):\n`);
  out.push(r.outbound.length > 0 ? edgeTable(r.outbound, color) : "  none in the window\n");
  out.push(`\nwindow: last ${r.window.seconds}s (slots of ${r.window.slotSeconds}s)\n`);
  return out.join("");
}

export function registerStatCommand(program: Command, io: Io): void {
  withClientOptions(
    program
      .command("stat")
      .summary("a service's golden metrics: rate, success rate, latency, and its edges")
      .description(
        "Show a service's request rate, success rate and p50/p95/p99 latency over the control plane's recent window, with the edges to its callers and to what it calls.",
      )
      .argument("<service>", "service name")
      .option("--json", "print the API response as JSON"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft stat api\n  $ weft stat api --json | jq .service.successRate\n",
    )
    .action(async (service: string, opts: ClientFlags & { json?: boolean }) => {
      const r = await clientFrom(opts, io.cwd).metricsService(service);
      io.out.write(opts.json ? json(r) : formatStat(r, useColor(io.out)));
    });
}
