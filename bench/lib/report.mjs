// Markdown for the bench results: the data-plane tables, the control-plane
// figures and the issue's targets (met or missed), from the JSON results.

const n = (x, d = 0) =>
  x === undefined || x === null || !Number.isFinite(x)
    ? "–"
    : x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
const pct = (x) => (Number.isFinite(x) ? `${Math.round(x * 100)} %` : "–");
const ms = (x) => n(x, 2);
const signed = (x) => (Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${x.toFixed(2)}` : "–");
const table = (head, rows) =>
  [
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");

export function maxThroughputTable(dp) {
  if (dp.maxThroughput.length === 0) return "(no maximum-throughput runs)";
  const hasHap = dp.maxThroughput.some((sc) => sc.runs.some((r) => r.topology === "haproxy"));
  const head = [
    "traffic (closed loop)",
    "direct req/s",
    "Weft pair req/s (of direct)",
    ...(hasHap ? ["HAProxy pair req/s (of direct)", "Weft / HAProxy"] : []),
    "CPU µs/req per proxy, Weft client / server",
    ...(hasHap ? ["HAProxy client / server", "Weft / HAProxy CPU"] : []),
    "p99 ms direct / Weft" + (hasHap ? " / HAProxy" : ""),
    "errors",
  ];
  const rows = dp.maxThroughput.map((sc) => {
    const s = dp.summary.maxThroughput[sc.id];
    const errors = s.direct.errors + s.weft.errors + (s.haproxy?.errors ?? 0);
    return [
      `${sc.title} (${sc.tool === "node" ? "loadgen.mjs" : sc.tool} ${sc.connections ? `-c${sc.connections}` : `-c${sc.clients} -m${sc.streams}`})`,
      n(s.direct.rps),
      `${n(s.weft.rps)} (${pct(s.weftVsDirect)})`,
      ...(hasHap ? [`${n(s.haproxy.rps)} (${pct(s.haproxyVsDirect)})`, n(s.weftVsHaproxy, 2)] : []),
      `${n(s.weft.clientProxyUs, 1)} / ${n(s.weft.serverProxyUs, 1)}`,
      ...(hasHap
        ? [
            `${n(s.haproxy.clientProxyUs, 1)} / ${n(s.haproxy.serverProxyUs, 1)}`,
            `${n(s.weftCpuVsHaproxy, 1)}×`,
          ]
        : []),
      [s.direct.p99, s.weft.p99, ...(hasHap ? [s.haproxy.p99] : [])].map(ms).join(" / "),
      String(errors),
    ];
  });
  return table(head, rows);
}

/**
 * Each proxy's CPU per request split into user space and kernel (stime): how
 * much of a gap is the proxy's own work and how much its syscalls. Runs from
 * before the split was recorded have no kernel figures: no table.
 */
export function cpuSplitTable(dp) {
  const sums = Object.values(dp.summary.maxThroughput);
  if (!sums.some((s) => Number.isFinite(s.weft?.clientProxyKernelUs))) return "";
  const hasHap = sums.some((s) => s.haproxy);
  const split = (total, kernel) =>
    Number.isFinite(kernel) ? `${n(total - kernel, 1)} + ${n(kernel, 1)}` : "–";
  const head = [
    "CPU µs/req, user + kernel",
    "Weft client",
    "Weft server",
    ...(hasHap ? ["HAProxy client", "HAProxy server"] : []),
  ];
  const rows = dp.maxThroughput.map((sc) => {
    const s = dp.summary.maxThroughput[sc.id];
    const of = (t) => [
      split(s[t]?.clientProxyUs, s[t]?.clientProxyKernelUs),
      split(s[t]?.serverProxyUs, s[t]?.serverProxyKernelUs),
    ];
    return [sc.title, ...of("weft"), ...(hasHap ? of("haproxy") : [])];
  });
  return table(head, rows);
}

export function fixedRateTable(dp) {
  if (dp.fixedRate.length === 0) return "(no fixed-rate runs)";
  const hasHap = dp.fixedRate.some((sc) => sc.runs.some((r) => r.topology === "haproxy"));
  const head = [
    "traffic at a fixed rate (open loop)",
    "direct p50 / p90 / p99 / p99.9 ms",
    "Weft added p50 / p90 / p99 / p99.9 ms",
    ...(hasHap ? ["HAProxy added p50 / p90 / p99 / p99.9 ms"] : []),
    "vCPU per proxy, Weft client / server",
    ...(hasHap ? ["HAProxy client / server"] : []),
    "errors",
  ];
  const rows = dp.fixedRate.map((sc) => {
    const s = dp.summary.fixedRate[sc.id];
    const added = (t) => ["p50", "p90", "p99", "p999"].map((k) => signed(s[t].addedMs[k])).join(" / ");
    const vcpu = (t) => `${n(s[t].proxyVcpu.clientProxy, 3)} / ${n(s[t].proxyVcpu.serverProxy, 3)}`;
    const errors = s.direct.errors + s.weft.errors + (s.haproxy?.errors ?? 0);
    return [
      `${sc.title} (${n(sc.rate)}/s)`,
      ["p50", "p90", "p99", "p999"].map((k) => ms(s.direct[k])).join(" / "),
      added("weft"),
      ...(hasHap ? [added("haproxy")] : []),
      vcpu("weft"),
      ...(hasHap ? [vcpu("haproxy")] : []),
      String(errors),
    ];
  });
  return table(head, rows);
}

export function memoryTable(dp) {
  const i = dp.memory.idle;
  const l = dp.memory.loaded;
  const rows = [
    ["Weft client sidecar", n(i.weftClientSidecarMb, 1), n(l.weftClientSidecarMb, 1)],
    ["Weft server sidecar (HTTP)", n(i.weftServerSidecarMb.http, 1), n(l.weftServerSidecarMb, 1)],
    ["Weft sidecar, largest in any run", "", n(l.weftAnyRunMaxMb, 1)],
  ];
  if (i.haproxyClientMb !== undefined) {
    rows.push(
      ["HAProxy client side (all routes)", n(i.haproxyClientMb, 1), n(l.haproxyClientMb, 1)],
      ["HAProxy server side (all routes)", n(i.haproxyServerMb, 1), n(l.haproxyServerMb, 1)],
    );
  }
  const out = table(["resident memory (MB)", "idle", "under HTTP/1.1 max load"], rows);
  if (!i.detail || !l.detail) return out;
  // RSS counts the node binary's pages, shared by every Node.js process on the host; PSS splits them.
  const d = (x) => (x ? `${n(x.rssMb, 1)} / ${n(x.pssMb, 1)} / ${n(x.privateMb, 1)}` : "–");
  const detailRows = [
    ["Weft client sidecar", d(i.detail.weftClientSidecar), d(l.detail.weftClientSidecar)],
    ["Weft server sidecar (HTTP)", d(i.detail.weftServerSidecarHttp), d(l.detail.weftServerSidecarHttp)],
  ];
  if (i.detail.haproxyClient) {
    detailRows.push(
      ["HAProxy client side", d(i.detail.haproxyClient), d(l.detail.haproxyClient)],
      ["HAProxy server side", d(i.detail.haproxyServer), d(l.detail.haproxyServer)],
    );
  }
  return `${out}\n\n${table(["RSS / PSS / private (MB)", "idle", "after the HTTP/1.1 max runs"], detailRows)}\n\nPSS charges each process its share of pages it shares with others (chiefly the node binary, about 44 MB, shared by every sidecar on a host); private is the anonymous memory one more sidecar adds.`;
}

function oneProfile(p) {
  const parts = [
    `### Where the Weft sidecars spend CPU: node --cpu-prof, ${{ h2: "HTTP/2 (h2c)", grpc: "gRPC unary" }[p.load.traffic] ?? "HTTP/1.1 keep-alive"} GET ${p.load.path ?? "/"}, ${p.load.generator ?? "wrk -c32"}, ${p.load.durationS} s, ${n(p.load.rps)} req/s`,
  ];
  for (const side of ["client", "server"]) {
    const s = p[side];
    if (!s || s.error) {
      parts.push(`${side}: ${s?.error ?? "no profile"}`);
      continue;
    }
    parts.push(
      `\n${side} sidecar: ${n(s.busyMs)} ms busy of ${n(s.totalMs)} ms. Top self time (% of busy):\n\n` +
        table(
          ["function", "where", "self ms", "%"],
          s.functions.slice(0, 15).map((f) => [`\`${f.name}\``, f.where || "", n(f.selfMs, 1), n(f.pct, 1)]),
        ) +
        (s.categories
          ? `\n\nBy kind: ${s.categories.map((c) => `${c.category} ${n(c.pct, 1)} %`).join(", ")}`
          : "") +
        `\n\nBy file: ${s.files
          .slice(0, 10)
          .map((f) => `${f.file} ${n(f.pct, 1)} %`)
          .join(", ")}`,
    );
  }
  return parts.join("\n");
}

export function profileSection(dp) {
  if (!dp.profile) return "";
  // Older results held one profile at the top level.
  const ps = dp.profile.client ? [dp.profile] : Object.values(dp.profile);
  return ps.map(oneProfile).join("\n\n");
}

export function dataplaneMarkdown(dp, { withTargets = true } = {}) {
  const m = dp.machine;
  const other = Object.values(dp.summary.maxThroughput).flatMap((s) =>
    ["direct", "weft", "haproxy"].map((t) => s[t]?.otherLoadCores ?? 0),
  );
  const noisy = Math.max(0, ...other.filter(Number.isFinite));
  return [
    `## Data plane: direct vs Weft sidecar pair vs HAProxy pair (${dp.quick ? "quick" : "full"} run, ${dp.date})`,
    "",
    `${m.cpus} × ${m.cpuModel}, ${n(m.memoryMb / 1024, 0)} GiB, ${m.os}, Node ${m.node}, commit ${m.commit?.slice(0, 10)}${m.localChanges ? " (with local changes)" : ""}; ` +
      `HAProxy ${dp.tools.haproxy ?? "–"} (nbthread 1), wrk ${dp.tools.wrk?.replace(/^wrk /, "") ?? "–"}, h2load ${dp.tools.h2load ?? "–"}. ` +
      `Everything on 127.0.0.1; mTLS is TLS 1.3 with ECDSA P-256 certificates from Weft's CA on both pairs. ` +
      `CPU per request is utime+stime from /proc of each proxy process over the run, per completed request (kernel interrupt time, much of loopback TCP's receive path, is charged to no process and left out for every topology). ` +
      `Medians of ${dp.config.rounds} interleaved rounds of ${dp.config.durationS} s (fixed rate: ${dp.config.rateRounds} × ${dp.config.rateDurationS} s); ratios are per round, then the median.` +
      (noisy > 0.15
        ? ` Other processes on the machine used up to ${noisy.toFixed(2)} cores during some runs: expect noise, trust the interleaved ratios more than absolute numbers.`
        : ""),
    "",
    maxThroughputTable(dp),
    "",
    cpuSplitTable(dp),
    "",
    `Fixed rate: ${dp.fixedRateGenerator}. "Added" is the latency percentile minus direct's, round by round. ` +
      `The generator's timer lag (Node timers, ~1 ms resolution; p50 ≈ ${ms(median(Object.values(dp.summary.fixedRate).map((s) => s.direct.timerLagP50)))} ms) is in every topology's figures and cancels out of "added".`,
    "",
    fixedRateTable(dp),
    "",
    memoryTable(dp),
    "",
    crashSection(dp),
    withTargets ? targetsTable(targets({ dp })) : "",
    "",
    profileSection(dp),
    "",
  ].join("\n");
}

function crashSection(dp) {
  const c = dp.crashes ?? [];
  const failedRuns = [...dp.maxThroughput, ...dp.fixedRate].flatMap((sc) =>
    sc.runs
      .filter((r) => r.failed)
      .map((r) => `${sc.id} ${r.topology} round ${r.round}: ${r.failed.split("\n")[0]}`),
  );
  if (c.length === 0 && failedRuns.length === 0) return "";
  const lines = [
    `**${c.length} process(es) exited unexpectedly while measuring** (restarted before the next run):`,
    "",
  ];
  for (const x of c) {
    const err = x.stderrTail
      .split("\n")
      .filter((l) => l.trim())
      .slice(-6)
      .map((l) => `    ${l.slice(0, 300)}`)
      .join("\n");
    lines.push(
      `- ${x.what}, exit ${x.code ?? x.signal}, during ${x.during}; stderr ends with:`,
      "",
      err || "    (empty)",
      "",
    );
  }
  if (failedRuns.length) lines.push("Failed runs:", "", ...failedRuns.map((f) => `- ${f}`), "");
  return lines.join("\n");
}

function median(xs) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[s.length >> 1] : Number.NaN;
}

/**
 * The issue's targets against the results; any input may be missing.
 * -> [{target, value, met: true | false | null}]
 */
export function targets({ dp, catalog10k, intentionPush }) {
  const out = [];
  const add = (target, value, met) => out.push({ target, value, met: value === "–" ? null : met });
  const http = dp?.summary.maxThroughput.http1;
  const at1k = dp?.summary.fixedRate["http1@1000"];
  const tcp = dp?.summary.maxThroughput.tcp;
  const l4http = dp?.summary.maxThroughput["http1-l4"];
  if (http?.weftVsHaproxy !== undefined) {
    add(
      "L7 HTTP/1.1 throughput ≥ 50 % of the HAProxy pair's",
      pct(http.weftVsHaproxy),
      http.weftVsHaproxy >= 0.5,
    );
    const perSidecar = Math.max(
      http.weft.clientProxyUs / http.haproxy.clientProxyUs,
      http.weft.serverProxyUs / http.haproxy.serverProxyUs,
    );
    add(
      "CPU per request per sidecar ≤ 2.5× HAProxy's",
      `client ${n(http.weft.clientProxyUs, 1)} vs ${n(http.haproxy.clientProxyUs, 1)} µs, server ${n(http.weft.serverProxyUs, 1)} vs ${n(http.haproxy.serverProxyUs, 1)} µs (worst ${n(perSidecar, 1)}×)`,
      perSidecar <= 2.5,
    );
  }
  if (at1k?.weft) {
    const a = at1k.weft.addedMs;
    add("added latency at 1,000 req/s p50 ≤ 0.3 ms", `${signed(a.p50)} ms`, a.p50 <= 0.3);
    add("added latency at 1,000 req/s p99 ≤ 1 ms", `${signed(a.p99)} ms`, a.p99 <= 1);
    const v = Math.max(at1k.weft.proxyVcpu.clientProxy, at1k.weft.proxyVcpu.serverProxy);
    add(
      "≤ 0.1 vCPU per sidecar at 1,000 req/s",
      `client ${n(at1k.weft.proxyVcpu.clientProxy, 3)}, server ${n(at1k.weft.proxyVcpu.serverProxy, 3)}`,
      v <= 0.1,
    );
  }
  if (tcp?.weftVsHaproxy !== undefined) {
    add(
      "L4 TCP throughput ≥ 80 % of HAProxy's L4",
      `${pct(tcp.weftVsHaproxy)} (TCP echo)${l4http?.weftVsHaproxy !== undefined ? `; ${pct(l4http.weftVsHaproxy)} (HTTP/1.1 over L4)` : ""}`,
      tcp.weftVsHaproxy >= 0.8 && (l4http?.weftVsHaproxy ?? 1) >= 0.8,
    );
  }
  if (dp) {
    const idle = Math.max(
      dp.memory.idle.weftClientSidecarMb,
      ...Object.values(dp.memory.idle.weftServerSidecarMb),
    );
    const pss = dp.memory.idle.detail?.weftClientSidecar;
    add(
      "idle sidecar ≤ 40 MB resident",
      `${n(idle, 1)} MB (largest idle sidecar)${pss ? `; client sidecar PSS ${n(pss.pssMb, 1)} MB, private ${n(pss.privateMb, 1)} MB` : ""}`,
      idle <= 40,
    );
    const loaded = dp.memory.loaded.weftAnyRunMaxMb;
    add("loaded sidecar ≤ 60 MB resident", `${n(loaded, 1)} MB (largest seen in any run)`, loaded <= 60);
  }
  if (catalog10k) {
    add(
      "control plane with 10,000 instances ≤ 300 MB",
      `${n(catalog10k.rssLoadedMb)} MB`,
      catalog10k.rssLoadedMb <= 300,
    );
  }
  const k = intentionPush?.byProxies?.find((x) => x.proxies === 1000);
  if (k)
    add(
      "an intention reaches 1,000 proxies in ≤ 1 s (p99)",
      `${n(k.latencyMs.p99)} ms`,
      k.latencyMs.p99 <= 1000,
    );
  return out;
}

export function targetsTable(rows) {
  return table(
    ["target (issue #6)", "measured", "met"],
    rows.map((r) => [r.target, r.value, r.met === null ? "–" : r.met ? "yes" : "**no**"]),
  );
}
