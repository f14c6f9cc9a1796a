/**
 * Proxyless gRPC clients in the CLI: `weft xds [--service S] [--json]`
 * lists the control plane's xDS nodes (`GET /v1/xds/nodes`): connected or
 * not, stream counters, the version each last ACKed per type, and every
 * update it refused with the client's own message. `formatProxyless` is
 * the matching section of `weft explain`'s output.
 *
 * Registered by explain.ts (next to `weft explain`, which it complements).
 */
import { describeNack, type ExplainProxyless, type XdsNode, type XdsNodesResponse } from "@weft/api";
import type { Command } from "commander";
import { type ClientFlags, clientFrom, withClientOptions } from "../client-options.js";
import type { Io } from "../io.js";
import { json, paint, table, useColor } from "../output.js";

function ackedCell(acked: XdsNode["acked"]): string {
  const parts = Object.entries(acked).map(([type, v]) => `${type}:${v}`);
  return parts.length > 0 ? parts.join(",") : "-";
}

/** The `weft xds` text: a table of nodes, then each node's NACKs in plain words. */
export function formatXdsNodes(r: XdsNodesResponse, color: boolean): string {
  const rows = r.nodes.map((n) => [
    n.nodeId,
    n.service ?? "-",
    n.connected ? paint("connected", "green", color) : paint("not connected", "dim", color),
    n.stream ? String(n.stream.responses) : "-",
    n.stream ? String(n.stream.acks) : "-",
    n.nacks.length > 0
      ? paint(String(n.nacks.reduce((s, x) => s + x.count, 0)), "red", color)
      : String(n.stream?.nacks ?? 0),
    ackedCell(n.acked),
  ]);
  let out = table(["NODE", "SERVICE", "STREAM", "RESPONSES", "ACKS", "NACKS", "ACKED"], rows);
  const nacked = r.nodes.filter((n) => n.nacks.length > 0);
  if (nacked.length > 0) {
    out += "\nrefused updates (NACKs), oldest first:\n";
    for (const n of nacked) {
      for (const x of n.nacks) out += `  ${x.at}  ${describeNack(n.nodeId, x)}\n`;
    }
  }
  return out;
}

/** The proxyless section of `weft explain`; empty when neither side has proxyless instances. */
export function formatProxyless(list: readonly ExplainProxyless[] | undefined): string[] {
  if (list === undefined || list.length === 0) return [];
  const out = ["proxyless gRPC instances (no sidecar; config over xDS):"];
  for (const p of list) {
    out.push(`  ${p.service} (${p.role === "source" ? "the caller" : "the destination"}):`);
    if (!p.xdsEnabled)
      out.push("    this control plane serves no xDS (--xds-listen): they get no config from it");
    else if (!p.visible)
      out.push(`    xDS state hidden: it needs read permission on ${JSON.stringify(p.service)}`);
    for (const i of p.instances) {
      const acked = Object.entries(i.acked).map(([t, v]) => `${t} ${v}`);
      const state = !p.xdsEnabled || !p.visible ? "" : i.connected ? "  connected" : "  not connected";
      out.push(`    ${i.id}  ${i.status}${state}${acked.length > 0 ? `; ACKed ${acked.join(", ")}` : ""}`);
      for (const x of i.nacks) out.push(`      NACK ${x.at}: ${describeNack(i.id, x)}`);
    }
  }
  return out;
}

interface XdsFlags extends ClientFlags {
  service?: string;
  json?: boolean;
}

export function registerXdsCommand(program: Command, io: Io): void {
  withClientOptions(
    program
      .command("xds")
      .summary("list proxyless gRPC clients (xDS nodes) and the updates they refused")
      .description(
        "List the xDS nodes of the control plane (proxyless gRPC clients registered by\n" +
          "`weft bootstrap grpc`): connected or not, responses, ACKs and NACKs of their stream,\n" +
          "the version they last ACKed per type, and each update they refused (NACK) with\n" +
          "the client's own error message. Nodes that went away are listed while their\n" +
          "NACKs are kept. Only the services your token may read are shown.",
      )
      .option("--service <name>", "only the nodes of this service")
      .option("--json", "print the API response (XdsNodesResponse) as JSON"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft xds\n  $ weft xds --service web\n  $ weft xds --json | jq '.nodes[] | select(.nacks | length > 0)'\n",
    )
    .action(async (opts: XdsFlags) => {
      const r = await clientFrom(opts, io.cwd).xdsNodes({ service: opts.service });
      if (opts.json) {
        io.out.write(json(r));
        return;
      }
      if (!r.enabled) {
        io.err.write("this control plane serves no xDS (start it with weft server --xds-listen ADDR)\n");
        return;
      }
      if (r.nodes.length === 0) {
        io.err.write(
          opts.service !== undefined
            ? `no xDS nodes of ${opts.service}\n`
            : "no xDS nodes connected or NACKing\n",
        );
        return;
      }
      io.out.write(formatXdsNodes(r, useColor(io.out)));
    });
}
