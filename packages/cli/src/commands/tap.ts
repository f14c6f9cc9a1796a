/**
 * `weft tap SERVICE [--json] [--limit N]`: a live stream of the requests
 * passing the sidecars of SERVICE, in both directions (calls into it and
 * calls it makes): time, direction, source -> destination, method, path
 * (no query string), status, latency, response flags. No bodies and no
 * header values ever leave the sidecar.
 *
 * Data flow: the catalog (`GET /v1/health/service/:name?status=any`) names
 * the instances and their `admin` port (registered by each sidecar) -> one
 * `GET /tap` NDJSON stream per sidecar admin listener -> lines merged as they
 * arrive. Once every stream is open "tapping ..." goes to stderr. A sidecar
 * that cannot be reached is reported on stderr and skipped; none at all is
 * an error. `--limit N` stops after N requests; otherwise Ctrl-C stops.
 * A sidecar drops records for a reader too slow to keep up and says how
 * many (reported on stderr).
 */
import type { Instance } from "@weft/api";
import type { TapRecord } from "@weft/api/client";
import { WeftError } from "@weft/core";
import type { Command } from "commander";
import { type ClientFlags, clientFrom, withClientOptions } from "../client-options.js";
import type { Io } from "../io.js";

interface TapFlags extends ClientFlags {
  json?: boolean;
  limit?: string;
}

/** Longest line accepted from a sidecar (a record is far smaller). */
const MAX_LINE = 64 * 1024;

/** One readable line per request. */
export function formatTapRecord(r: TapRecord): string {
  const time = typeof r.time === "string" && r.time.length >= 23 ? r.time.slice(11, 23) : String(r.time);
  const dir = r.direction === "inbound" ? "in " : "out";
  const lat = `${r.latencyMs.toFixed(r.latencyMs >= 100 ? 0 : 2)}ms`;
  const target = `${r.method ?? "-"} ${r.path ?? "-"}`;
  const to = r.endpoint ? `${r.destination} (${r.endpoint})` : r.destination;
  return `${time}  ${dir}  ${r.source} -> ${to}  ${target}  ${r.status}  ${lat}  ${r.flags}`;
}

function adminUrl(inst: Instance): string | undefined {
  const port = inst.ports?.admin;
  if (port === undefined) return undefined;
  const host = inst.address.includes(":") ? `[${inst.address}]` : inst.address;
  return `http://${host}:${port}/tap`;
}

function parseLimit(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,9}$/.test(text) || Number(text) < 1) {
    throw new WeftError("WEFT_ERR_USAGE", {
      detail: `--limit "${text.slice(0, 32)}": expected a positive integer`,
    });
  }
  return Number(text);
}

export function registerTapCommand(program: Command, io: Io): void {
  withClientOptions(
    program
      .command("tap")
      .summary("stream the requests passing a service's sidecars")
      .description(
        "Stream, live, every request passing the sidecars of a service (inbound and outbound): time, direction, source -> destination, method, path without query, status, latency and response flags. No bodies, no header values.",
      )
      .argument("<service>", "service name")
      .option("--json", "one JSON object per request (NDJSON)")
      .option("--limit <n>", "stop after n requests"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft tap api\n  $ weft tap api --json --limit 100 > sample.ndjson\n",
    )
    .action(async (service: string, opts: TapFlags) => {
      const limit = parseLimit(opts.limit);
      const client = clientFrom(opts, io.cwd);
      const { instances } = await client.healthService(service, { status: "any" });
      const targets = instances
        .map((i) => ({ id: i.id, url: adminUrl(i) }))
        .filter((t): t is { id: string; url: string } => t.url !== undefined);
      if (targets.length === 0) {
        throw new WeftError("WEFT_ERR_NOT_FOUND", {
          what:
            instances.length === 0 ? `instances of "${service}"` : `a sidecar admin port for "${service}"`,
        });
      }

      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      let printed = 0;
      const emit = (line: string, from: string) => {
        if (ac.signal.aborted) return;
        let rec: TapRecord | { dropped: number };
        try {
          rec = JSON.parse(line);
        } catch {
          io.err.write(`tap: ${from}: a line that is not JSON was skipped\n`);
          return;
        }
        if ("dropped" in rec) {
          io.err.write(`tap: ${from} dropped ${rec.dropped} records (this reader was too slow)\n`);
          return;
        }
        io.out.write(opts.json ? `${JSON.stringify(rec)}\n` : `${formatTapRecord(rec)}\n`);
        printed += 1;
        if (limit !== undefined && printed >= limit) ac.abort();
      };

      const open = async (t: { id: string; url: string }) => {
        try {
          const res = await fetch(t.url, { signal: ac.signal, headers: { accept: "application/x-ndjson" } });
          if (!res.ok || !res.body) {
            io.err.write(`tap: ${t.id}: the sidecar answered ${res.status}\n`);
            await res.body?.cancel().catch(() => {});
            return undefined;
          }
          return res;
        } catch (e) {
          if (!ac.signal.aborted) io.err.write(`tap: ${t.id}: cannot connect to ${t.url}: ${describe(e)}\n`);
          return undefined;
        }
      };
      const read = async (t: { id: string }, res: Response) => {
        const decoder = new TextDecoder();
        let buf = "";
        try {
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            buf += decoder.decode(chunk, { stream: true });
            let nl = buf.indexOf("\n");
            while (nl >= 0) {
              const line = buf.slice(0, nl);
              buf = buf.slice(nl + 1);
              nl = buf.indexOf("\n");
              if (line.trim().length > 0) emit(line, t.id);
            }
            if (buf.length > MAX_LINE) {
              io.err.write(`tap: ${t.id}: a line over ${MAX_LINE} bytes; stream closed\n`);
              return;
            }
            if (ac.signal.aborted) return;
          }
          if (!ac.signal.aborted) io.err.write(`tap: ${t.id}: the sidecar closed the stream\n`);
        } catch (e) {
          if (!ac.signal.aborted) io.err.write(`tap: ${t.id}: stream broken: ${describe(e)}\n`);
        }
      };

      try {
        const opened = await Promise.all(targets.map(open));
        const live = targets.flatMap((t, i) => {
          const res = opened[i];
          return res ? [{ t, res }] : [];
        });
        if (live.length === 0) {
          if (ac.signal.aborted) return;
          throw new WeftError("WEFT_ERR_UNAVAILABLE", {
            detail: `no sidecar of "${service}" could be tapped (${targets.length} tried)`,
          });
        }
        io.err.write(`tapping ${live.length} of ${targets.length} sidecars of ${service}\n`);
        await Promise.all(live.map(({ t, res }) => read(t, res)));
      } finally {
        ac.abort();
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
      }
    });
}

function describe(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (e instanceof Error ? e.message : String(e));
}
