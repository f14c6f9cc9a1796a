/**
 * `weft top [--edges] [--once] [--interval D] [--json]`: a live table of
 * every service's golden metrics (or, with --edges, every source ->
 * destination edge), redrawn every interval (default 2 s) until Ctrl-C.
 * `--once` prints one frame and exits (scripts, tests); `--json` prints one
 * API answer and exits. On a terminal each frame clears the screen; piped,
 * frames are separated by a blank line.
 */
import type { WeftClient } from "@weft/api/client";
import { parseDuration, WeftError } from "@weft/core";
import type { Command } from "commander";
import { type ClientFlags, clientFrom, withClientOptions } from "../client-options.js";
import type { Io } from "../io.js";
import { json, table, useColor } from "../output.js";
import { edgeTable, GOLDEN_HEADERS, goldenCells } from "./stat.js";

interface TopFlags extends ClientFlags {
  edges?: boolean;
  once?: boolean;
  json?: boolean;
  interval: string;
}

const CLEAR = "\u001b[H\u001b[2J";

/** One frame: the table and a footer naming the window. */
export async function topFrame(client: WeftClient, edges: boolean, color: boolean): Promise<string> {
  if (edges) {
    const r = await client.metricsEdges();
    const body = r.edges.length > 0 ? edgeTable(r.edges, color) : "no traffic in the window\n";
    return `${body}\nedges, last ${r.window.seconds}s at ${r.window.at}\n`;
  }
  const r = await client.metricsServices();
  const rows = r.services.map((s) => [s.service, ...goldenCells(s, color)]);
  const body = rows.length > 0 ? table(["SERVICE", ...GOLDEN_HEADERS], rows) : "no services\n";
  return `${body}\nservices (inbound), last ${r.window.seconds}s at ${r.window.at}\n`;
}

function parseInterval(text: string): number {
  const r = parseDuration(text);
  if (!r.ok || r.ms < 200 || r.ms > 3_600_000) {
    throw new WeftError("WEFT_ERR_USAGE", {
      detail: `--interval "${text.slice(0, 32)}": expected a duration from 200ms to 1h (e.g. 2s)`,
    });
  }
  return r.ms;
}

export function registerTopCommand(program: Command, io: Io): void {
  withClientOptions(
    program
      .command("top")
      .summary("a live table of services (or edges) with rate, success rate and latency")
      .description(
        "Show every service's request rate, success rate and p50/p95/p99 latency over the control plane's recent window, refreshed until Ctrl-C. --edges shows source -> destination edges instead.",
      )
      .option("--edges", "show edges (source -> destination) instead of services")
      .option("--once", "print one frame and exit")
      .option("--json", "print the API response of one frame as JSON and exit")
      .option("--interval <duration>", "time between frames", "2s"),
  )
    .addHelpText("after", "\nExamples:\n  $ weft top\n  $ weft top --edges\n  $ weft top --once\n")
    .action(async (opts: TopFlags) => {
      const intervalMs = parseInterval(opts.interval);
      const client = clientFrom(opts, io.cwd);
      if (opts.json) {
        io.out.write(json(opts.edges ? await client.metricsEdges() : await client.metricsServices()));
        return;
      }
      const color = useColor(io.out);
      if (opts.once) {
        io.out.write(await topFrame(client, opts.edges === true, color));
        return;
      }
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      try {
        let first = true;
        while (!ac.signal.aborted) {
          const frame = await topFrame(client, opts.edges === true, color);
          if (ac.signal.aborted) break;
          io.out.write(io.out.isTTY ? CLEAR + frame : `${first ? "" : "\n"}${frame}`);
          first = false;
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, intervalMs);
            ac.signal.addEventListener(
              "abort",
              () => {
                clearTimeout(t);
                resolve();
              },
              { once: true },
            );
          });
        }
      } finally {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
      }
    });
}
