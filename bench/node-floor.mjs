// The platform floor next to the Weft pair: how much of a Weft sidecar's
// CPU per request is Node.js itself. Three paths carry the same HTTP/1.1
// keep-alive traffic (wrk -c32, 32 B responses) in interleaved rounds:
//   direct        wrk -> app
//   node floor    wrk -> floor front -> HTTP/2 over mTLS -> floor back -> app
//                 (bench/lib/floor-relay.mjs: Weft's architecture, none of its features)
//   weft          wrk -> client sidecar -> HTTP/2 over mTLS -> server sidecar -> app
// and reports req/s and CPU µs per request of each proxy. Weft's own cost is
// the difference between its pair and the floor pair; the rest is what any
// Node.js proxy of this shape pays on this machine.
//
//   node bench/node-floor.mjs [--quick]
// BENCH_PROXY_NODE_FLAGS="--cpu-prof --cpu-prof-dir=DIR" profiles all four proxies.
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
const spawn = async (args, ready, what, flags = []) => {
  const p = await spawnReady(process.execPath, [...flags, ...args], { ready, what, timeoutMs: 60_000 });
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

  // The floor pair, with certificates from Weft's CA.
  const back = await issueFromWeftCa(client, work, "floor-back", trustDomain);
  const front = await issueFromWeftCa(client, work, "floor-front", trustDomain);
  const relay = join(ROOT, "bench/lib/floor-relay.mjs");
  const floorReady = /floor ready port=(\d+)/;
  const floorBack = await spawn(
    [relay, "back", "0", String(appPort), back.crt, back.ca],
    floorReady,
    "floor back",
  );
  const floorFront = await spawn(
    [relay, "front", "0", floorBack.match[1], front.crt, front.ca],
    floorReady,
    "floor front",
    PROXY_FLAGS,
  );

  // The Weft pair.
  const sidecar = (service, extra) => sidecarArgs(srv, { service, appPort, protocol: "http", extra });
  const weftServer = await spawn(
    sidecar("floor-http", []),
    SIDECAR_READY,
    "weft server sidecar",
    PROXY_FLAGS,
  );
  const upstreamPort = await freePort();
  const weftClient = await spawn(
    sidecar("floor-client", ["--upstream", `floor-http=${upstreamPort}`]),
    SIDECAR_READY,
    "weft client sidecar",
    PROXY_FLAGS,
  );

  const paths = {
    direct: { port: appPort, proxies: [] },
    floor: { port: Number(floorFront.match[1]), proxies: [floorFront, floorBack] },
    weft: { port: upstreamPort, proxies: [weftClient, weftServer] },
  };
  // Wait until every path answers (the Weft client sidecar needs its snapshot and the endpoint).
  for (const p of Object.values(paths)) await probeUntilOk("http1", p.port, "/", 60_000);

  const runs = { direct: [], floor: [], weft: [] };
  for (let round = 0; round < CFG.rounds; round++) {
    for (const [name, p] of Object.entries(paths)) {
      await runWrk({ port: p.port, connections: CONNECTIONS, durationS: CFG.warmupS });
      const before = p.proxies.map((x) => cpuSeconds(x.pid));
      const w = await runWrk({ port: p.port, connections: CONNECTIONS, durationS: CFG.durationS });
      const us = p.proxies.map((x, i) => ((cpuSeconds(x.pid) - before[i]) / Math.max(1, w.requests)) * 1e6);
      runs[name].push({ rps: w.achievedRps, errors: w.errors, latencyMs: w.latencyMs, proxyUs: us });
      console.log(
        `round ${round + 1} ${name.padEnd(6)} ${w.achievedRps} req/s${us.length ? `, µs/req front ${us[0].toFixed(0)} back ${us[1].toFixed(0)}` : ""}`,
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
  summary.weftOverFloor = {
    clientProxy: r1(summary.weft.clientProxyUs / summary.floor.clientProxyUs),
    serverProxy: r1(summary.weft.serverProxyUs / summary.floor.serverProxyUs),
    throughput: Math.round((summary.weft.rps / summary.floor.rps) * 100) / 100,
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
  console.log(
    `\nHTTP/1.1 32 B, wrk -c${CONNECTIONS}, median of ${CFG.rounds} interleaved rounds:\n` +
      `  direct      ${s.direct.rps} req/s\n` +
      `  node floor  ${s.floor.rps} req/s, CPU µs/req client ${s.floor.clientProxyUs}, server ${s.floor.serverProxyUs}\n` +
      `  weft        ${s.weft.rps} req/s, CPU µs/req client ${s.weft.clientProxyUs}, server ${s.weft.serverProxyUs}\n` +
      `  weft / floor: CPU ${s.weftOverFloor.clientProxy}× client, ${s.weftOverFloor.serverProxy}× server; throughput ${s.weftOverFloor.throughput}\n` +
      `wrote ${file}`,
  );
} finally {
  for (const p of procs.reverse()) await p.stop().catch(() => {});
  srv.stop();
  rmSync(work, { recursive: true, force: true });
}
