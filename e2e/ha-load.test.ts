/**
 * etcd's own load for 1,000 instances with heartbeats (issue #12): two
 * control-plane replicas (in-process) on a real etcd, 500 instances
 * registered on each, every one heartbeating to its replica every TTL/3
 * (TTL 10 s). Measured over a steady window from etcd's /metrics and /proc:
 * write and read requests per second, gRPC bytes in and out, CPU time, and
 * the database size. Printed, not asserted on time; the test checks what
 * the design promises: heartbeats that change nothing cost one digest
 * write per replica per flush period, not one write per heartbeat, and no
 * instance flaps.
 */
import { readFileSync } from "node:fs";
import { instanceRegistrationSchema } from "@weft/api";
import { type EtcdTestServer, etcdBinary, startEtcd } from "@weft/testkit";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningServer, startServer } from "../packages/controlplane/src/server.js";

const suite = etcdBinary() ? describe : describe.skip;
if (!etcdBinary()) console.warn("ha-load.test.ts: SKIPPED - no etcd binary on PATH (install etcd-server)");

const INSTANCES = 1_000;
const TTL_MS = 10_000;
const WINDOW_MS = 20_000;

async function metrics(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const sp = line.lastIndexOf(" ");
    const full = line.slice(0, sp);
    const name = full.includes("{") ? full.slice(0, full.indexOf("{")) : full;
    const v = Number(line.slice(sp + 1));
    if (!Number.isFinite(v)) continue;
    out.set(name, (out.get(name) ?? 0) + v);
    if (full.includes("grpc_method=")) {
      const m = /grpc_method="([^"]+)"/.exec(full);
      if (m && name === "grpc_server_handled_total")
        out.set(`rpc:${m[1]}`, (out.get(`rpc:${m[1]}`) ?? 0) + v);
    }
  }
  return out;
}

/** utime + stime of a process, in ms (from /proc; clock ticks assumed 100/s). */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8");
  const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return (Number(rest[11]) + Number(rest[12])) * 10;
}

suite("etcd load: 1,000 instances heartbeating to two replicas", () => {
  let etcd: EtcdTestServer;
  const servers: RunningServer[] = [];

  beforeAll(async () => {
    etcd = await startEtcd();
    const spec = `etcd://${etcd.hostPort}/?prefix=/weft-load-${process.pid}/`;
    for (let i = 0; i < 2; i++) {
      servers.push(
        await startServer({
          listen: "127.0.0.1:0",
          storeSpec: spec,
          dev: true,
          logger: pino({ level: "warn" }),
        }),
      );
    }
  }, 30_000);
  afterAll(async () => {
    await Promise.allSettled(servers.map((s) => s.close()));
    await etcd?.stop();
  });

  it("heartbeats cost digest writes per replica and flush period, not per heartbeat", async () => {
    const [a, b] = servers as [RunningServer, RunningServer];
    const owner = (i: number) => (i % 2 === 0 ? a : b);
    for (let i = 0; i < INSTANCES; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, k) =>
          owner(i + k).catalog.register(
            instanceRegistrationSchema.parse({
              id: `svc-${i + k}`,
              service: `svc${(i + k) % 20}`,
              address: "10.0.0.1",
              port: 8000 + ((i + k) % 1000),
              checks: [{ id: "ttl", ttl: `${TTL_MS}ms`, status: "passing" }],
            }),
          ),
        ),
      );
    }
    // Heartbeats spread evenly over each TTL/3.
    let sent = 0;
    let failed = 0;
    const period = TTL_MS / 3;
    const timers: NodeJS.Timeout[] = [];
    for (let i = 0; i < INSTANCES; i++) {
      const start = setTimeout(
        () => {
          const beat = () => {
            sent++;
            owner(i)
              .catalog.heartbeat(`svc-${i}`, "ttl", { status: "passing", output: "ok" })
              .catch(() => failed++);
          };
          beat();
          timers.push(setInterval(beat, period));
        },
        (i * period) / INSTANCES,
      );
      timers.push(start);
    }
    try {
      await new Promise((r) => setTimeout(r, period + 1_000)); // every instance beating
      const m0 = await metrics(etcd.url);
      const c0 = cpuMs(etcd.proc.pid as number);
      const s0 = sent;
      const w0 = a.catalog.heartbeatWrites + b.catalog.heartbeatWrites;
      const t0 = Date.now();
      await new Promise((r) => setTimeout(r, WINDOW_MS));
      const m1 = await metrics(etcd.url);
      const secs = (Date.now() - t0) / 1000;
      const d = (k: string) => ((m1.get(k) ?? 0) - (m0.get(k) ?? 0)) / secs;
      const beats = (sent - s0) / secs;
      const digests = (a.catalog.heartbeatWrites + b.catalog.heartbeatWrites - w0) / secs;
      const cpu = (cpuMs(etcd.proc.pid as number) - c0) / 10 / secs;
      const report = {
        instances: INSTANCES,
        heartbeatsPerSec: +beats.toFixed(1),
        digestWritesPerSec: +digests.toFixed(2),
        etcdTxnPerSec: +d("etcd_mvcc_txn_total").toFixed(2),
        etcdPutPerSec: +d("etcd_mvcc_put_total").toFixed(2),
        etcdRangePerSec: +d("etcd_mvcc_range_total").toFixed(2),
        leaseKeepAlivePerSec: +d("rpc:LeaseKeepAlive").toFixed(2),
        grpcBytesInPerSec: Math.round(d("etcd_network_client_grpc_received_bytes_total")),
        grpcBytesOutPerSec: Math.round(d("etcd_network_client_grpc_sent_bytes_total")),
        etcdCpuPercent: +cpu.toFixed(1),
        dbSizeBytes: m1.get("etcd_mvcc_db_total_size_in_bytes"),
      };
      console.log(`etcd load over ${secs.toFixed(1)} s: ${JSON.stringify(report, null, 2)}`);
      expect(failed).toBe(0);
      expect(beats).toBeGreaterThan(INSTANCES / (period / 1000) / 2);
      // One digest per replica per TTL/4 at most (2 replicas -> <= 0.8/s here), whatever the instance count.
      expect(digests).toBeLessThanOrEqual((2 * 1000) / (TTL_MS / 4) + 0.5);
      expect(d("etcd_mvcc_txn_total") + d("etcd_mvcc_put_total")).toBeLessThan(beats / 20);
      // Nothing flapped: every instance passing on both replicas.
      for (const s of servers) {
        const critical = s.catalog.listServices().reduce((n, x) => n + x.critical, 0);
        expect(critical).toBe(0);
      }
    } finally {
      for (const t of timers) clearInterval(t);
    }
  }, 120_000);
});
