// What telemetry costs (issue #8): the same HTTP/1.1 keep-alive traffic
// (wrk -c32, GET / -> 32 bytes) through two Weft sidecar pairs, one with
// telemetry off and one with access logs (--access-log FILE) and tracing
// (Mesh.tracing to a local OTLP/HTTP sink, sampling 1) on. Metrics are
// always on (every sidecar serves /metrics), so "off" means metrics only.
// Each pair has its own control plane (tracing is a mesh setting). Rounds
// are interleaved off, on, on, off, ... so the ratio holds on a noisy
// machine; the ratio is per round, then the median.
//
//   npm run build && node bench/telemetry.mjs [--quick]

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WeftClient } from "@weft/api/client";
import { machineInfo } from "./lib/machine.mjs";
import { cpuSeconds } from "./lib/procstat.mjs";
import { ensureTool, freePort, runWrk, spawnReady } from "./lib/tools.mjs";
import { ROOT, SIDECAR_READY, sidecarArgs, startBenchServer, writeResult } from "./lib/weft-server.mjs";

const QUICK = process.argv.includes("--quick");
const ROUNDS = QUICK ? 1 : 3;
const DURATION_S = QUICK ? 2 : 4;

ensureTool("wrk", "wrk");
const work = mkdtempSync(join(tmpdir(), "weft-bench-telemetry-"));
const children = [];

// An OTLP/HTTP receiver that reads and drops what it gets (counting bytes and posts).
const sink = { posts: 0, bytes: 0 };
const otlp = createServer((req, res) => {
  req.on("data", (c) => {
    sink.bytes += c.length;
  });
  req.on("end", () => {
    sink.posts++;
    res.writeHead(200, { "content-type": "application/json" });
    res.end("{}");
  });
});
await new Promise((ok) => otlp.listen(0, "127.0.0.1", ok));
const otlpUrl = `http://127.0.0.1:${otlp.address().port}/v1/traces`;

const servers = { off: await startBenchServer("telemetry-off"), on: await startBenchServer("telemetry-on") };
const cleanup = async () => {
  await Promise.all(children.reverse().map((c) => c.stop().catch(() => {})));
  for (const s of Object.values(servers)) s.stop();
  otlp.close();
  rmSync(work, { recursive: true, force: true });
};

try {
  const apps = await spawnReady(process.execPath, [join(ROOT, "bench/lib/apps.mjs")], {
    ready: /bench apps ready http=(\d+) h2=(\d+) grpc=(\d+) tcp=(\d+)/,
    what: "bench apps",
  });
  children.push(apps);
  const appPort = Number(apps.match[1]);

  /** A client and a server sidecar on `srv`; the client's upstream listens on the returned port. */
  const startPair = async (mode) => {
    const srv = servers[mode];
    const client = new WeftClient({ addr: srv.url, token: srv.token, timeoutMs: 30_000 });
    const resources = [{ kind: "Intention", name: "api", sources: [{ name: "web", action: "allow" }] }];
    if (mode === "on")
      resources.push({ kind: "Mesh", name: "mesh", tracing: { endpoint: otlpUrl, sampling: 1 } });
    await client.applyConfig(resources);
    const accessLog = mode === "on" ? ["--access-log", join(work, "access.log")] : [];
    const args = (service, extra) =>
      sidecarArgs(srv, { service, appPort, protocol: "http", extra: [...accessLog, ...extra] });
    const ready = SIDECAR_READY;
    const server = await spawnReady(process.execPath, args("api", []), {
      ready,
      what: `api (${mode})`,
      timeoutMs: 60_000,
    });
    children.push(server);
    const port = await freePort();
    const web = await spawnReady(process.execPath, args("web", ["--upstream", `api=${port}`]), {
      ready,
      what: `web (${mode})`,
      timeoutMs: 60_000,
    });
    children.push(web);
    // Until the pair answers (config streamed, endpoints known).
    for (let i = 0; i < 200; i++) {
      const ok = await fetch(`http://127.0.0.1:${port}/`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return { port, pids: [web.pid, server.pid] };
  };
  const pairs = { off: await startPair("off"), on: await startPair("on") };

  const rounds = [];
  const order = [];
  for (let i = 0; i < ROUNDS; i++) order.push(...(i % 2 === 0 ? ["off", "on"] : ["on", "off"]));
  for (const mode of ["off", "on"]) await runWrk({ port: pairs[mode].port, connections: 32, durationS: 1 }); // warm-up
  for (const mode of order) {
    const cpu0 = pairs[mode].pids.map(cpuSeconds);
    const r = await runWrk({ port: pairs[mode].port, connections: 32, durationS: DURATION_S });
    const cpu = pairs[mode].pids.map((p, i) => cpuSeconds(p) - cpu0[i]);
    const usPerReq = cpu.map((s) => Math.round(((s * 1e6) / Math.max(1, r.requests)) * 10) / 10);
    rounds.push({
      mode,
      rps: r.achievedRps,
      errors: r.errors,
      p99Ms: r.latencyMs.p99,
      cpuUsPerRequest: usPerReq,
    });
    console.log(`${mode}: ${r.achievedRps} req/s, CPU µs/req client/server ${usPerReq.join(" / ")}`);
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const byMode = (m) => rounds.filter((r) => r.mode === m);
  const ratios = [];
  for (let i = 0; i < ROUNDS; i++) ratios.push(byMode("on")[i].rps / byMode("off")[i].rps);
  const accessLines = (() => {
    try {
      return readFileSync(join(work, "access.log"), "utf8").split("\n").filter(Boolean).length;
    } catch {
      return 0;
    }
  })();
  // Spans still batched in the sidecars are not counted; what arrived shows tracing was on.
  const result = {
    date: new Date().toISOString(),
    machine: machineInfo(),
    mode: QUICK ? "quick" : "full",
    traffic: "HTTP/1.1 keep-alive GET / (32 B), wrk -c32, through a Weft sidecar pair",
    rounds,
    offRps: median(byMode("off").map((r) => r.rps)),
    onRps: median(byMode("on").map((r) => r.rps)),
    onVsOff: Math.round(median(ratios) * 1000) / 1000,
    offCpuUsPerRequest: [0, 1].map((i) => median(byMode("off").map((r) => r.cpuUsPerRequest[i]))),
    onCpuUsPerRequest: [0, 1].map((i) => median(byMode("on").map((r) => r.cpuUsPerRequest[i]))),
    accessLogLines: accessLines,
    otlpPosts: sink.posts,
    otlpBytes: sink.bytes,
  };
  console.log(
    `telemetry on (access logs + tracing, sampling 1) vs off (metrics only): ${result.onRps} vs ${result.offRps} req/s ` +
      `(ratio ${result.onVsOff}); CPU µs/req client/server ${result.onCpuUsPerRequest.join(" / ")} vs ` +
      `${result.offCpuUsPerRequest.join(" / ")}; ${accessLines} access log lines, ${sink.posts} OTLP posts`,
  );
  console.log(`written to ${writeResult("telemetry", result)}`);
} finally {
  await cleanup();
}
