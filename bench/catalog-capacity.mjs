// Control-plane capacity: registers N instances (default 10,000, 200 services)
// over the HTTP API into a real `weft server` on a fresh SQLite data dir,
// then heartbeats and lists. Reports registrations/s (each one an fsynced
// write), heartbeats/s (not written to the store), list latency and the
// server's resident memory. Writes JSON to bench/results/.
//   npm run build && node bench/catalog-capacity.mjs [N]
// The full benchmark suite (`npm run bench`, data plane vs direct and
// HAProxy) comes with issue #6; this is its control-plane seed.
import { cpus } from "node:os";
import { startBenchServer, writeResult } from "./lib/weft-server.mjs";

const N = Number(process.argv[2] ?? 10_000);
const SERVICES = 200;
const CONCURRENCY = 16;
const HEARTBEATS = 2_000;
const { url, token, rssMb, stop } = await startBenchServer("catalog-capacity");
const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };

const idleRss = rssMb();
let next = 0;
const t0 = performance.now();
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (next < N) {
      const i = next++;
      const body = JSON.stringify({
        id: `i-${i}`,
        service: `svc-${i % SERVICES}`,
        address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
        port: 20000,
        tags: ["v1"],
        meta: { version: "v1" },
        checks: [{ ttl: "1h", status: "passing" }],
      });
      const r = await fetch(`${url}/v1/catalog/instances`, { method: "PUT", headers, body });
      if (r.status >= 300) throw new Error(`register: ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
    }
  }),
);
const regSeconds = (performance.now() - t0) / 1000;
const loadedRss = rssMb();

const t1 = performance.now();
for (let k = 0; k < HEARTBEATS; k++) {
  const r = await fetch(`${url}/v1/catalog/instances/i-${k % N}/checks/ttl`, {
    method: "PUT",
    headers,
    body: '{"status":"passing"}',
  });
  if (!r.ok) throw new Error(`heartbeat: ${r.status}`);
  await r.arrayBuffer();
}
const hbSeconds = (performance.now() - t1) / 1000;

const t2 = performance.now();
const list = await (await fetch(`${url}/v1/catalog/services`, { headers })).json();
const listMs = performance.now() - t2;
const t3 = performance.now();
const one = await (await fetch(`${url}/v1/health/service/svc-7`, { headers })).json();
const discoveryMs = performance.now() - t3;

const result = {
  bench: "catalog-capacity",
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version },
  instances: N,
  services: list.length,
  registrationsPerSecond: Math.round(N / regSeconds),
  sequentialHeartbeatsPerSecond: Math.round(HEARTBEATS / hbSeconds),
  listServicesMs: Number(listMs.toFixed(1)),
  discoveryMs: Number(discoveryMs.toFixed(1)),
  discoveryInstances: one.instances.length,
  rssIdleMb: Math.round(idleRss),
  rssLoadedMb: Math.round(rssMb()),
  rssAfterRegistrationMb: Math.round(loadedRss),
};
stop();
const file = writeResult("catalog-capacity", result);
console.log(
  `${N} instances in ${list.length} services: ${result.registrationsPerSecond} registrations/s (fsynced), ` +
    `${result.sequentialHeartbeatsPerSecond} heartbeats/s (one client), list ${result.listServicesMs} ms, ` +
    `discovery ${result.discoveryMs} ms; server RSS ${result.rssIdleMb} MB idle -> ${result.rssLoadedMb} MB`,
);
console.log(`written to ${file}`);
