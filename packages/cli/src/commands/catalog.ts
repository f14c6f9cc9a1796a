/**
 * The catalog: `services` (one line per service with its health counts) and
 * `instances SERVICE` (one line per instance, with the time left on its
 * certificate once the CA has signed one for it). Reads only; registration
 * is the sidecar's job (or the API's). Proxyless gRPC instances (tag
 * `proxyless`, `weft bootstrap grpc`) show the tag, and are named once more
 * on stderr after the table (the columns stay what scripts read).
 */
import { isProxyless, type WeftClient } from "@weft/api";
import type { Command } from "commander";
import { type ClientFlags, clientFrom, withClientOptions } from "../client-options.js";
import type { Io } from "../io.js";
import { type Color, json, paint, table, useColor } from "../output.js";
import { certExpiresCell } from "./ca.js";

// The catalog types, taken from the client so the CLI depends only on what the client returns.
type Instance = Awaited<ReturnType<WeftClient["getInstance"]>>;
type HealthStatus = Instance["status"];

const STATUS_COLOR: Record<HealthStatus, Color> = { passing: "green", warning: "yellow", critical: "red" };

function countCell(n: number, color: Color, enabled: boolean): string {
  return n > 0 ? paint(String(n), color, enabled) : "0";
}

function list(v: readonly string[] | undefined): string {
  return v && v.length > 0 ? v.join(",") : "-";
}

export function registerCatalogCommands(program: Command, io: Io): void {
  withClientOptions(
    program
      .command("services")
      .summary("list services and their health")
      .description("List the services in the catalog: instance counts by health status, and tags.")
      .option("--json", "print ServiceSummary[] as JSON"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft services\n  $ weft services --json | jq '.[] | select(.critical > 0)'\n",
    )
    .action(async (opts: ClientFlags & { json?: boolean }) => {
      const { value } = await clientFrom(opts, io.cwd).listServices();
      if (opts.json) {
        io.out.write(json(value));
        return;
      }
      if (value.length === 0) {
        io.err.write("no services registered\n");
        return;
      }
      const c = useColor(io.out);
      const rows = [...value]
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((s) => [
          s.name,
          String(s.instances),
          countCell(s.passing, "green", c),
          countCell(s.warning, "yellow", c),
          countCell(s.critical, "red", c),
          list(s.tags),
        ]);
      io.out.write(table(["NAME", "INSTANCES", "PASSING", "WARNING", "CRITICAL", "TAGS"], rows));
    });

  withClientOptions(
    program
      .command("instances")
      .summary("list a service's instances")
      .description(
        "List the instances of a service. By default only passing instances are shown\n" +
          "(what discovery returns); --all shows warning and critical ones too.",
      )
      .argument("<service>", "service name")
      .option("--all", "include warning and critical instances")
      .option("--json", "print the instances as JSON"),
  )
    .addHelpText("after", "\nExamples:\n  $ weft instances api\n  $ weft instances api --all --json\n")
    .action(async (service: string, opts: ClientFlags & { json?: boolean; all?: boolean }) => {
      const r = await clientFrom(opts, io.cwd).healthService(service, opts.all ? { status: "any" } : {});
      if (opts.json) {
        io.out.write(json(r.instances));
        return;
      }
      if (r.instances.length === 0) {
        io.err.write(
          opts.all
            ? `no instances of ${service}\n`
            : `no passing instances of ${service} (--all shows every instance)\n`,
        );
        return;
      }
      io.out.write(instanceTable(r.instances, useColor(io.out)));
      const note = proxylessNote(service, r.instances);
      if (note !== undefined) io.err.write(note);
    });
}

/**
 * The `weft instances` table. CERT EXPIRES is the time left on the
 * instance's newest CA certificate, "expired", or "-" when its proxy has not
 * asked for one with its instance id. Always present: scripts read columns.
 */
export function instanceTable(instances: readonly Instance[], color: boolean, now = Date.now()): string {
  const rows = [...instances]
    .sort((a, b) => a.id.localeCompare(b.id))
    .map((i) => {
      const row = [
        i.id,
        `${i.address.includes(":") ? `[${i.address}]` : i.address}:${i.port}`,
        paint(i.status, STATUS_COLOR[i.status] ?? "dim", color),
        i.checks.length > 0 ? i.checks.map((ch) => `${ch.id}:${ch.status}`).join(",") : "-",
        list(i.tags),
        i.datacenter,
      ];
      row.push(certExpiresCell(i.certificate, now, color));
      return row;
    });
  const headers = ["ID", "ADDRESS", "STATUS", "CHECKS", "TAGS", "DATACENTER", "CERT EXPIRES"];
  return table(headers, rows);
}

/** The line after `weft instances` naming its proxyless instances (none: undefined). */
export function proxylessNote(service: string, instances: readonly Instance[]): string | undefined {
  const ids = instances.filter(isProxyless).map((i) => i.id);
  if (ids.length === 0) return undefined;
  return `proxyless gRPC (no sidecar, config over xDS): ${ids.sort().join(", ")}; their xDS state: weft xds --service ${service}\n`;
}
