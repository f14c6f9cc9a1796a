// One gRPC unary load generator for every line of the proxyless bench, so the
// ratios compare paths, not clients: a grpc-js client calling
// /bench.Bench/Echo (raw-buffer codec, a 32-byte message: no protobuf work
// to measure) over `channels` channels, each with its own HTTP/2 connection
// (a local subchannel pool, as h2load -c gives separate connections).
//   creds "insecure": plaintext (direct, and the proxies' plaintext ports);
//   creds "tls": grpc-js createSsl with the mesh's certificate files and the
//     server's SPIFFE ID checked instead of a host name;
//   creds "xds": @grpc/grpc-js-xds registered, XdsChannelCredentials, the
//     target xds:///SERVICE and GRPC_XDS_BOOTSTRAP from the environment
//     (mTLS and the endpoints from the control plane).
// Two modes:
//   closed: `concurrency` calls outstanding at all times (a call completes,
//     the next one starts), spread round robin over the channels;
//   open: calls evenly spaced at `rate` per second by the generator itself,
//     whatever is outstanding; latency from each call's *scheduled* time, so a
//     stall is charged to every call behind it (no coordinated omission); the
//     timer lag (Node timers: ~1 ms resolution) is reported next to it.
// Bounded: a deadline on every call, at most `maxCalls` calls, at most
// `maxOutstanding` outstanding in open loop (beyond that a call is shed and
// counted), and a hard exit after the expected time plus a margin.
// First a readiness phase (calls until one succeeds on every channel, within
// readyTimeoutMs: an xDS channel resolves its endpoints then), then `warmupS`
// of unrecorded load, then the `durationS` window. Its own CPU
// (process.cpuUsage) covers the window only.
// Run as a child so its CPU is its own:
//   node bench/lib/grpc-load.mjs '{"target":"127.0.0.1:P","creds":"insecure","mode":"closed",...}'
// Prints "grpc-load window start" and "grpc-load window end" as the window
// opens and closes (the parent samples the other processes' CPU then), and
// last one line "GRPCLOAD {json}" with the result; exits 0, or 2 when never ready.
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { ECHO_PATH } from "./grpc-echo.mjs";

const cfg = JSON.parse(process.argv[2] ?? "{}");
const {
  target,
  creds = "insecure",
  tls = {},
  mode = "closed",
  channels = 4,
  concurrency = 32,
  rate = 500,
  durationS = 4,
  warmupS = 1,
  maxCalls = 5_000_000,
  maxOutstanding = 2000,
  deadlineMs = 10_000,
  readyTimeoutMs = 30_000,
  path = ECHO_PATH,
  payloadBytes = 32,
} = cfg;

const PAYLOAD = Buffer.alloc(payloadBytes, "g");
const id = (b) => b;
const out = (line) => process.stdout.write(`${line}\n`);
const r3 = (x) => Math.round(x * 1000) / 1000;

// Never hang: the whole run, plus the readiness phase and a drain, then out.
const hardMs = readyTimeoutMs + (warmupS + durationS) * 1000 + (deadlineMs || 10_000) + 15_000;
setTimeout(() => {
  out(`GRPCLOAD ${JSON.stringify({ error: `hard time limit (${hardMs} ms) reached` })}`);
  process.exit(3);
}, hardMs).unref();

async function channelCredentials() {
  if (creds === "insecure") return grpc.credentials.createInsecure();
  if (creds === "xds") {
    const xds = await import("@grpc/grpc-js-xds");
    xds.register();
    return new xds.XdsChannelCredentials(grpc.credentials.createInsecure());
  }
  if (creds === "tls") {
    // Mesh certificates carry a SPIFFE ID (URI SAN), no DNS name: check that instead of the host.
    const checkServerIdentity = (_host, cert) => {
      const uris = [...(cert.subjectaltname ?? "").matchAll(/URI:([^,\s]+)/g)].map((m) => m[1]);
      return uris.includes(tls.serverId)
        ? undefined
        : new Error(`server identity ${uris.join(",") || "(none)"} is not ${tls.serverId}`);
    };
    return grpc.credentials.createSsl(readFileSync(tls.ca), readFileSync(tls.key), readFileSync(tls.cert), {
      checkServerIdentity,
    });
  }
  throw new Error(`unknown creds "${creds}"`);
}

const channelCreds = await channelCredentials();
const clients = Array.from(
  { length: Math.max(1, channels) },
  () => new grpc.Client(target, channelCreds, { "grpc.use_local_subchannel_pool": 1 }),
);

/** One unary call on client `c`; cb(err) with err null on OK. */
// deadlineMs 0: no per-call deadline (no grpc-timeout header); the hard exit still bounds the run.
const call =
  deadlineMs > 0
    ? (c, cb) => clients[c].makeUnaryRequest(path, id, id, PAYLOAD, { deadline: Date.now() + deadlineMs }, cb)
    : (c, cb) => clients[c].makeUnaryRequest(path, id, id, PAYLOAD, {}, cb);

// ---------------------------------------------------------------- ready
async function ready() {
  const end = Date.now() + readyTimeoutMs;
  let last = "";
  for (let c = 0; c < clients.length; c++) {
    for (;;) {
      const err = await new Promise((r) =>
        clients[c].makeUnaryRequest(
          path,
          id,
          id,
          PAYLOAD,
          { deadline: Math.min(end, Date.now() + 2000) },
          (e) => r(e),
        ),
      );
      if (!err) break;
      last = `${err.code} ${err.details}`;
      if (Date.now() >= end) return last;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return undefined;
}

const t = performance.now();
const notReady = await ready();
const readyMs = Math.round(performance.now() - t);
if (notReady !== undefined) {
  out(`GRPCLOAD ${JSON.stringify({ error: `not ready within ${readyTimeoutMs} ms: ${notReady}`, readyMs })}`);
  process.exit(2);
}

// ---------------------------------------------------------------- load
const lat = []; // ms, successful calls completed inside the window
const errors = {}; // grpc code -> count, inside the window
let windowStart = Number.POSITIVE_INFINITY;
let windowEnd = Number.POSITIVE_INFINITY;
let okInWindow = 0;
let started = 0;
let outstanding = 0;
let shed = 0;
let cpu0;
let cpuWindow;
let wall0;
let windowWallS;
const timerLag = [];

function record(scheduled, err) {
  const now = performance.now();
  if (now < windowStart || now > windowEnd) return;
  if (err) errors[err.code] = (errors[err.code] ?? 0) + 1;
  else {
    okInWindow++;
    lat.push(now - scheduled);
  }
}

/** The CPU window (the closed loop's measured window too). */
function openWindow() {
  wall0 = performance.now();
  windowStart = wall0;
  windowEnd = wall0 + durationS * 1000;
  cpu0 = process.cpuUsage();
  out("grpc-load window start");
}

function closeWindow() {
  if (cpuWindow !== undefined) return;
  cpuWindow = process.cpuUsage(cpu0);
  windowWallS = (performance.now() - wall0) / 1000;
  out("grpc-load window end");
}

let drained;
const allDone = new Promise((r) => {
  drained = r;
});

function closedLoop() {
  const t0 = performance.now();
  const stopAt = t0 + (warmupS + durationS) * 1000;
  let windowOpened = false;
  const next = (slot) => {
    const now = performance.now();
    if (!windowOpened && now >= t0 + warmupS * 1000) {
      windowOpened = true;
      openWindow();
    }
    if (now >= stopAt || started >= maxCalls) {
      if (outstanding === 0) drained();
      return;
    }
    started++;
    outstanding++;
    const s = performance.now();
    call(slot % clients.length, (err) => {
      outstanding--;
      record(s, err);
      next(slot);
    });
  };
  if (warmupS <= 0) {
    windowOpened = true;
    openWindow();
  }
  for (let i = 0; i < concurrency; i++) next(i);
  setTimeout(closeWindow, (warmupS + durationS) * 1000);
}

function openLoop() {
  const interval = 1000 / rate;
  const total = Math.min(maxCalls, Math.round(rate * (warmupS + durationS)));
  const t0 = performance.now();
  // Measured: the calls *scheduled* after the warm-up (latency is from the schedule);
  // the CPU window runs from the first of them until every call has come back.
  const first = Math.ceil(rate * warmupS);
  let i = 0;
  const finished = () => {
    if (i >= total && outstanding === 0) {
      closeWindow();
      drained();
    }
  };
  const tick = () => {
    const now = performance.now();
    while (i < total && t0 + i * interval <= now) {
      const scheduled = t0 + i * interval;
      const measured = i >= first;
      if (i === first) openWindow();
      i++;
      if (measured) timerLag.push(now - scheduled);
      if (outstanding >= maxOutstanding) {
        if (measured) shed++;
        continue;
      }
      started++;
      outstanding++;
      call(i % clients.length, (err) => {
        outstanding--;
        if (measured) {
          if (err) errors[err.code] = (errors[err.code] ?? 0) + 1;
          else {
            okInWindow++;
            lat.push(performance.now() - scheduled);
          }
        }
        finished();
      });
    }
    if (i >= total) return finished();
    setTimeout(tick, Math.max(0, t0 + i * interval - performance.now()));
  };
  tick();
}

if (mode === "open") openLoop();
else closedLoop();
await allDone;
if (cpuWindow === undefined) closeWindow();

const pct = (xs) => {
  const s = Float64Array.from(xs).sort();
  const q = (p) => (s.length ? r3(s[Math.min(s.length - 1, Math.floor(p * s.length))]) : null);
  const mean = s.length ? r3(s.reduce((a, b) => a + b, 0) / s.length) : null;
  return {
    p50: q(0.5),
    p90: q(0.9),
    p99: q(0.99),
    p999: q(0.999),
    max: s.length ? r3(s[s.length - 1]) : null,
    mean,
  };
};
const cpuUs = cpuWindow.user + cpuWindow.system;
const errorCount = Object.values(errors).reduce((a, b) => a + b, 0) + shed;
const result = {
  mode,
  target,
  creds,
  channels: clients.length,
  ...(mode === "open" ? { rate } : { concurrency }),
  durationS,
  warmupS,
  readyMs,
  windowS: r3(windowWallS),
  calls: okInWindow,
  achievedRps: Math.round(okInWindow / durationS),
  errors: errorCount,
  ...(errorCount > 0 ? { errorKinds: { ...errors, ...(shed ? { shed } : {}) } } : {}),
  latencyMs: pct(lat),
  ...(mode === "open" ? { timerLagMs: pct(timerLag) } : {}),
  cpuS: r3(cpuUs / 1e6),
  cpuUsPerCall: okInWindow > 0 ? Math.round((cpuUs / okInWindow) * 10) / 10 : null,
  maxRssMb: Math.round(process.resourceUsage().maxRSS / 102.4) / 10,
};
out(`GRPCLOAD ${JSON.stringify(result)}`);
for (const c of clients) c.close();
process.exit(0);
