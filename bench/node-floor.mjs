// The platform floor next to the Weft pair: how much of a Weft sidecar's
// CPU per request is Node.js itself. Five paths carry the same HTTP/1.1
// keep-alive traffic (wrk -c32, 32 B responses) in interleaved rounds:
//   direct     wrk -> app
//   floor      wrk -> floor front -> HTTP/1.1 over mTLS -> floor back -> app
//              (node:http servers, undici clients)
//   floor-raw  the same relay with no node:http and no undici: hand-parsed
//              HTTP/1.1 on net/tls sockets, nothing else (the least a Node
//              relay of this shape can do)
//   weft       wrk -> client sidecar -> HTTP/1.1 over mTLS -> server sidecar -> app
//   floor-h2   the floor pair with one HTTP/2 session between its two sides
//   weft-h2    the Weft pair with WEFT_PEER_HTTP1=0 (HTTP/2 between the sidecars)
// (bench/lib/floor-relay.mjs: Weft's architecture, none of its features)
// and reports req/s and CPU µs per request of each proxy. Weft's own cost is
// the difference between its pair and the floor pair of the same hop; the
// rest is what any Node.js proxy of this shape pays on this machine. The two
// hops side by side show what the HTTP/1.1 mesh hop buys.
//
//   node bench/node-floor.mjs [--quick]
// BENCH_PROXY_NODE_FLAGS="--cpu-prof --cpu-prof-dir=DIR" profiles every proxy.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WeftClient } from "@weft/api/client";
import { issueFromWeftCa } from "./lib/certs.mjs";
import { machineInfo } from "./lib/machine.mjs";
import { probeUntilOk } from "./lib/probe.mjs";
import { cpuSeconds, memoryMb } from "./lib/procstat.mjs";
import { ensureTool, freePort, runWrk, spawnReady } from "./lib/tools.mjs";
import { ROOT, SIDECAR_READY, sidecarArgs, startBenchServer, writeResult } from "./lib/weft-server.mjs";

const QUICK = process.argv.includes("--quick");
const CFG = QUICK ? { rounds: 2, durationS: 2, warmupS: 1 } : { rounds: 5, durationS: 5, warmupS: 1 };
const CONNECTIONS = 32;
const PROXY_FLAGS = (process.env.BENCH_PROXY_NODE_FLAGS ?? "").split(" ").filter(Boolean);

const wrk = ensureTool("wrk", "wrk");
if (wrk.skip) {
  console.log(`node-floor bench skipped: ${wrk.skip}`);
  process.exit(0);
}

const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const r1 = (x) => Math.round(x * 10) / 10;

const work = mkdtempSync(join(tmpdir(), "weft-bench-floor-"));
const srv = await startBenchServer("node-floor", QUICK ? 180_000 : 600_000);
const procs = [];
const spawn = async (args, ready, what, flags = [], env = undefined) => {
  const p = await spawnReady(process.execPath, [...flags, ...args], {
    ready,
    what,
    timeoutMs: 60_000,
    ...(env ? { env } : {}),
  });
  procs.push(p);
  return p;
};

try {
  const client = new WeftClient({ addr: srv.url, token: srv.token, timeoutMs: 30_000 });
  const { trustDomain } = await client.caRoots();
  await client.applyConfig([
    { kind: "Intention", name: "floor-http", sources: [{ name: "floor-client", action: "allow" }] },
  ]);
  const apps = await spawn(
    [join(ROOT, "bench/lib/apps.mjs")],
    /bench apps ready http=(\d+) h2=(\d+) grpc=(\d+) tcp=(\d+)/,
    "bench apps",
  );
  const appPort = Number(apps.match[1]);

  // The floor pairs, with certificates from Weft's CA.
  const back = await issueFromWeftCa(client, work, "floor-back", trustDomain);
  const front = await issueFromWeftCa(client, work, "floor-front", trustDomain);
  const relay = join(ROOT, "bench/lib/floor-relay.mjs");
  const floorReady = /floor ready port=(\d+)/;
  const floorPair = async (hop) => {
    const b = await spawn(
      [relay, "back", "0", String(appPort), back.crt, back.ca, hop],
      floorReady,
      `floor back ${hop}`,
      PROXY_FLAGS,
    );
    const f = await spawn(
      [relay, "front", "0", b.match[1], front.crt, front.ca, hop],
      floorReady,
      `floor front ${hop}`,
      PROXY_FLAGS,
    );
    return { port: Number(f.match[1]), proxies: [f, b] };
  };

  // The Weft pairs: two client sidecars (the mesh hop chosen by WEFT_PEER_HTTP1) in front of one
  // server sidecar, which serves both hops; runs are sequential, so its CPU is each run's own.
  const sidecar = (service, extra) => sidecarArgs(srv, { service, appPort, protocol: "http", extra });
  const weftServer = await spawn(
    sidecar("floor-http", []),
    SIDECAR_READY,
    "weft server sidecar",
    PROXY_FLAGS,
  );
  const weftClient = async (hop) => {
    const port = await freePort();
    const p = await spawn(
      sidecar("floor-client", ["--upstream", `floor-http=${port}`]),
      SIDECAR_READY,
      `weft client sidecar (${hop} hop)`,
      PROXY_FLAGS,
      hop === "h2" ? { ...process.env, WEFT_PEER_HTTP1: "0" } : undefined,
    );
    return { port, proxies: [p, weftServer] };
  };

  const paths = {
    direct: { port: appPort, proxies: [] },
    floor: await floorPair("h1"),
    "floor-raw": await floorPair("raw"),
    weft: await weftClient("h1"),
    "floor-h2": await floorPair("h2"),
    "weft-h2": await weftClient("h2"),
  };
  // Wait until every path answers (the Weft client sidecar needs its snapshot and the endpoint).
  for (const p of Object.values(paths)) await probeUntilOk("http1", p.port, "/", 60_000);

  const runs = Object.fromEntries(Object.keys(paths).map((name) => [name, []]));
  for (let round = 0; round < CFG.rounds; round++) {
    for (const [name, p] of Object.entries(paths)) {
      await runWrk({ port: p.port, connections: CONNECTIONS, durationS: CFG.warmupS });
      const before = p.proxies.map((x) => cpuSeconds(x.pid));
      const w = await runWrk({ port: p.port, connections: CONNECTIONS, durationS: CFG.durationS });
      const us = p.proxies.map((x, i) => ((cpuSeconds(x.pid) - before[i]) / Math.max(1, w.requests)) * 1e6);
      runs[name].push({ rps: w.achievedRps, errors: w.errors, latencyMs: w.latencyMs, proxyUs: us });
      console.log(
        `round ${round + 1} ${name.padEnd(8)} ${w.achievedRps} req/s${us.length ? `, µs/req front ${us[0].toFixed(0)} back ${us[1].toFixed(0)}` : ""}`,
      );
    }
  }
  const summary = {};
  for (const [name, rs] of Object.entries(runs)) {
    summary[name] = {
      rps: Math.round(median(rs.map((r) => r.rps))),
      p50Ms: median(rs.map((r) => r.latencyMs.p50)),
      p99Ms: median(rs.map((r) => r.latencyMs.p99)),
      ...(name === "direct"
        ? {}
        : {
            clientProxyUs: r1(median(rs.map((r) => r.proxyUs[0]))),
            serverProxyUs: r1(median(rs.map((r) => r.proxyUs[1]))),
            clientProxyRssMb: r1(memoryMb(paths[name].proxies[0].pid).rssMb),
            serverProxyRssMb: r1(memoryMb(paths[name].proxies[1].pid).rssMb),
          }),
    };
  }
  const over = (a, b) => ({
    clientProxy: r1(summary[a].clientProxyUs / summary[b].clientProxyUs),
    serverProxy: r1(summary[a].serverProxyUs / summary[b].serverProxyUs),
    throughput: Math.round((summary[a].rps / summary[b].rps) * 100) / 100,
  });
  summary.weftOverFloor = over("weft", "floor");
  summary.weftOverRaw = over("weft", "floor-raw");
  summary.weftOverFloorH2 = over("weft-h2", "floor-h2");
  // What the HTTP/1.1 mesh hop buys Weft: CPU ratios below 1 and a throughput ratio above 1 favour it.
  summary.weftH1OverH2 = {
    clientProxy: Math.round((summary.weft.clientProxyUs / summary["weft-h2"].clientProxyUs) * 100) / 100,
    serverProxy: Math.round((summary.weft.serverProxyUs / summary["weft-h2"].serverProxyUs) * 100) / 100,
    throughput: Math.round((summary.weft.rps / summary["weft-h2"].rps) * 100) / 100,
  };
  const result = {
    bench: "node-floor",
    date: new Date().toISOString(),
    quick: QUICK,
    config: { ...CFG, connections: CONNECTIONS, path: "/ (32 B)", generator: "wrk -t1 -c32" },
    machine: machineInfo(),
    runs,
    summary,
  };
  const file = writeResult("node-floor", result);
  const s = summary;
  const line = (name, label) =>
    `  ${label.padEnd(22)}${s[name].rps} req/s, CPU µs/req client ${s[name].clientProxyUs}, server ${s[name].serverProxyUs}\n`;
  console.log(
    `\nHTTP/1.1 32 B, wrk -c${CONNECTIONS}, median of ${CFG.rounds} interleaved rounds:\n` +
      `  direct                ${s.direct.rps} req/s\n` +
      line("floor", "node floor, h1 hop") +
      line("floor-raw", "raw floor, h1 hop") +
      line("weft", "weft, h1 hop") +
      line("floor-h2", "node floor, h2 hop") +
      line("weft-h2", "weft, h2 hop") +
      `  weft / floor (h1 hop): CPU ${s.weftOverFloor.clientProxy}× client, ${s.weftOverFloor.serverProxy}× server; throughput ${s.weftOverFloor.throughput}\n` +
      `  weft / raw floor:      CPU ${s.weftOverRaw.clientProxy}× client, ${s.weftOverRaw.serverProxy}× server; throughput ${s.weftOverRaw.throughput}\n` +
      `  weft / floor (h2 hop): CPU ${s.weftOverFloorH2.clientProxy}× client, ${s.weftOverFloorH2.serverProxy}× server; throughput ${s.weftOverFloorH2.throughput}\n` +
      `  weft h1 hop / h2 hop:  CPU ${s.weftH1OverH2.clientProxy}× client, ${s.weftH1OverH2.serverProxy}× server; throughput ${s.weftH1OverH2.throughput}\n` +
      `wrote ${file}`,
  );
} finally {
  for (const p of procs.reverse()) await p.stop().catch(() => {});
  srv.stop();
  rmSync(work, { recursive: true, force: true });
}
