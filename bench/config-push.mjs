// How fast a change reaches every affected proxy, and how scoped snapshots
// keep a proxy's config small in a big mesh.
//
// A real `weft server` (SQLite). P proxies of service `web` (each with the
// upstream `api`) hold real config streams (GET /v1/proxy/stream/:id, the
// same client code the sidecar uses). Then, R times: one change that affects
// all of them (an `api` instance registered) and one that affects none (an
// instance of an unrelated service); we time from the API call to
// the moment each stream has the new snapshot, and count pushes that should
// not have happened. Finally U unrelated services with instances are added
// and the size of a web proxy's snapshot is compared before and after.
//
// Usage: node bench/config-push.mjs [proxies=500] [rounds=10] [unrelated=2000]
import { setMaxListeners } from "node:events";
import { WeftClient } from "@weft/api/client";
import { startBenchServer, writeResult } from "./lib/weft-server.mjs";

const P = Number(process.argv[2] ?? 500);
const R = Number(process.argv[3] ?? 10);
const U = Number(process.argv[4] ?? 2000);

const srv = await startBenchServer("config-push");
const client = new WeftClient({ addr: srv.url, token: srv.token, timeoutMs: 30_000 });
const reg = (id, service, port, upstreams = []) =>
  client.registerInstance({
    id,
    service,
    address: "127.0.0.1",
    port,
    checks: [{ id: "app", ttl: "1h", status: "passing" }],
    proxy: { protocol: "http", upstreams },
  });

async function inBatches(n, size, fn) {
  for (let i = 0; i < n; i += size) {
    await Promise.all(Array.from({ length: Math.min(size, n - i) }, (_, j) => fn(i + j)));
  }
}

try {
  await inBatches(P, 50, (i) =>
    reg(`web-${i}`, "web", 20000 + (i % 40000), [{ service: "api", localPort: 9101 }]),
  );

  // Each stream records when it saw each api endpoint count.
  const ac = new AbortController();
  setMaxListeners(0, ac.signal); // one listener per stream
  const streams = Array.from({ length: P }, () => ({
    endpoints: -1,
    seenAt: new Map(),
    snapshots: 0,
    bytes: 0,
  }));
  let ready = 0;
  const allReady = new Promise((ok) => {
    streams.forEach((s, i) => {
      (async () => {
        for await (const m of client.proxyStream(`web-${i}`, { signal: ac.signal, idleMs: 120_000 })) {
          if (m.type !== "snapshot") continue;
          s.snapshots += 1;
          s.bytes = JSON.stringify(m.snapshot).length;
          const n = m.snapshot.clusters.api.endpoints.length;
          if (s.endpoints === -1 && ++ready === P) ok();
          s.endpoints = n;
          if (!s.seenAt.has(n)) s.seenAt.set(n, performance.now());
        }
      })().catch((e) => {
        if (!ac.signal.aborted) console.error("stream failed:", e.message);
      });
    });
  });
  await allReady;

  const lat = [];
  let spurious = 0;
  for (let r = 1; r <= R; r++) {
    const before = streams.reduce((a, s) => a + s.snapshots, 0);
    await reg(`other-${r}`, `other${r}`, 30000 + r); // affects no web proxy
    const t0 = performance.now();
    await reg(`api-${r}`, "api", 31000 + r); // affects all
    const deadline = Date.now() + 30_000;
    while (streams.some((s) => !s.seenAt.has(r)) && Date.now() < deadline)
      await new Promise((ok) => setTimeout(ok, 2));
    for (const s of streams) lat.push((s.seenAt.get(r) ?? Number.NaN) - t0);
    const after = streams.reduce((a, s) => a + s.snapshots, 0);
    spurious += after - before - P; // more than one push per proxy per round
  }
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];

  const sizeBefore = streams[0].bytes;
  await inBatches(U, 50, (i) => reg(`unrelated-${i}`, `svc-${i}`, 40000 + (i % 20000)));
  await client.registerInstance({
    id: `api-final`,
    service: "api",
    address: "127.0.0.1",
    port: 39999,
    checks: [{ id: "app", ttl: "1h", status: "passing" }],
  });
  const deadline = Date.now() + 30_000;
  while (streams[0].endpoints !== R + 1 && Date.now() < deadline)
    await new Promise((ok) => setTimeout(ok, 10));
  const sizeAfter = streams[0].bytes;
  const serverRss = srv.rssMb();
  ac.abort();

  const result = {
    bench: "config-push",
    date: new Date().toISOString(),
    node: process.version,
    proxies: P,
    rounds: R,
    pushLatencyMs: { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: lat[lat.length - 1] },
    missed: lat.filter((x) => Number.isNaN(x)).length,
    spuriousPushes: spurious,
    snapshotBytes: { before: sizeBefore, afterUnrelatedServices: sizeAfter, unrelatedServices: U },
    serverRssMb: Math.round(serverRss),
  };
  console.log(
    `config push to ${P} proxies: p50 ${result.pushLatencyMs.p50.toFixed(1)} ms, p99 ${result.pushLatencyMs.p99.toFixed(1)} ms, max ${result.pushLatencyMs.max.toFixed(1)} ms; ${result.missed} missed; ${spurious} pushes for unrelated changes`,
  );
  console.log(
    `scoped snapshot: ${sizeBefore} bytes with 1 upstream; ${sizeAfter} bytes after ${U} unrelated services joined (+1 api endpoint)`,
  );
  console.log(`wrote ${writeResult("config-push", result)}`);
} finally {
  srv.stop();
}
process.exit(0);
