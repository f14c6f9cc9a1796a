// External tools for the data-plane bench: finding (or installing, from
// Debian, when we are root) haproxy, wrk and h2load; running wrk and h2load
// and reading their figures; picking free loopback ports; waiting for a
// child's ready line. Every run is bounded in time.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const which = (bin) => spawnSync("sh", ["-c", `command -v ${bin}`], { encoding: "utf8" }).stdout.trim();

let aptUpdated = false;

/**
 * The path of `bin`, installing Debian package `pkg` when it is missing and
 * we may (root, apt-get present): `apt-get update` once per run, then install.
 * -> {path} or {skip: reason}.
 */
export function ensureTool(bin, pkg) {
  const found = which(bin);
  if (found) return { path: found };
  if (process.getuid?.() !== 0 || !which("apt-get")) {
    return { skip: `${bin} not found and cannot install ${pkg} (needs root and apt-get)` };
  }
  console.log(`installing ${pkg} (apt-get) for ${bin}...`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  if (!aptUpdated) {
    const u = spawnSync("apt-get", ["update", "-qq"], { stdio: "ignore", env, timeout: 180_000 });
    aptUpdated = u.status === 0;
  }
  const r = spawnSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", pkg], {
    encoding: "utf8",
    env,
    timeout: 300_000,
  });
  const after = which(bin);
  if (after) return { path: after };
  return {
    skip: `${bin}: apt-get install ${pkg} failed (${(r.stderr || r.stdout || "").trim().slice(-300)})`,
  };
}

/** A free TCP port on 127.0.0.1 (bound, then released: a tiny race, fine on a bench machine). */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Resolves once something accepts on 127.0.0.1:port (polling), or rejects after timeoutMs. */
export async function waitForPort(port, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((r) => {
      const s = net.connect({ host: "127.0.0.1", port }, () => {
        s.destroy();
        r(true);
      });
      s.once("error", () => r(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Spawns a long-lived child and waits for `ready` on its stdout (`ready: null`: only for the spawn).
 * -> {proc, pid, match, stderrTail(), stop()}; stop() sends SIGTERM, then SIGKILL after 10 s.
 */
export async function spawnReady(cmd, args, { ready, what, timeoutMs = 30_000, env } = {}) {
  const proc = spawn(cmd, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: env ?? process.env,
  });
  let out = "";
  let err = "";
  proc.stdout.setEncoding("utf8");
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (c) => {
    err = (err + c).slice(-20_000);
  });
  const match = await new Promise((ok, fail) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      fail(new Error(`${what}: not ready within ${timeoutMs} ms\n${err.slice(-3000)}`));
    }, timeoutMs);
    proc.once("exit", (code, sig) => {
      clearTimeout(timer);
      fail(new Error(`${what} exited (${code ?? sig}) before it was ready\n${err.slice(-3000)}`));
    });
    if (ready === null) {
      proc.once("spawn", () => {
        clearTimeout(timer);
        ok(null);
      });
    }
    proc.stdout.on("data", (c) => {
      out += c;
      if (ready === null) return;
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        ok(m);
      }
    });
  });
  proc.removeAllListeners("exit");
  let stopping = false;
  const exited = new Promise((r) => {
    if (proc.exitCode !== null || proc.signalCode !== null)
      r({ code: proc.exitCode, signal: proc.signalCode });
    else proc.once("exit", (code, signal) => r({ code, signal }));
  });
  return {
    proc,
    pid: proc.pid,
    match,
    stderrTail: () => err,
    /** Resolves with {code, signal} when the process is gone. */
    exited,
    alive: () => proc.exitCode === null && proc.signalCode === null,
    /** Whether stop() was called (an exit before that was unexpected). */
    stopping: () => stopping,
    async stop(timeoutMs = 10_000) {
      stopping = true;
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Runs a short-lived command to completion (bounded): -> {code, stdout, stderr}. */
export function run(cmd, args, timeoutMs) {
  return new Promise((ok) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.setEncoding("utf8").on("data", (c) => {
      stdout += c;
    });
    p.stderr.setEncoding("utf8").on("data", (c) => {
      stderr = (stderr + c).slice(-20_000);
    });
    const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.once("close", (code, sig) => {
      clearTimeout(t);
      ok({ code: code ?? sig, stdout, stderr });
    });
  });
}

const WRK_LUA = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"durationUs":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
`;

/** wrk scripts by request body size (0: the plain GET): the report, and a POST of that many bytes. */
const luaFiles = new Map();
function wrkScript(bodyBytes = 0) {
  let file = luaFiles.get(bodyBytes);
  if (!file) {
    const dir = mkdtempSync(join(tmpdir(), "weft-bench-wrk-"));
    file = join(dir, "report.lua");
    const post =
      bodyBytes > 0
        ? `wrk.method = "POST"\nwrk.body = string.rep("b", ${bodyBytes})\n` +
          `wrk.headers["Content-Type"] = "application/octet-stream"\n`
        : "";
    writeFileSync(file, post + WRK_LUA);
    luaFiles.set(bodyBytes, file);
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  return file;
}

/**
 * wrk, one thread, closed loop at `connections`; `bodyBytes` > 0 POSTs a body of that size.
 * -> {achievedRps, requests, errors, latencyMs: {p50,p90,p99,p999,max,mean}}
 */
export async function runWrk({ port, path = "/", connections, durationS, headers = [], bodyBytes = 0 }) {
  // wrk takes whole seconds.
  const args = ["-t1", `-c${connections}`, `-d${Math.max(1, Math.round(durationS))}s`, "--timeout", "5s"];
  args.push("-s", wrkScript(bodyBytes));
  for (const h of headers) args.push("-H", h);
  args.push(`http://127.0.0.1:${port}${path}`);
  const r = await run("wrk", args, (durationS + 30) * 1000);
  const m = /WRKJSON (\{.*\})/.exec(r.stdout);
  if (!m) throw new Error(`wrk failed (${r.code}): ${r.stdout.slice(-500)} ${r.stderr.slice(-500)}`);
  const w = JSON.parse(m[1]);
  const errors = Object.values(w.errors).reduce((a, b) => a + b, 0);
  const ms = (us) => Math.round(us) / 1000;
  return {
    achievedRps: Math.round(w.requests / (w.durationUs / 1e6)),
    requests: w.requests,
    errors,
    ...(errors > 0 ? { errorKinds: w.errors } : {}),
    latencyMs: {
      p50: ms(w.p50),
      p90: ms(w.p90),
      p99: ms(w.p99),
      p999: ms(w.p999),
      max: ms(w.max),
      mean: ms(w.mean),
    },
  };
}

/**
 * h2load over h2c (prior knowledge), one thread, `clients` connections with
 * `streams` concurrent streams each, for `durationS` after `warmupS`; a gRPC
 * unary call (POST of one 32-byte message) when `grpc` is set (h2load checks
 * the HTTP status only, not grpc-status). Percentiles from its per-request log.
 */
export async function runH2load({
  port,
  path = "/",
  clients,
  streams,
  durationS,
  warmupS = 1,
  grpc = false,
}) {
  const dir = mkdtempSync(join(tmpdir(), "weft-bench-h2load-"));
  try {
    const log = join(dir, "requests.log");
    const args = ["-t1", `-c${clients}`, `-m${streams}`, `-D${Math.round(durationS * 1000)}ms`];
    if (warmupS > 0) args.push(`--warm-up-time=${Math.round(warmupS * 1000)}ms`);
    args.push("--log-file", log);
    if (grpc) {
      const body = join(dir, "req.bin");
      writeFileSync(body, Buffer.concat([Buffer.from([0, 0, 0, 0, 32]), Buffer.alloc(32, "g")]));
      args.push("-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers");
    }
    args.push(`http://127.0.0.1:${port}${path}`);
    const r = await run("h2load", args, (durationS + warmupS + 30) * 1000);
    const fin = /finished in ([\d.]+)s, ([\d.]+) req\/s/.exec(r.stdout);
    const reqs =
      /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
        r.stdout,
      );
    const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(r.stdout);
    if (!fin || !reqs)
      throw new Error(`h2load failed (${r.code}): ${r.stdout.slice(-800)} ${r.stderr.slice(-500)}`);
    const lat = [];
    for (const line of readFileSync(log, "utf8").split("\n")) {
      const f = line.split("\t");
      if (f.length >= 3 && Number(f[1]) >= 200 && Number(f[1]) < 300) lat.push(Number(f[2]) / 1000);
    }
    lat.sort((a, b) => a - b);
    const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : Number.NaN);
    const mean = lat.reduce((a, b) => a + b, 0) / (lat.length || 1);
    const r3 = (x) => Math.round(x * 1000) / 1000;
    return {
      achievedRps: Math.round(Number(fin[2])),
      requests: Number(reqs[3]),
      // failed + errored + timeout, and any 4xx/5xx answer.
      errors:
        Number(reqs[5]) +
        Number(reqs[6]) +
        Number(reqs[7]) +
        (codes ? Number(codes[3]) + Number(codes[4]) : 0),
      h2loadSummary: [fin[0], reqs[0], codes?.[0]].filter(Boolean).join("; "),
      latencyMs: {
        p50: r3(q(0.5)),
        p90: r3(q(0.9)),
        p99: r3(q(0.99)),
        p999: r3(q(0.999)),
        max: r3(lat[lat.length - 1] ?? Number.NaN),
        mean: r3(mean),
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
