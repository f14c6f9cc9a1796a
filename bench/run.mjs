// `npm run bench`: every benchmark, one after the other (never two at once:
// they would measure each other), then one summary with the headline tables
// and the issue's targets.
//   control plane: catalog-capacity at 1,000 and 10,000 instances (resident
//   memory), ca-identity (signings/s, handshakes), config-push (catalog
//   change -> proxies), intention-push (intention -> 10/100/1,000 proxies);
//   data plane: dataplane (direct vs Weft pair vs HAProxy pair), node-floor
//   (the Weft pair vs a bare Node.js relay pair of the same shape), telemetry
//   (access logs + tracing on vs off), proxyless (gRPC: direct, Weft pair,
//   HAProxy pair and proxyless grpc-js-xds with one generator).
// `--quick` (npm run bench -- --quick): about a minute, smaller counts and
// short runs; the figures are a smoke test, not the ones to quote.
// Writes bench/results/summary-<date>.json and .md and prints the markdown.
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { machineInfo } from "./lib/machine.mjs";
import { proxylessMarkdown } from "./lib/proxyless-report.mjs";
import { dataplaneMarkdown, targets, targetsTable } from "./lib/report.mjs";
import { ROOT, writeResult } from "./lib/weft-server.mjs";

const QUICK = process.argv.includes("--quick");
const extra = process.argv.slice(2).filter((a) => a !== "--quick");

// The existing control-plane benches take positional counts; ours take --quick.
const STEPS = [
  { key: "catalog1k", script: "catalog-capacity.mjs", args: ["1000"] },
  { key: "catalog10k", script: "catalog-capacity.mjs", args: ["10000"] },
  { key: "ca", script: "ca-identity.mjs", args: [] },
  { key: "configPush", script: "config-push.mjs", args: QUICK ? ["100", "3", "200"] : [] },
  { key: "intentionPush", script: "intention-push.mjs", args: QUICK ? ["--quick"] : [] },
  { key: "dataplane", script: "dataplane.mjs", args: [...(QUICK ? ["--quick"] : []), ...extra] },
  { key: "nodeFloor", script: "node-floor.mjs", args: QUICK ? ["--quick"] : [] },
  { key: "telemetry", script: "telemetry.mjs", args: QUICK ? ["--quick"] : [] },
  { key: "proxyless", script: "proxyless.mjs", args: QUICK ? ["--quick"] : [] },
];

function runStep(step) {
  return new Promise((ok) => {
    const t = performance.now();
    console.log(`\n== ${step.script} ${step.args.join(" ")}`);
    const p = spawn(process.execPath, [join(ROOT, "bench", step.script), ...step.args], {
      stdio: ["ignore", "pipe", "inherit"],
      cwd: ROOT,
    });
    let out = "";
    p.stdout.setEncoding("utf8").on("data", (c) => {
      out += c;
      process.stdout.write(c);
    });
    p.once("exit", (code) => {
      const files = [...out.matchAll(/(?:written to|wrote) (\S+\.json)/g)].map((m) => m[1]);
      const file = files[files.length - 1];
      let result;
      try {
        result = file ? JSON.parse(readFileSync(file, "utf8")) : undefined;
      } catch {
        result = undefined;
      }
      ok({ ...step, code, file, result, seconds: Math.round((performance.now() - t) / 100) / 10 });
    });
  });
}

const started = Date.now();
const done = {};
for (const step of STEPS) done[step.key] = await runStep(step);
const r = Object.fromEntries(Object.entries(done).map(([k, v]) => [k, v.result]));

const n = (x, d = 0) =>
  Number.isFinite(x)
    ? x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d })
    : "–";
const cpRows = [];
if (r.catalog1k)
  cpRows.push([
    "control plane resident memory, 1,000 instances",
    `${n(r.catalog1k.rssLoadedMb)} MB (idle ${n(r.catalog1k.rssIdleMb)} MB)`,
  ]);
if (r.catalog10k)
  cpRows.push([
    "control plane resident memory, 10,000 instances",
    `${n(r.catalog10k.rssLoadedMb)} MB; ${n(r.catalog10k.registrationsPerSecond)} registrations/s (fsynced)`,
  ]);
for (const x of r.intentionPush?.byProxies ?? [])
  cpRows.push([
    `intention applied -> ${n(x.proxies)} proxies have it`,
    `p50 ${n(x.latencyMs.p50, 1)} ms, p99 ${n(x.latencyMs.p99, 1)} ms, all ${n(x.toAllProxiesMs.median, 1)} ms (median of ${x.rounds}); via \`weft apply\` ${n(x.viaCli.toAllProxiesMs)} ms incl. CLI start-up`,
  ]);
if (r.configPush)
  cpRows.push([
    `catalog change -> ${n(r.configPush.proxies)} proxies (config-push)`,
    `p50 ${n(r.configPush.pushLatencyMs.p50, 1)} ms, p99 ${n(r.configPush.pushLatencyMs.p99, 1)} ms`,
  ]);
if (r.ca) {
  cpRows.push([
    "CA signings per second",
    `${n(r.ca.signing.perSecond)}/s (${r.ca.signing.concurrency} concurrent, fsynced), p99 ${n(r.ca.signing.p99Ms, 1)} ms`,
  ]);
  cpRows.push([
    "mTLS handshakes per second (Weft SVID checks vs Node TLS only)",
    `${n(r.ca.handshakes.weftMtlsPerSecond)}/s vs ${n(r.ca.handshakes.nodeTlsOnlyPerSecond)}/s`,
  ]);
}

const targetRows = targets({ dp: r.dataplane, catalog10k: r.catalog10k, intentionPush: r.intentionPush });
const failed = Object.values(done).filter((d) => d.code !== 0 || !d.result);
const cmd = `npm run bench${QUICK ? " -- --quick" : ""}`;
const md = [
  `# Weft benchmarks (${QUICK ? "quick" : "full"}): \`${cmd}\``,
  "",
  r.dataplane
    ? dataplaneMarkdown(r.dataplane, { withTargets: false })
    : "(the data-plane bench did not finish)",
  "",
  "## Control plane",
  "",
  "| what | measured |",
  "|---|---|",
  ...cpRows.map((x) => `| ${x.join(" | ")} |`),
  "",
  "## The Node.js floor (issue #6)",
  "",
  r.nodeFloor ? nodeFloorText(r.nodeFloor.summary) : "(the node-floor bench did not finish)",
  "",
  "## Telemetry (issue #8)",
  "",
  r.telemetry
    ? `HTTP/1.1 32 B, wrk -c32, through a Weft pair: access logs + tracing (sampling 1) on ${n(r.telemetry.onRps)} req/s vs off (metrics only) ${n(r.telemetry.offRps)} req/s, ratio ${r.telemetry.onVsOff}; CPU µs/request client / server ${r.telemetry.onCpuUsPerRequest.join(" / ")} vs ${r.telemetry.offCpuUsPerRequest.join(" / ")} (\`bench/telemetry.mjs\`).`
    : "(the telemetry bench did not finish)",
  "",
  "## Proxyless gRPC (issue #11)",
  "",
  r.proxyless ? proxylessMarkdown(r.proxyless, { heading: false }) : "(the proxyless bench did not finish)",
  "",
  "## Targets (issue #6)",
  "",
  targetsTable(targetRows),
  "",
  failed.length ? `Failed: ${failed.map((f) => `${f.script} (exit ${f.code})`).join(", ")}` : "",
  `Steps: ${Object.values(done)
    .map((d) => `${d.script} ${d.seconds} s`)
    .join(", ")}; total ${Math.round((Date.now() - started) / 1000)} s.`,
  "",
].join("\n");

const summary = {
  bench: "summary",
  date: new Date().toISOString(),
  quick: QUICK,
  command: cmd,
  machine: machineInfo(),
  files: Object.fromEntries(Object.entries(done).map(([k, v]) => [k, v.file?.replace(`${ROOT}/`, "")])),
  targets: targetRows,
  totalS: Math.round((Date.now() - started) / 1000),
};
const file = writeResult("summary", summary);
writeFileSync(file.replace(/\.json$/, ".md"), md);
console.log(`\n${md}`);
console.log(`wrote ${file} (and .md)`);
process.exit(failed.length ? 1 : 0);

/** The node-floor bench in one paragraph: both floors, both Weft hops, and what the HTTP/1.1 hop buys. */
function nodeFloorText(f) {
  const n = (x) => Math.round(x).toLocaleString("en-US");
  const pair = (p) => `${n(p.rps)} req/s at ${p.clientProxyUs} / ${p.serverProxyUs} µs`;
  return (
    "HTTP/1.1 32 B, wrk -c32, interleaved, CPU per request client / server: a bare Node.js relay pair with " +
    "Weft's shape (node:http -> mTLS -> undici to the app; `bench/lib/floor-relay.mjs`) " +
    `${pair(f.floor)} with HTTP/1.1 between its sides, ${pair(f["floor-h2"])} with HTTP/2; ` +
    `the same relay hand-parsed on bare sockets (no node:http, no undici) ${pair(f["floor-raw"])}; ` +
    `the Weft pair ${pair(f.weft)} (HTTP/1.1 mesh hop: ${f.weftOverFloor.clientProxy}× / ` +
    `${f.weftOverFloor.serverProxy}× the node:http floor, ${f.weftOverRaw.clientProxy}× / ` +
    `${f.weftOverRaw.serverProxy}× the raw one), ${pair(f["weft-h2"])} with WEFT_PEER_HTTP1=0 ` +
    `(${f.weftOverFloorH2.clientProxy}× / ${f.weftOverFloorH2.serverProxy}× its floor); the HTTP/1.1 hop costs Weft ` +
    `${f.weftH1OverH2.clientProxy}× / ${f.weftH1OverH2.serverProxy}× the CPU of the HTTP/2 hop for ` +
    `${f.weftH1OverH2.throughput}× the throughput (\`bench/node-floor.mjs\`).`
  );
}
