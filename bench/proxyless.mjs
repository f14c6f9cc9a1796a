// Proxyless gRPC next to the sidecars (issue #11): the same gRPC unary load
// (bench/lib/grpc-load.mjs, one grpc-js client process for every line, so
// the ratios compare paths, not clients) along five lines, all on 127.0.0.1:
//   direct:       generator -> app (plaintext h2c)
//   direct-mtls:  generator (grpc-js createSsl, the mesh's certificate files) -> app's mTLS port
//   weft:         generator -> client sidecar -> TLS 1.3 mTLS (HTTP/2) -> server sidecar -> app
//   haproxy:      generator -> client HAProxy -> TLS 1.3 mTLS (h2, certs from Weft's CA) -> server HAProxy -> app
//   proxyless:    generator with @grpc/grpc-js-xds, xds:///bench-grpc, XdsChannelCredentials
//                 -> app's mTLS port, no proxy: endpoints, mTLS and SAN check from xDS
// The app (bench/lib/grpc-bench-app.mjs) is one process serving plaintext and
// mTLS; its mTLS side is registered with `weft bootstrap grpc --cert-dir` as
// a proxyless server of bench-grpc, and the proxyless client is bootstrapped
// the same way as bench-client (its certificate files also serve the
// direct-mtls line: the same keys as proxyless, without xDS).
// Two rounds kinds, interleaved (A B C D E, then E D C B A, ...):
//   closed loop: a fixed number of calls outstanding (32 over 4 connections);
//   fixed rate: calls evenly paced by the generator (500/s), latency from the
//   scheduled time; "added" = percentile minus direct's, round by round.
// CPU per call of the generator, the app and each proxy over the measured
// window (/proc; the generator's own process.cpuUsage).
//
//   npm run build && node bench/proxyless.mjs [--quick] [--only=direct,proxyless,...]
//       [--rate=500] [--concurrency=32] [--channels=4]
// Writes bench/results/proxyless-<date>.json and .md; prints the tables.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WeftClient } from "@weft/api/client";
import { issueFromWeftCa } from "./lib/certs.mjs";
import { startHaproxyPair } from "./lib/haproxy.mjs";
import { machineInfo, toolVersions } from "./lib/machine.mjs";
import { RunSampler } from "./lib/procstat.mjs";
import { proxylessMarkdown } from "./lib/proxyless-report.mjs";
import { ensureTool, freePort, spawnReady } from "./lib/tools.mjs";
import { ROOT, SIDECAR_READY, sidecarArgs, WEFT_BIN, writeResult } from "./lib/weft-server.mjs";
import { startXdsBenchServer } from "./lib/xds-server.mjs";

const argv = process.argv.slice(2);
const QUICK = argv.includes("--quick");
const flag = (name) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const ONLY = flag("only")?.split(",");
const CFG = {
  ...(QUICK
    ? { rounds: 1, durationS: 2, warmupS: 0.5, rateRounds: 1, rateDurationS: 2, rateWarmupS: 0.5 }
    : { rounds: 3, durationS: 4, warmupS: 1, rateRounds: 2, rateDurationS: 6, rateWarmupS: 1 }),
  concurrency: Number(flag("concurrency") ?? 32),
  channels: Number(flag("channels") ?? 4),
  rate: Number(flag("rate") ?? 500),
  // Every call carries a deadline (grpc-timeout), as callers should; --deadline-ms=0: none.
  deadlineMs: Number(flag("deadline-ms") ?? 10_000),
};
const SERVICE = "bench-grpc"; // the proxyless server
const SIDECAR_SERVICE = "bench-grpc-sidecar"; // the same app behind a Weft server sidecar
const CLIENT = "bench-client";

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const r1 = (x) => (Number.isFinite(x) ? Math.round(x * 10) / 10 : null);
const r3 = (x) => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null);
const pkgVersion = (p) => {
  try {
    return JSON.parse(readFileSync(join(ROOT, "node_modules", p, "package.json"), "utf8")).version;
  } catch {
    return undefined;
  }
};

/** `weft ARGS` to completion (bounded): -> {code, stdout, stderr}. */
function weft(args, timeoutMs = 60_000) {
  const r = spawnSync(process.execPath, [WEFT_BIN, ...args], { encoding: "utf8", timeout: timeoutMs });
  return { code: r.status ?? r.signal, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/**
 * One generator run: resolves {result, sample} where sample is the RunSampler's figures over the
 * generator's measured window ("grpc-load window start" .. "window end" on its stdout).
 */
function runGenerator(cfg, env, pids) {
  const timeoutMs = (cfg.readyTimeoutMs ?? 30_000) + ((cfg.warmupS ?? 0) + cfg.durationS) * 1000 + 40_000;
  return new Promise((ok) => {
    const p = spawn(process.execPath, [join(ROOT, "bench/lib/grpc-load.mjs"), JSON.stringify(cfg)], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    let out = "";
    let err = "";
    let sampler;
    let sample;
    p.stderr.setEncoding("utf8").on("data", (c) => {
      err = (err + c).slice(-4000);
    });
    p.stdout.setEncoding("utf8").on("data", (c) => {
      out += c;
      if (!sampler && out.includes("grpc-load window start\n")) {
        sampler = new RunSampler({ ...pids, generator: p.pid });
        sampler.start();
      }
      if (sampler && !sample && out.includes("grpc-load window end\n")) sample = sampler.stop();
    });
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.once("close", (code, signal) => {
      clearTimeout(timer);
      if (sampler && !sample) sample = sampler.stop();
      const m = /GRPCLOAD (\{.*\})/.exec(out);
      let result;
      try {
        result = m ? JSON.parse(m[1]) : undefined;
      } catch {
        result = undefined;
      }
      if (!result || result.error)
        result = {
          error:
            result?.error ?? `grpc-load exited (${code ?? signal}) without a result: ${err.slice(-1500)}`,
        };
      ok({ result, sample });
    });
  });
}

// ---------------------------------------------------------------- set-up

const started = Date.now();
const haproxyTool = ensureTool("haproxy", "haproxy");
const work = mkdtempSync(join(tmpdir(), "weft-bench-proxyless-"));
const children = [];
const skipped = [];
const crashes = [];
let phase = "set-up";
let shuttingDown = false;
const srv = await startXdsBenchServer("proxyless", QUICK ? 300_000 : 900_000);
const cleanup = async () => {
  shuttingDown = true;
  await Promise.all(children.reverse().map((c) => c.stop().catch(() => {})));
  await srv.stop();
  rmSync(work, { recursive: true, force: true });
};
process.once("SIGINT", () => cleanup().then(() => process.exit(130)));
/** A long-lived child that exits before we stop it is a crash: recorded with its stderr. */
const watch = (p, what) => {
  children.push(p);
  p.exited.then(({ code, signal }) => {
    if (p.stopping() || shuttingDown) return;
    const tail = p.stderrTail().slice(-3000);
    crashes.push({ what, code, signal, during: phase, at: new Date().toISOString(), stderrTail: tail });
    console.error(`\n!! ${what} exited unexpectedly (${code ?? signal}) during ${phase}:\n${tail}\n`);
  });
  return p;
};

try {
  const api = new WeftClient({ addr: srv.url, token: srv.token, timeoutMs: 30_000 });
  const { trustDomain } = await api.caRoots();
  await api.applyConfig(
    [SERVICE, SIDECAR_SERVICE].map((name) => ({
      kind: "Intention",
      name,
      sources: [{ name: CLIENT, action: "allow" }],
    })),
  );

  // --- proxyless: the server's and the client's registration, certificates and bootstrap files.
  // helper A's `xds` health check (passing while the workload's ADS stream is up) would leave the
  // server, which opens no ADS stream, unroutable: off when this weft has the flag.
  const noXdsHealth = weft(["bootstrap", "grpc", "--help"]).stdout.includes("--no-xds-health");
  const bootstrap = async (service, id, port, upstreams) => {
    const tok = await api.createToken({
      policies: [`service:${service}:write`],
      description: `bench proxyless ${id}`,
    });
    const dir = join(work, id);
    mkdirSync(dir);
    const file = join(dir, "xds-bootstrap.json");
    const r = weft([
      ...["bootstrap", "grpc", "--service", service, "--id", id, "--port", String(port)],
      ...upstreams.flatMap((u) => ["--upstream", u]),
      ...["--cert-dir", join(dir, "certs"), "--out", file],
      ...["--xds-server", `127.0.0.1:${srv.xdsPort}`, "--addr", srv.addr, "--token", tok.secretId],
      ...(noXdsHealth ? ["--no-xds-health"] : []),
    ]);
    if (r.code !== 0) throw new Error(`weft bootstrap grpc --service ${service}: ${r.stderr || r.stdout}`);
    const certs = join(dir, "certs");
    return {
      file,
      certs: { ca: join(certs, "ca.pem"), cert: join(certs, "cert.pem"), key: join(certs, "key.pem") },
      certDir: certs,
    };
  };
  const tlsPort = await freePort();
  const serverBoot = await bootstrap(SERVICE, `${SERVICE}-proxyless-1`, tlsPort, []);
  // The client serves nothing; registering needs a port, and it only has to be distinct.
  const clientBoot = await bootstrap(CLIENT, `${CLIENT}-proxyless-1`, await freePort(), [SERVICE]);

  const app = watch(
    await spawnReady(process.execPath, [join(ROOT, "bench/lib/grpc-bench-app.mjs")], {
      ready: /grpc bench app ready plain=(\d+) tls=(\d+)/,
      what: "grpc bench app",
      env: { ...process.env, TLS_PORT: String(tlsPort), CERT_DIR: serverBoot.certDir },
    }),
    "grpc bench app",
  );
  const plainPort = Number(app.match[1]);

  // --- Weft: a server sidecar in front of the plaintext port, a client sidecar with an upstream to it.
  const weftArgs = (service, extra = []) =>
    sidecarArgs(srv, {
      service,
      appPort: plainPort,
      protocol: "grpc",
      extra: ["--health-interval", "500ms", ...extra],
    });
  const startSidecar = async (args, what) =>
    watch(
      await spawnReady(process.execPath, args, {
        ready: SIDECAR_READY,
        what,
        timeoutMs: 60_000,
      }),
      what,
    );
  const weftPort = await freePort();
  const weftServer = await startSidecar(weftArgs(SIDECAR_SERVICE), `weft proxy ${SIDECAR_SERVICE}`);
  const weftClient = await startSidecar(
    weftArgs(CLIENT, ["--upstream", `${SIDECAR_SERVICE}=${weftPort}`]),
    `weft proxy ${CLIENT}`,
  );

  // --- HAProxy: the same pair as dataplane.mjs's gRPC route (h2 both sides, mTLS between).
  let hap;
  const hapPort = await freePort();
  if (haproxyTool.skip) {
    skipped.push({ line: "haproxy", reason: haproxyTool.skip });
  } else {
    const certDir = join(work, "haproxy-certs");
    mkdirSync(certDir);
    const certs = {
      client: await issueFromWeftCa(api, certDir, "haproxy-client", trustDomain),
      server: await issueFromWeftCa(api, certDir, "haproxy-server", trustDomain),
    };
    hap = await startHaproxyPair(
      haproxyTool.path,
      work,
      [{ name: "grpc", mode: "h2", clientPort: hapPort, peerPort: await freePort(), appPort: plainPort }],
      certs,
    );
    watch(hap.client, "haproxy client side");
    watch(hap.server, "haproxy server side");
  }

  // --- the lines
  const serverId = `spiffe://${trustDomain}/ns/default/svc/${SERVICE}`;
  const LINES = [
    {
      id: "direct",
      title: "direct, plaintext",
      gen: { target: `127.0.0.1:${plainPort}`, creds: "insecure" },
    },
    {
      id: "direct-mtls",
      title: "direct, mTLS (createSsl, mesh certificates)",
      gen: { target: `127.0.0.1:${tlsPort}`, creds: "tls", tls: { ...clientBoot.certs, serverId } },
    },
    {
      id: "weft",
      title: "Weft sidecar pair",
      gen: { target: `127.0.0.1:${weftPort}`, creds: "insecure" },
      proxies: { clientProxy: weftClient.pid, serverProxy: weftServer.pid },
    },
    ...(hap
      ? [
          {
            id: "haproxy",
            title: "HAProxy pair (mTLS, h2)",
            gen: { target: `127.0.0.1:${hapPort}`, creds: "insecure" },
            proxies: { clientProxy: hap.client.pid, serverProxy: hap.server.pid },
          },
        ]
      : []),
    {
      id: "proxyless",
      title: `proxyless (grpc-js-xds, xds:///${SERVICE})`,
      gen: { target: `xds:///${SERVICE}`, creds: "xds" },
      env: { GRPC_XDS_BOOTSTRAP: clientBoot.file },
    },
  ].filter((l) => !ONLY || ONLY.includes(l.id));

  const pidsFor = (line) => ({
    self: process.pid,
    controlPlane: srv.pid,
    app: app.pid,
    weftClient: weftClient.pid,
    weftServer: weftServer.pid,
    ...(hap ? { haproxyClient: hap.client.pid, haproxyServer: hap.server.pid } : {}),
    ...(line.proxies ?? {}),
  });

  /** One measured generator run on `line`, with the CPU of every process over its window. */
  async function measured(line, gen) {
    const crashesBefore = crashes.length;
    const { result, sample } = await runGenerator(
      { ...gen, ...line.gen, channels: CFG.channels, deadlineMs: CFG.deadlineMs },
      line.env ?? {},
      pidsFor(line),
    );
    if (result.error || !sample) {
      return { line: line.id, failed: (result.error ?? "no measured window").slice(0, 2000), errors: 1 };
    }
    const calls = result.calls;
    const perCall = (s) => (calls > 0 && Number.isFinite(s) ? r1((s * 1e6) / calls) : null);
    const cpu = {
      generator: sample.cpu.generator,
      app: sample.cpu.app,
      controlPlane: sample.cpu.controlPlane,
      ...(line.proxies ? { clientProxy: sample.cpu.clientProxy, serverProxy: sample.cpu.serverProxy } : {}),
    };
    return {
      line: line.id,
      achievedRps: result.achievedRps,
      calls,
      errors: result.errors,
      ...(result.errorKinds ? { errorKinds: result.errorKinds } : {}),
      latencyMs: result.latencyMs,
      ...(result.timerLagMs ? { timerLagMs: result.timerLagMs } : {}),
      readyMs: result.readyMs,
      windowS: r3(sample.seconds),
      cpuS: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, r3(v)])),
      // The generator's own figure (µs resolution; /proc counts 10 ms ticks) is the one reported.
      cpuUsPerCall: {
        ...Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, perCall(v)])),
        generator: result.cpuUsPerCall,
        generatorProc: perCall(cpu.generator),
      },
      vcpu: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, r3(v / sample.seconds)])),
      maxRssMb: {
        generator: result.maxRssMb,
        ...(line.proxies
          ? { clientProxy: r1(sample.maxRssMb.clientProxy), serverProxy: r1(sample.maxRssMb.serverProxy) }
          : {}),
      },
      ...(crashes.length > crashesBefore ? { crashes: crashes.length - crashesBefore } : {}),
      otherLoadCores: r3(Math.max(0, sample.otherProcessesCpu) / sample.seconds),
    };
  }

  // --- readiness and warm-up: a short run on every line; a line that never answers is skipped.
  phase = "warm-up";
  const lines = [];
  for (const line of LINES) {
    const m = await measured(line, {
      mode: "closed",
      concurrency: CFG.concurrency,
      durationS: QUICK ? 0.5 : 1,
      warmupS: 0,
      readyTimeoutMs: 60_000,
    });
    if (m.failed) {
      console.log(`skipping ${line.id}: ${m.failed}`);
      skipped.push({
        line: line.id,
        reason: m.failed,
        ...(line.id === "proxyless" ? { controlPlaneLog: srv.stderrTail().slice(-3000) } : {}),
      });
      continue;
    }
    console.log(`${line.id} ready (${m.readyMs} ms to the first answer; warm-up ${m.achievedRps} calls/s)`);
    lines.push(line);
  }
  const setupS = r1((Date.now() - started) / 1000);
  console.log(`set-up ${setupS} s; measuring (${QUICK ? "quick" : "full"})...`);
  const orderFor = (round) => (round % 2 === 0 ? lines : [...lines].reverse());

  /** Interleaved rounds of one load on every line; `show` prints a run's figure. */
  const rounds = async (label, count, load, show) => {
    const runs = [];
    process.stdout.write(`${label}: `);
    for (let round = 0; round < count; round++) {
      for (const line of orderFor(round)) {
        phase = `${label} ${line.id} round ${round}`;
        const m = await measured(line, load);
        m.round = round;
        runs.push(m);
        process.stdout.write(`${line.id} ${m.failed ? "FAILED" : show(m)}  `);
      }
    }
    process.stdout.write("\n");
    return runs;
  };
  const maxRuns = await rounds(
    `closed loop, ${CFG.concurrency} outstanding`,
    CFG.rounds,
    { mode: "closed", concurrency: CFG.concurrency, durationS: CFG.durationS, warmupS: CFG.warmupS },
    (m) => `${m.achievedRps}/s`,
  );
  const rateRuns = await rounds(
    `fixed rate ${CFG.rate}/s`,
    CFG.rateRounds,
    { mode: "open", rate: CFG.rate, durationS: CFG.rateDurationS, warmupS: CFG.rateWarmupS },
    (m) => `p50 ${m.latencyMs.p50} p99 ${m.latencyMs.p99}`,
  );

  const result = {
    bench: "proxyless",
    date: new Date().toISOString(),
    quick: QUICK,
    config: CFG,
    machine: machineInfo(),
    tools: toolVersions(),
    versions: { grpcJs: pkgVersion("@grpc/grpc-js"), grpcJsXds: pkgVersion("@grpc/grpc-js-xds") },
    generator:
      "bench/lib/grpc-load.mjs: grpc-js unary /bench.Bench/Echo (32 B, raw codec), one channel (own HTTP/2 " +
      "connection) per `channels`; closed loop: `concurrency` calls outstanding; open loop: evenly paced " +
      "at `rate`, latency from the scheduled time",
    services: { proxyless: SERVICE, sidecar: SIDECAR_SERVICE, client: CLIENT },
    proxylessServer: {
      registeredWith: "weft bootstrap grpc --cert-dir",
      noXdsHealthFlag: noXdsHealth,
      serverId,
    },
    lines: lines.map((l) => ({ id: l.id, title: l.title, target: l.gen.target, creds: l.gen.creds })),
    skipped,
    crashes,
    setupS,
    totalS: r1((Date.now() - started) / 1000),
    maxThroughput: maxRuns,
    fixedRate: rateRuns,
  };
  result.summary = summarize(result, lines);
  const file = writeResult("proxyless", result);
  const md = proxylessMarkdown(result);
  writeFileSync(file.replace(/\.json$/, ".md"), `${md}\n`);
  console.log(`\n${md}`);
  console.log(`wrote ${file} (and .md) in ${result.totalS} s`);
} finally {
  await cleanup();
}
process.exit(0);

// ---------------------------------------------------------------- summary figures

/**
 * Medians over rounds per line; ratios (to direct plaintext, to the Weft pair)
 * and added latency taken round by round (the runs of one round are next to
 * each other in time, so they share the machine's state), then the median.
 */
function summarize(result, lines) {
  const ids = lines.map((l) => l.id);
  const perLine = (runs, id) => runs.filter((r) => r.line === id && !r.failed);
  const perRound = (runs, f) =>
    median(
      [...new Set(runs.map((r) => r.round))].map((round) =>
        f((id) => runs.find((r) => r.round === round && r.line === id && !r.failed)),
      ),
    );
  const cpuFigures = (rs) => {
    const us = (k) => r1(median(rs.map((r) => r.cpuUsPerCall[k])));
    const out = {
      generatorUs: us("generator"),
      appUs: us("app"),
      clientProxyUs: us("clientProxy"),
      serverProxyUs: us("serverProxy"),
      controlPlaneUs: us("controlPlane"),
    };
    out.totalUs = r1(
      [out.generatorUs, out.appUs, out.clientProxyUs, out.serverProxyUs]
        .filter(Number.isFinite)
        .reduce((a, b) => a + b, 0),
    );
    return out;
  };
  const failedOf = (runs, id) => runs.filter((r) => r.line === id && r.failed).length;
  const out = { maxThroughput: {}, fixedRate: {} };
  let otherMax = 0;
  for (const r of [...result.maxThroughput, ...result.fixedRate])
    if (r.otherLoadCores > otherMax) otherMax = r.otherLoadCores;
  out.otherLoadCoresMax = otherMax;

  for (const id of ids) {
    const rs = perLine(result.maxThroughput, id);
    const lat = (k) => median(rs.map((r) => r.latencyMs[k]));
    out.maxThroughput[id] = {
      rps: Math.round(median(rs.map((r) => r.achievedRps))),
      // The spread over the rounds: how much the machine moved under this line.
      rpsRange: rs.length
        ? [Math.min(...rs.map((r) => r.achievedRps)), Math.max(...rs.map((r) => r.achievedRps))]
        : [],
      vsDirect: r3(perRound(result.maxThroughput, (g) => g(id)?.achievedRps / g("direct")?.achievedRps)),
      vsWeft: r3(perRound(result.maxThroughput, (g) => g(id)?.achievedRps / g("weft")?.achievedRps)),
      p50: lat("p50"),
      p90: lat("p90"),
      p99: lat("p99"),
      ...cpuFigures(rs),
      errors: rs.reduce((a, r) => a + r.errors, 0) + failedOf(result.maxThroughput, id),
      failedRuns: failedOf(result.maxThroughput, id),
    };
  }
  if (result.fixedRate.length) {
    for (const id of ids) {
      const rs = perLine(result.fixedRate, id);
      const lat = (k) => median(rs.map((r) => r.latencyMs[k]));
      const added = (k) =>
        r3(perRound(result.fixedRate, (g) => g(id)?.latencyMs[k] - g("direct")?.latencyMs[k]));
      const hasProxies = rs.some((r) => r.vcpu.clientProxy !== undefined);
      out.fixedRate[id] = {
        achievedRps: Math.round(median(rs.map((r) => r.achievedRps))),
        p50: lat("p50"),
        p90: lat("p90"),
        p99: lat("p99"),
        p999: lat("p999"),
        ...(id === "direct"
          ? {}
          : { addedMs: { p50: added("p50"), p90: added("p90"), p99: added("p99"), p999: added("p999") } }),
        timerLagP50: median(rs.map((r) => r.timerLagMs?.p50)),
        ...cpuFigures(rs),
        ...(hasProxies
          ? {
              proxyVcpu: {
                clientProxy: r3(median(rs.map((r) => r.vcpu.clientProxy))),
                serverProxy: r3(median(rs.map((r) => r.vcpu.serverProxy))),
              },
            }
          : {}),
        generatorVcpu: r3(median(rs.map((r) => r.vcpu.generator))),
        errors: rs.reduce((a, r) => a + r.errors, 0) + failedOf(result.fixedRate, id),
      };
    }
  }
  return out;
}
