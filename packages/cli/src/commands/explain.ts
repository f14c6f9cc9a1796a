/**
 * `weft explain --from web --to api [--method M] [--path P] [--header k=v]`:
 * asks the control plane (`GET /v1/explain`) what the mesh would do with
 * that request and prints it, decision first, then the path, the listener
 * and split, each candidate cluster with its instances and timeouts, and
 * notes on what does not take effect yet. `--json` prints the API answer.
 * A denied request is a successful explanation: exit 0.
 */
import type { ExplainCluster, ExplainResponse } from "@weft/api";
import { WeftError } from "@weft/core";
import type { Command } from "commander";
import { type ClientFlags, clientFrom, withClientOptions } from "../client-options.js";
import type { Io } from "../io.js";
import { json } from "../output.js";

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** `name=value` (or `name:value`) into a pair; the first separator splits. */
export function parseHeaderFlag(text: string): [string, string] {
  const eq = text.indexOf("=");
  const colon = text.indexOf(":");
  const at = eq < 0 ? colon : colon < 0 ? eq : Math.min(eq, colon);
  if (at <= 0) {
    throw new WeftError("WEFT_ERR_USAGE", { detail: `--header "${text.slice(0, 64)}": expected name=value` });
  }
  return [text.slice(0, at).trim(), text.slice(at + 1).trim()];
}

const q = JSON.stringify;

function ms(n: number | null): string {
  if (n === null) return "none";
  return n % 1000 === 0 ? `${n / 1000}s` : `${n}ms`;
}

function decisionLine(r: ExplainResponse): string {
  const d = r.decision;
  if (d.allow) return d.reason.startsWith("intention ") ? `ALLOWED by ${d.reason}` : `ALLOWED: ${d.reason}`;
  return `DENIED: ${d.reason} (the destination's proxy answers ${d.status ?? 403})`;
}

/** `weight`: the cluster's share of the split; undefined without a split; 0 when the split does not name it. */
function clusterLines(c: ExplainCluster, weight: number | undefined): string[] {
  const title =
    weight === undefined
      ? `cluster ${c.name}`
      : weight === 0
        ? `cluster ${c.name} (the default cluster: no traffic while the split applies)`
        : `cluster ${c.name} (weight ${weight}%)`;
  const out = [title];
  if (c.subset !== null) {
    const f = c.subsetFilter;
    const what =
      f === "undefined-subset"
        ? "not defined by the Resolver"
        : [
            ...(f?.tags ?? []).map((t) => `tag ${t}`),
            ...Object.entries(f?.meta ?? {}).map(([k, v]) => `meta ${k}=${v}`),
          ].join(", ") || "every instance";
    out.push(`  subset ${c.subset}: ${what}`);
  }
  out.push(
    `  lb ${c.lb.policy}; connect timeout ${ms(c.connectTimeoutMs)}, request timeout ${ms(c.requestTimeoutMs)}, idle timeout ${ms(c.idleTimeoutMs)}`,
  );
  out.push(`  retries: ${c.retries === null ? "none" : JSON.stringify(c.retries)}`);
  out.push(`  candidates (${c.endpoints.length}):`);
  for (const e of c.endpoints) {
    out.push(`    ${e.id}  ${e.address}:${e.port}  ${e.health}  weight ${e.weight}`);
  }
  if (c.excluded.length > 0) {
    out.push(`  excluded, critical (${c.excluded.length}):`);
    for (const x of c.excluded) {
      out.push(`    ${x.id}  ${x.address}:${x.port}`);
      for (const k of x.checks) {
        if (k.status === "critical") out.push(`      check ${k.name ?? k.id}: ${k.output || "(no output)"}`);
      }
    }
  }
  for (const n of c.notes) out.push(`  note: ${n}`);
  return out;
}

/** The readable explanation. */
export function formatExplain(r: ExplainResponse): string {
  const d = r.decision;
  const lines: string[] = [decisionLine(r), ""];
  lines.push(`request: ${r.request.method} ${r.request.target} from ${q(r.from)} to ${q(r.to)}`);
  for (const [k, v] of Object.entries(r.request.headers)) lines.push(`  ${k}: ${v}`);
  if (r.path.ok) {
    lines.push(
      r.path.changed
        ? `path: canonical form ${r.path.path}${r.path.query} (authorized and forwarded)`
        : `path: ${r.path.path}${r.path.query} (already canonical)`,
    );
  } else {
    lines.push(`path: refused: ${r.path.reason}`);
  }
  lines.push("");
  lines.push("authorization:");
  lines.push(
    `  ${d.level === "tcp" ? "per connection (TCP: method, path and headers are not seen)" : "per request (HTTP)"}; intention ${q(r.to)} ${d.intention ? "exists" : "does not exist"}; default policy ${d.defaultAction}`,
  );
  for (const p of d.permissions ?? []) {
    const mark = d.rule.kind === "permission" && d.rule.index === p.index ? "=>" : p.matches ? " +" : " -";
    lines.push(
      `  ${mark} permission[${p.index}] ${p.action} ${p.description}${p.matches ? "" : ": no match"}`,
    );
  }
  lines.push("");
  const l = r.listener;
  lines.push(`upstream listener ${l.service} (${l.protocol}): default cluster ${l.cluster}`);
  const weights = new Map<string, number>();
  if (l.split) {
    lines.push(`  split (${l.split.choice}):`);
    for (const t of l.split.targets) {
      lines.push(`    ${t.cluster}  ${t.weight}%`);
      weights.set(t.cluster, (weights.get(t.cluster) ?? 0) + t.weight);
    }
  } else {
    lines.push("  no split: every request goes to the default cluster");
  }
  for (const c of r.clusters) {
    lines.push("");
    lines.push(...clusterLines(c, l.split ? (weights.get(c.name) ?? 0) : undefined));
  }
  lines.push("");
  lines.push("notes:");
  for (const [k, v] of Object.entries(r.notes)) lines.push(`  ${k}: ${v}`);
  return `${lines.join("\n")}\n`;
}

interface ExplainFlags extends ClientFlags {
  from: string;
  to: string;
  method?: string;
  path?: string;
  header?: string[];
  json?: boolean;
}

export function registerExplainCommand(program: Command, io: Io): void {
  withClientOptions(
    program
      .command("explain")
      .summary("explain what the mesh does with a request from one service to another")
      .description(
        "Explain, from the live config, whether a request from --from to --to is allowed (and by which intention rule), which split, subset and instances it may go to with their health, and the timeouts and retries that apply.",
      )
      .requiredOption("--from <service>", "the calling service")
      .requiredOption("--to <service>", "the destination service")
      .option("--method <method>", "HTTP method", "GET")
      .option("--path <path>", "request path, query included", "/")
      .option("--header <name=value>", "a request header (repeat for several)", collect)
      .option("--json", "print the API response as JSON"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft explain --from web --to api\n  $ weft explain --from web --to api --method POST --path /admin/x --header x-debug=1\n  $ weft explain --from web --to api --json\n\nExit 0 for an explanation, allowed or denied.\n",
    )
    .action(async (opts: ExplainFlags) => {
      const headers = (opts.header ?? []).map(parseHeaderFlag);
      const client = clientFrom(opts, io.cwd);
      const r = await client.explain({
        from: opts.from,
        to: opts.to,
        method: opts.method,
        path: opts.path,
        headers,
      });
      io.out.write(opts.json ? json(r) : formatExplain(r));
    });
}
