/**
 * `weft explain --from web --to api [--method M] [--path P] [--header k=v]`:
 * asks the control plane (`GET /v1/explain`) what the mesh would do with
 * that request and prints it, decision first, then the path, the listener
 * and split, the destination's routes as tried and the one taken, each
 * cluster the request can reach with its instances, timeouts, failover and
 * the cluster serving its traffic now, and notes. `--json` prints the API
 * answer as is. When the caller or the destination has proxyless gRPC
 * instances, a section shows them with their xDS state (connected, ACKed
 * versions, refused updates with the client's message; explain-xds.ts,
 * which also holds `weft xds`).
 * A denied request is a successful explanation: exit 0.
 */
import type { ExplainCluster, ExplainResponse, ExplainRoute, ExplainRouteAction } from "@weft/api";
import { WeftError } from "@weft/core";
import type { Command } from "commander";
import { type ClientFlags, clientFrom, withClientOptions } from "../client-options.js";
import type { Io } from "../io.js";
import { json } from "../output.js";
import { formatProxyless, registerXdsCommand } from "./explain-xds.js";

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
  const taken = r.route?.taken;
  // A redirect or direct response is answered by the calling sidecar: the destination never decides.
  if (taken?.action.kind === "redirect") {
    return `ANSWERED by the calling sidecar: ${taken.action.status} redirect to ${taken.action.location} (${taken.description})`;
  }
  if (taken?.action.kind === "directResponse") {
    return `ANSWERED by the calling sidecar: ${taken.action.status} (${taken.description})`;
  }
  return verdict(r);
}

function verdict(r: ExplainResponse): string {
  const d = r.decision;
  if (d.allow) return d.reason.startsWith("intention ") ? `ALLOWED by ${d.reason}` : `ALLOWED: ${d.reason}`;
  return `DENIED: ${d.reason} (the destination's proxy answers ${d.status ?? 403})`;
}

/** How a listed cluster gets traffic: by weight of a split, as the only target, or as a failover cluster. */
type Role = { kind: "split"; weight: number } | { kind: "target" } | { kind: "failover"; of: string[] };

function title(c: ExplainCluster, role: Role): string {
  if (role.kind === "failover") return `cluster ${c.name} (failover of ${role.of.join(", ")})`;
  if (role.kind === "target") return `cluster ${c.name}`;
  return role.weight === 0
    ? `cluster ${c.name} (the default cluster: no traffic while the split applies)`
    : `cluster ${c.name} (weight ${role.weight}%)`;
}

function clusterLines(c: ExplainCluster, role: Role): string[] {
  const out = [title(c, role)];
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
  if (c.failover !== undefined && c.failover.length > 0) out.push(`  failover: ${c.failover.join(", ")}`);
  if (c.servedBy !== undefined && c.servedBy !== c.name) {
    out.push(`  traffic now served by ${c.servedBy} (failover)`);
  }
  for (const n of c.notes) out.push(`  note: ${n}`);
  return out;
}

function actionLines(a: ExplainRouteAction): string[] {
  if (a.kind === "redirect")
    return [`redirect: the calling sidecar answers ${a.status}, Location ${a.location}`];
  if (a.kind === "directResponse") return [`direct response: the calling sidecar answers ${a.status}`];
  const out = [
    a.splits
      ? `forward, split by weight: ${a.splits.map((t) => `${t.cluster} ${t.weight}%`).join(", ")}`
      : `forward to ${a.cluster}`,
  ];
  if (a.path !== null) out.push(`path rewritten to ${a.path}`);
  if (a.hostRewrite !== null) out.push(`host rewritten to ${a.hostRewrite}`);
  if (a.timeoutMs !== null) out.push(`request timeout ${ms(a.timeoutMs)} (the route's)`);
  if (a.idleTimeoutMs !== null) out.push(`idle timeout ${ms(a.idleTimeoutMs)} (the route's)`);
  if (a.retries !== null) out.push(`retries (the route's): ${JSON.stringify(a.retries)}`);
  if (a.fault !== null) out.push(`fault: ${JSON.stringify(a.fault)}`);
  if (a.mirror !== null) out.push(`mirror ${a.mirror.percent}% to ${a.mirror.cluster} (responses ignored)`);
  if (a.requestHeaders !== null) out.push(`request headers: ${JSON.stringify(a.requestHeaders)}`);
  if (a.responseHeaders !== null) out.push(`response headers: ${JSON.stringify(a.responseHeaders)}`);
  return out;
}

function routeLines(to: string, r: ExplainRoute | null | undefined): string[] {
  if (r === undefined) return [];
  if (r === null) return [`routes: none (no Route ${q(to)})`];
  const out = [`routes (Route ${q(to)}: ${r.count}, first match wins):`];
  if (r.tried.length === 0) out.push("  none tried: the calling sidecar refuses the path (400)");
  for (const t of r.tried)
    out.push(`  ${t.matched ? "=>" : " -"} ${t.description}${t.matched ? "" : ": no match"}`);
  if (r.taken === null) {
    if (r.tried.length > 0)
      out.push("  no route matched: the split or the default cluster takes the request");
  } else {
    for (const l of actionLines(r.taken.action)) out.push(`     ${l}`);
  }
  return out;
}

/** Each listed cluster's role: a target of the route taken (else the listener), or a failover cluster. */
function roles(r: ExplainResponse): Map<string, Role> {
  const a = r.route?.taken?.action;
  const forward = a?.kind === "forward" ? a : undefined;
  const cluster = forward ? forward.cluster : r.listener.cluster;
  const splits = forward ? forward.splits : (r.listener.split?.targets ?? null);
  const out = new Map<string, Role>();
  if (splits !== null && splits.length > 0) {
    out.set(cluster, { kind: "split", weight: 0 });
    for (const t of splits) {
      const w = out.get(t.cluster);
      out.set(t.cluster, { kind: "split", weight: (w?.kind === "split" ? w.weight : 0) + t.weight });
    }
  } else {
    out.set(cluster, { kind: "target" });
  }
  for (const c of r.clusters) {
    if (out.has(c.name)) continue;
    const of = r.clusters.filter((x) => x.failover?.includes(c.name)).map((x) => x.name);
    out.set(c.name, of.length > 0 ? { kind: "failover", of } : { kind: "target" });
  }
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
  lines.push(
    r.destination !== undefined && r.destination !== r.to
      ? `authorization (by the sidecars of ${q(r.destination)}, which receive the request):`
      : "authorization:",
  );
  lines.push(
    `  ${d.level === "tcp" ? "per connection (TCP: method, path and headers are not seen)" : "per request (HTTP)"}; intention ${q(r.destination ?? r.to)} ${d.intention ? "exists" : "does not exist"}; default policy ${d.defaultAction}`,
  );
  const answered =
    r.route?.taken !== undefined && r.route?.taken !== null && r.route.taken.action.kind !== "forward";
  if (answered) lines.push(`  were the request to reach ${q(r.destination ?? r.to)}: ${verdict(r)}`);
  for (const p of d.permissions ?? []) {
    const mark = d.rule.kind === "permission" && d.rule.index === p.index ? "=>" : p.matches ? " +" : " -";
    lines.push(
      `  ${mark} permission[${p.index}] ${p.action} ${p.description}${p.matches ? "" : ": no match"}`,
    );
  }
  lines.push("");
  const l = r.listener;
  lines.push(`upstream listener ${l.service} (${l.protocol}): default cluster ${l.cluster}`);
  if (l.split) {
    lines.push(`  split (${l.split.choice}):`);
    for (const t of l.split.targets) lines.push(`    ${t.cluster}  ${t.weight}%`);
  } else {
    lines.push(
      r.route
        ? "  no split: requests no route takes go to the default cluster"
        : "  no split: every request goes to the default cluster",
    );
  }
  const route = routeLines(r.to, r.route);
  if (route.length > 0) lines.push("", ...route);
  const role = roles(r);
  for (const c of r.clusters) {
    lines.push("");
    lines.push(...clusterLines(c, role.get(c.name) ?? { kind: "target" }));
  }
  const proxyless = formatProxyless(r.proxyless);
  if (proxyless.length > 0) lines.push("", ...proxyless);
  lines.push("");
  lines.push("notes:");
  for (const [k, v] of Object.entries(r.notes)) {
    // The proxyless section above says the same, node by node.
    if (k === "proxyless" && proxyless.length > 0) continue;
    lines.push(`  ${k}: ${v}`);
  }
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
  registerXdsCommand(program, io);
}
