// Control-plane capacity: registers N instances (default 10,000, 200 services)
// over the HTTP API into a real `weft server` on a fresh SQLite data dir,
// then heartbeats and lists. Reports registrations/s (each one an fsynced
// write), heartbeats/s (not written to the store), list latency and the
// server's resident memory. Writes JSON to bench/results/.
//   npm run build && node bench/catalog-capacity.mjs [N]
// The full benchmark suite (`npm run bench`, data plane vs direct and
// HAProxy) comes with issue #6; this is its control-plane seed.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const N = Number(process.argv[2] ?? 10_000);
const SERVICES = 200;
const CONCURRENCY = 16;
const HEARTBEATS = 2_000;
const dir = mkdtempSync(join(tmpdir(), "weft-cap-"));

const srv = spawn(
  process.execPath,
  [
    join(root, "packages/cli/dist/bin/weft.js"),
    "server",
    "--listen",
    "127.0.0.1:0",
    "--data-dir",
    join(dir, "srv"),
  ],
  { stdio: ["ignore", "pipe", "ignore"] },
);
const stop = () => {
  srv.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
};
const deadline = setTimeout(() => {
  console.error("capacity bench: timed out after 5 minutes");
  stop();
  process.exit(1);
}, 300_000);

let out = "";
const url = await new Promise((ok, fail) => {
  srv.once("exit", (code) => fail(new Error(`weft server exited (${code}) before listening`)));
  srv.stdout.setEncoding("utf8").on("data", (d) => {
    out += d;
    const m = /listening on (\S+)[\s\S]*bootstrap management token/.exec(out);
    if (m) ok(m[1]);
  });
});
const token = readFileSync(join(dir, "srv/bootstrap-token"), "utf8").trim();
const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${srv.pid}/status`, "utf8"))[1]) / 1024;

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
clearTimeout(deadline);
stop();
mkdirSync(join(root, "bench/results"), { recursive: true });
const file = join(root, "bench/results", `catalog-capacity-${result.date.replace(/[:.]/g, "-")}.json`);
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
console.log(
  `${N} instances in ${list.length} services: ${result.registrationsPerSecond} registrations/s (fsynced), ` +
    `${result.sequentialHeartbeatsPerSecond} heartbeats/s (one client), list ${result.listServicesMs} ms, ` +
    `discovery ${result.discoveryMs} ms; server RSS ${result.rssIdleMb} MB idle -> ${result.rssLoadedMb} MB`,
);
console.log(`written to ${file}`);
