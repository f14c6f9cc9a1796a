// Markdown for bench/proxyless.mjs results (issue #11): the proxyless gRPC
// line next to direct (plaintext and mTLS), the Weft sidecar pair and the
// HAProxy pair, from the result's `summary`. Used by proxyless.mjs and by
// run.mjs for the summary.

const n = (x, d = 0) =>
  x === undefined || x === null || !Number.isFinite(x)
    ? "–"
    : x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
const ratio = (x) => (Number.isFinite(x) ? `${n(x, 2)}×` : "–");
const signed = (x) => (Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${x.toFixed(2)}` : "–");
const table = (head, rows) =>
  [
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
const proxies = (s) =>
  s.clientProxyUs === null || s.clientProxyUs === undefined
    ? "–"
    : `${n(s.clientProxyUs, 1)} / ${n(s.serverProxyUs, 1)}`;

/** The closed-loop table: calls/s, ratios to direct and to the Weft pair, latency, CPU µs per call. */
export function proxylessMaxTable(px) {
  const s = px.summary.maxThroughput;
  const rows = px.lines
    .filter((l) => s[l.id])
    .map((l) => {
      const x = s[l.id];
      return [
        l.title,
        x.rpsRange?.length === 2 && x.rpsRange[0] !== x.rpsRange[1]
          ? `${n(x.rps)} (${n(x.rpsRange[0])}–${n(x.rpsRange[1])})`
          : n(x.rps),
        l.id === "direct" ? "1.00×" : ratio(x.vsDirect),
        l.id === "weft" ? "1.00×" : ratio(x.vsWeft),
        [x.p50, x.p90, x.p99].map((v) => n(v, 2)).join(" / "),
        n(x.generatorUs, 1),
        n(x.appUs, 1),
        proxies(x),
        n(x.totalUs, 1),
        String(x.errors),
      ];
    });
  return table(
    [
      `line (closed loop, ${px.config.concurrency} calls outstanding on ${px.config.channels} connections)`,
      "calls/s (range over rounds)",
      "of direct",
      "of Weft pair",
      "p50 / p90 / p99 ms",
      "CPU µs/call generator",
      "app",
      "client / server proxy",
      "all",
      "errors",
    ],
    rows,
  );
}

/** The fixed-rate table: latency and the latency added over direct plaintext, CPU per call and vCPU. */
export function proxylessRateTable(px) {
  const s = px.summary.fixedRate;
  if (!s) return "(no fixed-rate runs)";
  const rows = px.lines
    .filter((l) => s[l.id])
    .map((l) => {
      const x = s[l.id];
      return [
        l.title,
        ["p50", "p90", "p99", "p999"].map((k) => n(x[k], 2)).join(" / "),
        l.id === "direct" ? "" : ["p50", "p90", "p99", "p999"].map((k) => signed(x.addedMs?.[k])).join(" / "),
        n(x.generatorUs, 1),
        n(x.appUs, 1),
        proxies(x),
        x.proxyVcpu ? `${n(x.proxyVcpu.clientProxy, 3)} / ${n(x.proxyVcpu.serverProxy, 3)}` : "–",
        String(x.errors),
      ];
    });
  return table(
    [
      `line at ${n(px.config.rate)} calls/s (open loop)`,
      "p50 / p90 / p99 / p99.9 ms",
      "added over direct p50 / p90 / p99 / p99.9 ms",
      "CPU µs/call generator",
      "app",
      "client / server proxy",
      "vCPU client / server proxy",
      "errors",
    ],
    rows,
  );
}

/** Both tables with what was measured and how; `heading` false leaves out the title (the summary has its own). */
export function proxylessMarkdown(px, { heading = true } = {}) {
  const c = px.config;
  const busy = Number.isFinite(px.summary.otherLoadCoresMax) && px.summary.otherLoadCoresMax > 0.25;
  return [
    heading
      ? `## Proxyless gRPC vs sidecars (issue #11)${px.quick ? " — quick run, not figures to quote" : ""}\n`
      : "",
    `gRPC unary \`/bench.Bench/Echo\` (32 B, raw codec) from one generator for every line (\`bench/lib/grpc-load.mjs\`, grpc-js ${px.versions?.grpcJs ?? ""}, grpc-js-xds ${px.versions?.grpcJsXds ?? ""}); ` +
      `interleaved rounds (${c.rounds} × ${c.durationS} s closed loop, ${c.rateRounds} × ${c.rateDurationS} s at ${n(c.rate)}/s), medians; ratios per round, then the median. ` +
      "CPU µs per call from /proc over the measured window (the generator: its own process.cpuUsage).",
    "",
    proxylessMaxTable(px),
    "",
    proxylessRateTable(px),
    "",
    px.skipped?.length ? `Skipped: ${px.skipped.map((s) => `${s.line} (${s.reason})`).join("; ")}` : "",
    px.crashes?.length ? `Crashes: ${px.crashes.map((c) => `${c.what} during ${c.during}`).join("; ")}` : "",
    busy
      ? `Other work on the machine used up to ${n(px.summary.otherLoadCoresMax, 2)} cores during some runs: absolute figures are noisy.`
      : "",
  ]
    .filter((x, i, a) => x !== "" || (i > 0 && a[i - 1] !== ""))
    .join("\n");
}
