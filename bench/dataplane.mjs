// What the mesh costs on the data path, measured side by side in one run:
//   direct:  loadgen -> app
//   weft:    loadgen -> client sidecar -> HTTP/1.1 or HTTP/2 (or weft-tcp/1) over TLS 1.3 mTLS -> server sidecar -> app
//   haproxy: loadgen -> client HAProxy -> TLS 1.3 mTLS (certs from Weft's CA) -> server HAProxy -> app
// Traffic: HTTP/1.1 keep-alive 32 B and 64 KiB, HTTP/1.1 new connection per
// request, HTTP/2 (h2c), gRPC unary, raw TCP request/response, and HTTP/1.1
// through the L4 (TCP) pairs. Two modes: maximum throughput (closed loop,
// fixed concurrency: wrk, h2load, or bench/lib/loadgen.mjs for raw TCP) and
// fixed rate (open loop, bench/lib/loadgen.mjs: evenly spaced arrivals,
// latency from the scheduled send time).
// Runs are interleaved (direct, weft, haproxy, then the reverse order, ...)
// so that ratios hold on a noisy machine; for each run the CPU time of the
// load generator, the app and each proxy process comes from /proc.
// Then (not with --quick) a CPU profile of the Weft pair under the HTTP/1.1
// keep-alive maximum-throughput load (node --cpu-prof), summarized by self time.
//
//   npm run build && node bench/dataplane.mjs [--quick] [--no-profile] [--only=http1,tcp,...]
// Writes bench/results/dataplane-<date>.json and .md; prints the table.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WeftClient } from "@weft/api/client";
import { issueFromWeftCa } from "./lib/certs.mjs";
import { summarizeCpuProfile } from "./lib/cpuprofile.mjs";
import { ECHO_PATH } from "./lib/grpc-echo.mjs";
import { startHaproxyPair } from "./lib/haproxy.mjs";
import { machineInfo, toolVersions } from "./lib/machine.mjs";
import { probeUntilOk } from "./lib/probe.mjs";
import { memoryDetailMb, memoryMb, RunSampler } from "./lib/procstat.mjs";
import { dataplaneMarkdown } from "./lib/report.mjs";
import { ensureTool, freePort, run, runH2load, runWrk, spawnReady } from "./lib/tools.mjs";
import {
  sidecarArgs as benchSidecarArgs,
  ROOT,
  SIDECAR_READY,
  startBenchServer,
  writeResult,
} from "./lib/weft-server.mjs";

const argv = process.argv.slice(2);
const QUICK = argv.includes("--quick");
const PROFILE = argv.includes("--profile") || (!QUICK && !argv.includes("--no-profile"));
// The profiled load: GET / (32 B) by default; --profile-path=/64k for the large responses;
// --profile-traffic=h2 or grpc profiles those (h2load -c4 -m8, maximum throughput only).
const PROFILE_PATH = argv.find((a) => a.startsWith("--profile-path="))?.slice(15) ?? "/";
const PROFILE_TRAFFIC = argv.find((a) => a.startsWith("--profile-traffic="))?.slice(18) ?? "http1";
if (!["http1", "h2", "grpc"].includes(PROFILE_TRAFFIC))
  throw new Error(`--profile-traffic: expected http1, h2 or grpc, got "${PROFILE_TRAFFIC}"`);
const ONLY = argv
  .find((a) => a.startsWith("--only="))
  ?.slice(7)
  .split(",");

const CFG = QUICK
  ? { rounds: 1, durationS: 1, warmupS: 0.3, rateRounds: 1, rateDurationS: 2, rateWarmupS: 0.5 }
  : { rounds: 3, durationS: 4, warmupS: 1, rateRounds: 2, rateDurationS: 6, rateWarmupS: 1 };
const CLIENT = "bench-client";
const GRPC_PATH = ECHO_PATH;

// ---------------------------------------------------------------- what is measured

/** One server app + one server sidecar / HAProxy route per kind of traffic. */
const ROUTES = {
  http: { service: "bench-http", protocol: "http", app: "http", hap: "http", probe: "http1" },
  h2: { service: "bench-h2", protocol: "http2", app: "h2", hap: "h2", probe: "h2" },
  grpc: { service: "bench-grpc", protocol: "grpc", app: "grpc", hap: "h2", probe: "grpc", path: GRPC_PATH },
  tcp: { service: "bench-tcp", protocol: "tcp", app: "tcp", hap: "tcp", probe: "tcp" },
  l4http: { service: "bench-l4http", protocol: "tcp", app: "http", hap: "tcp", probe: "l4http" },
};

const MAX_SCENARIOS = [
  { id: "http1", title: "HTTP/1.1 keep-alive, 32 B", route: "http", tool: "wrk", connections: 32 },
  {
    id: "http1-post",
    title: "HTTP/1.1 keep-alive POST, 1 KiB body, 32 B answer",
    route: "http",
    tool: "wrk",
    connections: 32,
    bodyBytes: 1024,
  },
  {
    id: "http1-64k",
    title: "HTTP/1.1 keep-alive, 64 KiB",
    route: "http",
    tool: "wrk",
    connections: 32,
    path: "/64k",
  },
  {
    id: "http1-newconn",
    title: "HTTP/1.1, new connection per request",
    route: "http",
    tool: "wrk",
    connections: 16,
    headers: ["Connection: close"],
  },
  { id: "h2", title: "HTTP/2 (h2c), 32 B", route: "h2", tool: "h2load", clients: 4, streams: 8 },
  {
    id: "grpc",
    title: "gRPC unary, 32 B",
    route: "grpc",
    tool: "h2load",
    clients: 4,
    streams: 8,
    grpc: true,
    path: GRPC_PATH,
  },
  { id: "tcp", title: "TCP request/response (L4), 32 B", route: "tcp", tool: "node", connections: 32 },
  {
    id: "http1-l4",
    title: "HTTP/1.1 keep-alive through the L4 (TCP) pair",
    route: "l4http",
    tool: "wrk",
    connections: 32,
  },
];

const RATE_SCENARIOS = [
  { id: "http1@1000", title: "HTTP/1.1 32 B at 1,000 req/s", route: "http", kind: "http1", rate: 1000 },
  ...(QUICK
    ? []
    : [
        {
          id: "http1@50%",
          title: "HTTP/1.1 32 B at 50 % of the slowest maximum",
          route: "http",
          kind: "http1",
          rate: { halfOf: "http1" },
          connections: 32,
        },
        {
          id: "grpc@1000",
          title: "gRPC unary at 1,000 req/s",
          route: "grpc",
          kind: "h2",
          grpc: true,
          path: GRPC_PATH,
          rate: 1000,
        },
        {
          id: "tcp@1000",
          title: "TCP request/response at 1,000 req/s",
          route: "tcp",
          kind: "tcp",
          rate: 1000,
        },
      ]),
];

const TOPOLOGIES = ["direct", "weft", "haproxy"];

// ---------------------------------------------------------------- helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const r1 = (x) => Math.round(x * 10) / 10;
const r3 = (x) => Math.round(x * 1000) / 1000;

async function nodeLoadgen(cfg, timeoutS) {
  const r = await run(
    process.execPath,
    [join(ROOT, "bench/lib/loadgen.mjs"), JSON.stringify(cfg)],
    (timeoutS + 30) * 1000,
  );
  const line = r.stdout.trim().split("\n").pop();
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`loadgen failed (${r.code}): ${r.stdout.slice(-500)} ${r.stderr.slice(-800)}`);
  }
}

/** Closed loop at the scenario's concurrency for `durationS`. */
function maxLoad(sc, port, durationS, warmupS) {
  if (sc.tool === "wrk")
    return runWrk({
      port,
      path: sc.path ?? "/",
      connections: sc.connections,
      durationS,
      headers: sc.headers,
      bodyBytes: sc.bodyBytes,
    });
  if (sc.tool === "h2load")
    return runH2load({
      port,
      path: sc.path ?? "/",
      clients: sc.clients,
      streams: sc.streams,
      durationS,
      warmupS,
      grpc: sc.grpc,
    });
  return nodeLoadgen(
    { kind: "tcp", mode: "closed", port, connections: sc.connections, durationS, warmupS },
    durationS + warmupS,
  );
}

function rateLoad(sc, port, rate, durationS, warmupS) {
  return nodeLoadgen(
    {
      kind: sc.kind,
      mode: "open",
      port,
      rate,
      durationS,
      warmupS,
      connections: sc.connections ?? 16,
      streamsPerSession: 8,
      grpc: sc.grpc ?? false,
      path: sc.path ?? "/",
    },
    durationS + warmupS,
  );
}

// ---------------------------------------------------------------- set-up

const started = Date.now();
const tools = {
  wrk: ensureTool("wrk", "wrk"),
  h2load: ensureTool("h2load", "nghttp2-client"),
  haproxy: ensureTool("haproxy", "haproxy"),
};
const skipped = [];
for (const t of Object.values(tools)) if (t.skip) skipped.push(t.skip);
const topologies = TOPOLOGIES.filter((t) => t !== "haproxy" || !tools.haproxy.skip);
if (tools.haproxy.skip) console.log(`skipping the HAProxy pair: ${tools.haproxy.skip}`);
const maxScenarios = MAX_SCENARIOS.filter((s) => {
  if (ONLY && !ONLY.includes(s.id)) return false;
  const t = tools[s.tool];
  if (t?.skip) {
    console.log(`skipping ${s.id}: ${t.skip}`);
    return false;
  }
  return true;
});
const rateScenarios = RATE_SCENARIOS.filter((s) => !ONLY || ONLY.includes(s.id));

const work = mkdtempSync(join(tmpdir(), "weft-bench-dataplane-"));
const children = [];
const track = (c) => {
  children.push(c);
  return c;
};
const srv = await startBenchServer("dataplane", QUICK ? 240_000 : 1_200_000);
let shuttingDown = false;
const cleanup = async () => {
  shuttingDown = true;
  await Promise.all(children.reverse().map((c) => c.stop().catch(() => {})));
  srv.stop();
  rmSync(work, { recursive: true, force: true });
};
process.once("SIGINT", () => cleanup().then(() => process.exit(130)));

try {
  const client = new WeftClient({ addr: srv.url, token: srv.token, timeoutMs: 30_000 });
  const { trustDomain } = await client.caRoots();
  // Intentions: the client service may call every server service.
  await client.applyConfig(
    Object.values(ROUTES).map((r) => ({
      kind: "Intention",
      name: r.service,
      sources: [{ name: CLIENT, action: "allow" }],
    })),
  );

  // A long-lived child that exits before we stop it is a crash: recorded with its stderr, and reported.
  const crashes = [];
  let phase = "set-up";
  const watch = (p, what) => {
    track(p);
    p.exited.then(({ code, signal }) => {
      if (p.stopping() || shuttingDown) return;
      const tail = p.stderrTail().slice(-4000);
      crashes.push({ what, code, signal, during: phase, at: new Date().toISOString(), stderrTail: tail });
      console.error(
        `\n!! ${what} exited unexpectedly (${code ?? signal}) during ${phase}; stderr ends with:\n${tail}\n`,
      );
    });
    return p;
  };

  const apps = watch(
    await spawnReady(process.execPath, [join(ROOT, "bench/lib/apps.mjs")], {
      ready: /bench apps ready http=(\d+) h2=(\d+) grpc=(\d+) tcp=(\d+)/,
      what: "bench apps",
    }),
    "bench apps",
  );
  const appPorts = {
    http: Number(apps.match[1]),
    h2: Number(apps.match[2]),
    grpc: Number(apps.match[3]),
    tcp: Number(apps.match[4]),
  };

  // --- Weft: one server sidecar per route, one client sidecar with an upstream per route.
  const sidecarArgs = (service, appPort, protocol, extra = []) =>
    benchSidecarArgs(srv, { service, appPort, protocol, extra: ["--health-interval", "500ms", ...extra] });
  // BENCH_SIDECAR_NODE_FLAGS: node flags for every Weft sidecar (comparisons, e.g. heap sizes).
  const sidecarNodeFlags = (process.env.BENCH_SIDECAR_NODE_FLAGS ?? "").split(" ").filter(Boolean);
  const startSidecar = (args, what, nodeFlags = []) =>
    spawnReady(process.execPath, [...sidecarNodeFlags, ...nodeFlags, ...args], {
      ready: SIDECAR_READY,
      what,
      timeoutMs: 60_000,
    });
  const weft = { servers: {}, client: undefined, restarts: 0 };
  const weftPorts = {};
  for (const name of Object.keys(ROUTES)) weftPorts[name] = await freePort();
  const startWeftServer = async (name) => {
    const r = ROUTES[name];
    const what = `weft proxy ${r.service}`;
    weft.servers[name] = watch(
      await startSidecar(sidecarArgs(r.service, appPorts[r.app], r.protocol), what),
      what,
    );
  };
  const startWeftClient = async () => {
    const what = `weft proxy ${CLIENT}`;
    const upstreams = Object.entries(ROUTES).flatMap(([name, r]) => [
      "--upstream",
      `${r.service}=${weftPorts[name]}`,
    ]);
    weft.client = watch(
      await startSidecar(sidecarArgs(CLIENT, appPorts.http, "http", upstreams), what),
      what,
    );
  };
  await Promise.all(Object.keys(ROUTES).map(startWeftServer));
  await startWeftClient();
  /** Restarts any Weft sidecar that died (the crash is recorded) and waits until every Weft path answers again. */
  async function ensureWeftAlive() {
    let restarted = false;
    for (const name of Object.keys(ROUTES)) {
      if (!weft.servers[name].alive()) {
        await startWeftServer(name);
        restarted = true;
      }
    }
    if (!weft.client.alive()) {
      await startWeftClient();
      restarted = true;
    }
    if (!restarted) return;
    weft.restarts++;
    for (const [name, r] of Object.entries(ROUTES))
      await probeUntilOk(r.probe, weftPorts[name], r.path ?? "/", 60_000);
  }

  // --- HAProxy pair with certificates from Weft's CA.
  let hap;
  const hapPorts = {};
  let certInfo;
  if (topologies.includes("haproxy")) {
    const certDir = join(work, "certs");
    mkdirSync(certDir);
    const t = performance.now();
    const certs = {
      client: await issueFromWeftCa(client, certDir, "haproxy-client", trustDomain),
      server: await issueFromWeftCa(client, certDir, "haproxy-server", trustDomain),
    };
    certInfo = {
      trustDomain,
      client: certs.client.spiffeId,
      server: certs.server.spiffeId,
      issueMs: Math.round(performance.now() - t),
    };
    const routes = [];
    for (const [name, r] of Object.entries(ROUTES)) {
      hapPorts[name] = await freePort();
      routes.push({
        name,
        mode: r.hap,
        clientPort: hapPorts[name],
        peerPort: await freePort(),
        appPort: appPorts[r.app],
      });
    }
    hap = await startHaproxyPair(tools.haproxy.path, work, routes, certs);
    watch(hap.client, "haproxy client side");
    watch(hap.server, "haproxy server side");
  }

  const portOf = (topology, route) =>
    topology === "direct"
      ? appPorts[ROUTES[route].app]
      : topology === "weft"
        ? weftPorts[route]
        : hapPorts[route];

  // Every path answers before anything is measured (the client sidecar waits for healthy endpoints).
  for (const topology of topologies) {
    for (const [name, r] of Object.entries(ROUTES)) {
      await probeUntilOk(r.probe, portOf(topology, name), r.path ?? "/", 60_000);
    }
  }
  const setupS = r1((Date.now() - started) / 1000);
  console.log(`set-up ${setupS} s; measuring (${QUICK ? "quick" : "full"})...`);

  const roundDetail = (d) => ({ rssMb: r1(d.rssMb), pssMb: r1(d.pssMb), privateMb: r1(d.privateMb) });
  const memoryDetail = () => ({
    weftClientSidecar: roundDetail(memoryDetailMb(weft.client.pid)),
    weftServerSidecarHttp: roundDetail(memoryDetailMb(weft.servers.http.pid)),
    ...(hap
      ? {
          haproxyClient: roundDetail(memoryDetailMb(hap.client.pid)),
          haproxyServer: roundDetail(memoryDetailMb(hap.server.pid)),
        }
      : {}),
  });

  // --- idle memory
  await sleep(QUICK ? 500 : 2000);
  const idleMemory = {
    weftClientSidecarMb: r1(memoryMb(weft.client.pid).rssMb),
    weftServerSidecarMb: Object.fromEntries(
      Object.entries(weft.servers).map(([n, p]) => [n, r1(memoryMb(p.pid).rssMb)]),
    ),
    ...(hap
      ? {
          haproxyClientMb: r1(memoryMb(hap.client.pid).rssMb),
          haproxyServerMb: r1(memoryMb(hap.server.pid).rssMb),
        }
      : {}),
    controlPlaneMb: r1(memoryMb(srv.pid).rssMb),
    // Resident, proportional (shared pages split between the processes sharing them) and private.
    detail: memoryDetail(),
  };

  // Every process of ours, so the rest of the machine's busy time can be told apart as "other load".
  const pidsNow = () => ({
    self: process.pid,
    controlPlane: srv.pid,
    app: apps.pid,
    weftClient: weft.client.pid,
    ...Object.fromEntries(Object.entries(weft.servers).map(([n, p]) => [`weftServer_${n}`, p.pid])),
    ...(hap ? { haproxyClient: hap.client.pid, haproxyServer: hap.server.pid } : {}),
  });
  const rolesOf = (topology, route) =>
    topology === "weft"
      ? { clientProxy: "weftClient", serverProxy: `weftServer_${route}` }
      : topology === "haproxy"
        ? { clientProxy: "haproxyClient", serverProxy: "haproxyServer" }
        : {};

  /** One measured run with the CPU and memory accounting around it. */
  async function measured(topology, route, load) {
    if (topology === "weft") await ensureWeftAlive();
    const crashesBefore = crashes.length;
    const sampler = new RunSampler(pidsNow());
    sampler.start();
    let res;
    try {
      res = await load();
    } catch (e) {
      sampler.stop();
      return {
        topology,
        failed: String(e?.message ?? e).slice(0, 1000),
        crashes: crashes.length - crashesBefore,
        achievedRps: 0,
        requests: 0,
        errors: 1,
        latencyMs: {},
        cpuUsPerRequest: {},
        maxRssMb: {},
      };
    }
    const s = sampler.stop();
    const roles = rolesOf(topology, route);
    const perReq = (cpuS) => (res.requests > 0 ? r1((cpuS * 1e6) / res.requests) : null);
    const ours = Object.values(s.cpu).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
    const cpu = {
      loadgen: s.reapedChildrenCpu,
      app: s.cpu.app,
      ...(roles.clientProxy
        ? { clientProxy: s.cpu[roles.clientProxy], serverProxy: s.cpu[roles.serverProxy] }
        : {}),
    };
    // Per request over the measured window: wrk/h2load/loadgen count their own window; CPU is over the whole run.
    const window = res.requests / Math.max(1, res.achievedRps);
    const scale = window > 0 ? window / s.seconds : 1;
    return {
      topology,
      achievedRps: res.achievedRps,
      requests: res.requests,
      errors: res.errors,
      latencyMs: res.latencyMs,
      ...(res.latencyFromReleaseMs ? { latencyFromReleaseMs: res.latencyFromReleaseMs } : {}),
      ...(res.h2loadSummary ? { h2load: res.h2loadSummary } : {}),
      ...(res.errorKinds ? { errorKinds: res.errorKinds } : {}),
      ...(res.timerLagMs ? { timerLagMs: res.timerLagMs } : {}),
      wallS: r3(s.seconds),
      cpuS: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, r3(v)])),
      // CPU charged to the requests of the measured window: the run's CPU scaled to that window.
      cpuUsPerRequest: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, perReq(v * scale)])),
      // Of it, the kernel's share (stime): syscalls and the loopback TCP work done inside them.
      kernelUsPerRequest: roles.clientProxy
        ? {
            clientProxy: perReq(s.kernelCpu[roles.clientProxy] * scale),
            serverProxy: perReq(s.kernelCpu[roles.serverProxy] * scale),
          }
        : undefined,
      proxyVcpu: roles.clientProxy
        ? { clientProxy: r3(cpu.clientProxy / s.seconds), serverProxy: r3(cpu.serverProxy / s.seconds) }
        : undefined,
      maxRssMb: Object.fromEntries(
        ["clientProxy", "serverProxy"].filter((k) => roles[k]).map((k) => [k, r1(s.maxRssMb[roles[k]])]),
      ),
      // Other work on the machine during the run (cores), and kernel interrupt time (loopback TCP).
      ...(crashes.length > crashesBefore ? { crashes: crashes.length - crashesBefore } : {}),
      otherLoadCores: r3(Math.max(0, s.otherProcessesCpu) / s.seconds),
      irqCores: r3(s.irqCpu / s.seconds),
      unaccountedCores: r3(
        Math.max(0, s.machineBusyCpu - ours - s.reapedChildrenCpu - s.otherProcessesCpu) / s.seconds,
      ),
    };
  }

  const orderFor = (round) => (round % 2 === 0 ? topologies : [...topologies].reverse());

  // ---------------------------------------------------------------- maximum throughput
  const maxResults = [];
  for (const sc of maxScenarios) {
    process.stdout.write(`${sc.id}: `);
    const runs = [];
    // A short unmeasured warm-up of every path (JIT, pools, TLS sessions); --quick goes in cold.
    phase = `${sc.id} warm-up`;
    if (!QUICK) {
      for (const topology of topologies) {
        if (topology === "weft") await ensureWeftAlive();
        await maxLoad(sc, portOf(topology, sc.route), 1, 0).catch((e) => {
          console.error(`\n${sc.id} warm-up on ${topology} failed: ${e.message}`);
        });
      }
    }
    for (let round = 0; round < CFG.rounds; round++) {
      for (const topology of orderFor(round)) {
        phase = `${sc.id} ${topology} round ${round}`;
        const m = await measured(topology, sc.route, () =>
          maxLoad(sc, portOf(topology, sc.route), CFG.durationS, CFG.warmupS),
        );
        m.round = round;
        runs.push(m);
        process.stdout.write(`${topology} ${m.failed ? "FAILED" : `${m.achievedRps}/s`}  `);
      }
    }
    process.stdout.write("\n");
    maxResults.push({ ...sc, runs });
  }

  // ---------------------------------------------------------------- fixed rate
  const rateResults = [];
  for (const sc of rateScenarios) {
    let rate = sc.rate;
    if (typeof rate === "object") {
      const base = maxResults.find((m) => m.id === rate.halfOf);
      if (!base) {
        console.log(`skipping ${sc.id}: no ${rate.halfOf} maximum measured`);
        continue;
      }
      const slowest = Math.min(
        ...topologies.map((t) => median(base.runs.filter((r) => r.topology === t).map((r) => r.achievedRps))),
      );
      rate = Math.max(100, Math.round(slowest / 2 / 100) * 100);
    }
    process.stdout.write(`${sc.id} (${rate}/s): `);
    const runs = [];
    for (let round = 0; round < CFG.rateRounds; round++) {
      for (const topology of orderFor(round)) {
        phase = `${sc.id} ${topology} round ${round}`;
        const m = await measured(topology, sc.route, () =>
          rateLoad(sc, portOf(topology, sc.route), rate, CFG.rateDurationS, CFG.rateWarmupS),
        );
        m.round = round;
        runs.push(m);
        process.stdout.write(
          `${topology} ${m.failed ? "FAILED" : `p50 ${m.latencyMs.p50} p99 ${m.latencyMs.p99}`}  `,
        );
      }
    }
    process.stdout.write("\n");
    rateResults.push({ ...sc, rate, runs });
  }

  // ---------------------------------------------------------------- memory under load
  const loadedMemory = {
    // The largest resident size seen while the HTTP/1.1 keep-alive maximum-throughput runs were going.
    weftClientSidecarMb: maxOf(maxResults, "http1", "weft", "clientProxy"),
    weftServerSidecarMb: maxOf(maxResults, "http1", "weft", "serverProxy"),
    haproxyClientMb: maxOf(maxResults, "http1", "haproxy", "clientProxy"),
    haproxyServerMb: maxOf(maxResults, "http1", "haproxy", "serverProxy"),
    // ... and during any run of the bench.
    weftAnyRunMaxMb: maxOverAll([...maxResults, ...rateResults], "weft"),
    haproxyAnyRunMaxMb: maxOverAll([...maxResults, ...rateResults], "haproxy"),
    weftClientSidecarNowMb: r1(memoryMb(weft.client.pid).rssMb),
    weftClientSidecarPeakMb: r1(memoryMb(weft.client.pid).hwmMb),
    // Right after the maximum-throughput runs (V8 keeps the heap it grew).
    detail: memoryDetail(),
  };

  // ---------------------------------------------------------------- profile
  let profile;
  phase = "profile";
  if (PROFILE && !tools.wrk.skip) {
    const ctx = { client, sidecarArgs, startSidecar, appPorts };
    profile = { max: await profileWeftPair(ctx, "max") };
    if (!QUICK && PROFILE_TRAFFIC === "http1") profile.rate1000 = await profileWeftPair(ctx, "rate");
  }

  const result = {
    bench: "dataplane",
    date: new Date().toISOString(),
    quick: QUICK,
    config: CFG,
    machine: machineInfo(),
    tools: toolVersions(),
    skipped,
    setupS,
    totalS: r1((Date.now() - started) / 1000),
    fixedRateGenerator:
      "bench/lib/loadgen.mjs: Node open loop, evenly spaced arrivals over a pool of keep-alive connections " +
      "(a request waits for a free connection when all are busy); latency from the scheduled send time",
    haproxy: hap ? { threads: 1, certificates: certInfo, configs: hap.configs } : undefined,
    memory: { idle: idleMemory, loaded: loadedMemory },
    // Processes that exited while measuring (each Weft sidecar was restarted before the next Weft run).
    crashes,
    weftRestarts: weft.restarts,
    maxThroughput: maxResults,
    fixedRate: rateResults,
    profile,
  };
  result.summary = summarize(result);
  const file = writeResult("dataplane", result);
  const md = dataplaneMarkdown(result);
  writeFileSync(file.replace(/\.json$/, ".md"), md);
  console.log(`\n${md}`);
  console.log(`wrote ${file} (and .md) in ${result.totalS} s`);
} finally {
  await cleanup();
}
process.exit(0);

// ---------------------------------------------------------------- summary figures

function maxOf(results, id, topology, role) {
  const sc = results.find((m) => m.id === id);
  const xs =
    sc?.runs.filter((r) => r.topology === topology).map((r) => r.maxRssMb?.[role] ?? Number.NaN) ?? [];
  const m = Math.max(...xs.filter(Number.isFinite));
  return Number.isFinite(m) ? m : undefined;
}

function maxOverAll(results, topology) {
  let m = Number.NEGATIVE_INFINITY;
  for (const sc of results)
    for (const r of sc.runs)
      if (r.topology === topology) for (const v of Object.values(r.maxRssMb ?? {})) if (v > m) m = v;
  return Number.isFinite(m) ? m : undefined;
}

/**
 * Medians over rounds per topology, and ratios taken round by round (the runs
 * of one round are next to each other in time, so they share the machine's
 * state) before their median.
 */
function summarize(result) {
  const out = { maxThroughput: {}, fixedRate: {} };
  for (const sc of result.maxThroughput) {
    const s = {};
    for (const t of topologies) {
      const rs = sc.runs.filter((r) => r.topology === t);
      s[t] = {
        rps: Math.round(median(rs.map((r) => r.achievedRps))),
        p50: median(rs.map((r) => r.latencyMs.p50)),
        p99: median(rs.map((r) => r.latencyMs.p99)),
        errors: rs.reduce((a, r) => a + r.errors, 0),
        clientProxyUs: median(rs.map((r) => r.cpuUsPerRequest.clientProxy)),
        serverProxyUs: median(rs.map((r) => r.cpuUsPerRequest.serverProxy)),
        clientProxyKernelUs: median(rs.map((r) => r.kernelUsPerRequest?.clientProxy)),
        serverProxyKernelUs: median(rs.map((r) => r.kernelUsPerRequest?.serverProxy)),
        loadgenUs: median(rs.map((r) => r.cpuUsPerRequest.loadgen)),
        appUs: median(rs.map((r) => r.cpuUsPerRequest.app)),
        otherLoadCores: median(rs.map((r) => r.otherLoadCores)),
      };
    }
    const perRound = (f) =>
      median(
        [...new Set(sc.runs.map((r) => r.round))].map((round) => {
          const get = (t) => sc.runs.find((r) => r.round === round && r.topology === t);
          return f(get);
        }),
      );
    s.weftVsDirect = r3(perRound((g) => g("weft")?.achievedRps / g("direct")?.achievedRps));
    if (topologies.includes("haproxy")) {
      s.haproxyVsDirect = r3(perRound((g) => g("haproxy")?.achievedRps / g("direct")?.achievedRps));
      s.weftVsHaproxy = r3(perRound((g) => g("weft")?.achievedRps / g("haproxy")?.achievedRps));
      const cpuPair = (g, t) => g(t)?.cpuUsPerRequest.clientProxy + g(t)?.cpuUsPerRequest.serverProxy;
      s.weftCpuVsHaproxy = r3(perRound((g) => cpuPair(g, "weft") / cpuPair(g, "haproxy")));
    }
    out.maxThroughput[sc.id] = s;
  }
  for (const sc of result.fixedRate) {
    const s = { rate: sc.rate };
    for (const t of topologies) {
      const rs = sc.runs.filter((r) => r.topology === t);
      const pick = (k) => median(rs.map((r) => r.latencyMs[k]));
      s[t] = {
        achievedRps: Math.round(median(rs.map((r) => r.achievedRps))),
        p50: pick("p50"),
        p90: pick("p90"),
        p99: pick("p99"),
        p999: pick("p999"),
        errors: rs.reduce((a, r) => a + r.errors, 0),
        timerLagP50: median(rs.map((r) => r.timerLagMs?.p50)),
        proxyVcpu:
          t === "direct"
            ? undefined
            : {
                clientProxy: median(rs.map((r) => r.proxyVcpu?.clientProxy)),
                serverProxy: median(rs.map((r) => r.proxyVcpu?.serverProxy)),
              },
        clientProxyUs: median(rs.map((r) => r.cpuUsPerRequest.clientProxy)),
        serverProxyUs: median(rs.map((r) => r.cpuUsPerRequest.serverProxy)),
        otherLoadCores: median(rs.map((r) => r.otherLoadCores)),
      };
    }
    // Added latency over direct, round by round, then the median.
    const added = (t, k) =>
      r3(
        median(
          [...new Set(sc.runs.map((r) => r.round))].map((round) => {
            const get = (x) => sc.runs.find((r) => r.round === round && r.topology === x);
            return get(t)?.latencyMs[k] - get("direct")?.latencyMs[k];
          }),
        ),
      );
    for (const t of topologies.filter((x) => x !== "direct")) {
      s[t].addedMs = {
        p50: added(t, "p50"),
        p90: added(t, "p90"),
        p99: added(t, "p99"),
        p999: added(t, "p999"),
      };
    }
    out.fixedRate[sc.id] = s;
  }
  return out;
}

// ---------------------------------------------------------------- profile

/**
 * A fresh Weft pair under `node --cpu-prof`, loaded for PROFILE_S seconds,
 * then stopped (SIGTERM: the profile is written at exit) and summarized by
 * self time. "max": like the http1 scenario (wrk -c32, after a 1 s warm-up);
 * "rate": HTTP/1.1 at an evenly paced 1,000 req/s (the low-batching regime
 * where the per-request cost is highest).
 */
async function profileWeftPair({ client, sidecarArgs, startSidecar, appPorts }, kind) {
  const PROFILE_S = 8;
  const base =
    argv.find((a) => a.startsWith("--profile-dir="))?.slice(14) ??
    join(tmpdir(), `weft-bench-prof-${process.pid}`);
  const dir = join(base, kind);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await client.applyConfig([
    { kind: "Intention", name: "prof-http", sources: [{ name: "prof-client", action: "allow" }] },
  ]);
  const flags = (name) => ["--cpu-prof", `--cpu-prof-dir=${join(dir, name)}`];
  // What is profiled: HTTP/1.1 (default), or --profile-traffic=h2 / grpc through their own apps.
  const traffic = {
    http1: { app: appPorts.http, protocol: "http", path: PROFILE_PATH, generator: "wrk -c32" },
    h2: { app: appPorts.h2, protocol: "http2", path: "/", generator: "h2load -c4 -m8" },
    grpc: { app: appPorts.grpc, protocol: "grpc", path: GRPC_PATH, generator: "h2load -c4 -m8 (gRPC)" },
  }[PROFILE_TRAFFIC];
  const server = await startSidecar(
    sidecarArgs("prof-http", traffic.app, traffic.protocol),
    "profiled server sidecar",
    flags("server"),
  );
  const port = await freePort();
  const cl = await startSidecar(
    sidecarArgs("prof-client", appPorts.http, "http", ["--upstream", `prof-http=${port}`]),
    "profiled client sidecar",
    flags("client"),
  );
  let load;
  try {
    await probeUntilOk(PROFILE_TRAFFIC, port, traffic.path, 60_000);
    if (PROFILE_TRAFFIC !== "http1") {
      const h2 = { port, path: traffic.path, clients: 4, streams: 8, grpc: PROFILE_TRAFFIC === "grpc" };
      await runH2load({ ...h2, durationS: 1, warmupS: 0 });
      load = await runH2load({ ...h2, durationS: PROFILE_S, warmupS: 0 });
    } else if (kind === "max") {
      await runWrk({ port, path: PROFILE_PATH, connections: 32, durationS: 1 });
      load = await runWrk({ port, path: PROFILE_PATH, connections: 32, durationS: PROFILE_S });
    } else {
      load = await rateLoad({ kind: "http1", path: PROFILE_PATH }, port, 1000, PROFILE_S, 1);
    }
  } finally {
    await cl.stop(20_000);
    await server.stop(20_000);
  }
  const out = {
    dir,
    load: {
      kind,
      traffic: PROFILE_TRAFFIC,
      path: traffic.path,
      rps: load?.achievedRps,
      durationS: PROFILE_S,
      generator: kind === "max" ? traffic.generator : "loadgen.mjs open loop 1,000 req/s",
    },
  };
  for (const side of ["client", "server"]) {
    const files = readdirSync(join(dir, side)).filter((f) => f.endsWith(".cpuprofile"));
    if (files.length === 0) {
      out[side] = { error: "no .cpuprofile written" };
      continue;
    }
    const file = join(dir, side, files[0]);
    out[side] = { file, ...summarizeCpuProfile(file, 25) };
  }
  console.log(`cpu profiles (${kind}): ${dir}`);
  return out;
}
