// How long an intention takes to reach the proxies it concerns: from the
// apply (POST /v1/config/apply, what `weft apply` sends) to the moment each of
// N proxies has a snapshot whose inbound authz lists the new source, for
// N = 10, 100 and 1,000.
//
// A real `weft server` (SQLite). For each N, N instances of one destination
// service register with a `proxy` block and each holds a real config stream
// (GET /v1/proxy/stream/:id with the client code the sidecar uses): these are
// the simulated proxies, lightweight stream clients in this one process.
// Then R rounds: apply an Intention for the destination with a new source,
// and time every stream's arrival. One more round goes through the real CLI
// (`weft apply -f`, timed from the spawn: Node start-up included).
// The streams of one N are closed before the next N starts.
//
//   npm run build && node bench/intention-push.mjs [--quick]
import { spawn } from "node:child_process";
import { setMaxListeners } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WeftClient } from "@weft/api/client";
import { machineInfo } from "./lib/machine.mjs";
import { ROOT, startBenchServer, writeResult } from "./lib/weft-server.mjs";

const QUICK = process.argv.includes("--quick");
const SIZES = [10, 100, 1000];
const ROUNDS = QUICK ? 3 : 10;
const ARRIVAL_TIMEOUT_MS = 30_000;

const srv = await startBenchServer("intention-push", QUICK ? 120_000 : 300_000);
const client = new WeftClient({ addr: srv.url, token: srv.token, timeoutMs: 30_000 });
const work = mkdtempSync(join(tmpdir(), "weft-bench-intentions-"));

async function inBatches(n, size, fn) {
  for (let i = 0; i < n; i += size) {
    await Promise.all(Array.from({ length: Math.min(size, n - i) }, (_, j) => fn(i + j)));
  }
}

const q = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
const r1 = (x) => Math.round(x * 10) / 10;

/** Applies through the real CLI; resolves when it exits. */
function cliApply(file) {
  return new Promise((ok, fail) => {
    const p = spawn(
      process.execPath,
      [
        join(ROOT, "packages/cli/dist/bin/weft.js"),
        "apply",
        "-f",
        file,
        "--addr",
        srv.addr,
        "--token",
        srv.token,
      ],
      { stdio: ["ignore", "ignore", "pipe"], cwd: work },
    );
    let err = "";
    p.stderr.setEncoding("utf8").on("data", (c) => {
      err += c;
    });
    p.once("exit", (code) => (code === 0 ? ok() : fail(new Error(`weft apply exited ${code}: ${err}`))));
  });
}

async function measure(n) {
  const dst = `dst-${n}`;
  await inBatches(n, 50, (i) =>
    client.registerInstance({
      id: `${dst}-${i}`,
      service: dst,
      address: "127.0.0.1",
      port: 20000 + i,
      checks: [{ id: "app", ttl: "1h", status: "passing" }],
      proxy: { protocol: "http", upstreams: [] },
    }),
  );
  const ac = new AbortController();
  setMaxListeners(0, ac.signal);
  // Per stream: when each source name was first seen in its inbound authz.
  const streams = Array.from({ length: n }, () => ({ seenAt: new Map(), first: false }));
  let ready = 0;
  let onReady;
  const allReady = new Promise((ok) => {
    onReady = ok;
  });
  streams.forEach((s, i) => {
    (async () => {
      for await (const m of client.proxyStream(`${dst}-${i}`, { signal: ac.signal, idleMs: 120_000 })) {
        if (m.type !== "snapshot") continue;
        const now = performance.now();
        for (const src of m.snapshot.inbound.authz.sources)
          if (!s.seenAt.has(src.name)) s.seenAt.set(src.name, now);
        if (!s.first) {
          s.first = true;
          if (++ready === n) onReady();
        }
      }
    })().catch((e) => {
      if (!ac.signal.aborted) console.error(`stream ${dst}-${i} failed: ${e.message}`);
    });
  });
  await allReady;

  const waitAll = async (name) => {
    const deadline = Date.now() + ARRIVAL_TIMEOUT_MS;
    while (streams.some((s) => !s.seenAt.has(name)) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 1));
  };
  const lat = [];
  const toAll = [];
  const intention = (src) => ({ kind: "Intention", name: dst, sources: [{ name: src, action: "allow" }] });
  for (let r = 0; r < ROUNDS; r++) {
    const src = `src-${r}`;
    const t0 = performance.now();
    await client.applyConfig([intention(src)]);
    await waitAll(src);
    const ls = streams.map((s) => (s.seenAt.get(src) ?? Number.NaN) - t0);
    lat.push(...ls);
    toAll.push(Math.max(...ls));
  }
  // One round through `weft apply -f` (process start-up included).
  const file = join(work, `intention-${n}.json`);
  writeFileSync(file, JSON.stringify(intention("src-cli")));
  const t0 = performance.now();
  await cliApply(file);
  const cliApplyMs = performance.now() - t0;
  await waitAll("src-cli");
  const cliToAllMs = Math.max(...streams.map((s) => (s.seenAt.get("src-cli") ?? Number.NaN) - t0));
  const serverRssMb = srv.rssMb();
  ac.abort();
  await inBatches(n, 50, (i) => client.deregisterInstance(`${dst}-${i}`));

  const missed = lat.filter((x) => Number.isNaN(x)).length;
  const sorted = lat.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  toAll.sort((a, b) => a - b);
  return {
    proxies: n,
    rounds: ROUNDS,
    latencyMs: {
      p50: r1(q(sorted, 0.5)),
      p90: r1(q(sorted, 0.9)),
      p99: r1(q(sorted, 0.99)),
      max: r1(sorted[sorted.length - 1]),
    },
    toAllProxiesMs: { median: r1(q(toAll, 0.5)), max: r1(toAll[toAll.length - 1]) },
    viaCli: { applyCommandMs: r1(cliApplyMs), toAllProxiesMs: r1(cliToAllMs) },
    missed,
    serverRssMb: Math.round(serverRssMb),
  };
}

try {
  const byProxies = [];
  for (const n of SIZES) {
    const r = await measure(n);
    byProxies.push(r);
    console.log(
      `intention to ${n} proxies: p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, all of them ${r.toAllProxiesMs.median} ms (median of ${ROUNDS}); ` +
        `via \`weft apply\`: ${r.viaCli.toAllProxiesMs} ms (the command itself ${r.viaCli.applyCommandMs} ms); ${r.missed} missed; server RSS ${r.serverRssMb} MB`,
    );
  }
  const result = {
    bench: "intention-push",
    date: new Date().toISOString(),
    quick: QUICK,
    machine: machineInfo(),
    byProxies,
  };
  console.log(`wrote ${writeResult("intention-push", result)}`);
} finally {
  srv.stop();
  rmSync(work, { recursive: true, force: true });
}
process.exit(0);
