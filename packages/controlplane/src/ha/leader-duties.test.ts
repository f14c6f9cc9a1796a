/**
 * Leader-only duties across two real server replicas on a REAL etcd:
 * - a CSR sent to the follower is forwarded and signed by the leader (the
 *   follower never uses the CA key);
 * - a leader partitioned from etcd (a black-holing TCP proxy) steps down,
 *   then refuses to sign and never expires an instance that keeps
 *   heartbeating to the other replica - neither while cut off nor once its
 *   connection is back (its stale writes are fenced on its old term).
 */
import { Writable } from "node:stream";
import { isWeftError } from "@weft/core";
import {
  type EtcdTestServer,
  etcdBinary,
  type PartitionProxy,
  partitionProxy,
  startEtcd,
} from "@weft/testkit";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { csrFor } from "../ca/ca-fixtures.suite.js";
import { type RunningServer, startServer } from "../server.js";

const suite = etcdBinary() ? describe : describe.skip;
if (!etcdBinary())
  console.warn("leader-duties.test.ts: SKIPPED - no etcd binary on PATH (install etcd-server)");

const LEASE_TTL_MS = 2_000;
const CHECK_TTL_MS = 1_000;

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A logger whose JSON lines the test reads, with the time each line was written. */
function capture(): { logger: pino.Logger; lines: { at: number; msg: string }[] } {
  const lines: { at: number; msg: string }[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString("utf8").split("\n")) {
        if (!l) continue;
        try {
          lines.push({ at: Date.now(), msg: String((JSON.parse(l) as { msg?: string }).msg) });
        } catch {}
      }
      cb();
    },
  });
  return { logger: pino({ level: "info" }, dest), lines };
}

async function call(
  s: RunningServer,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: { error?: { code: string } } & Record<string, unknown> }> {
  const res = await fetch(`${s.url}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(15_000),
  });
  return { status: res.status, body: (await res.json()) as never };
}

suite("leader-only duties across replicas (real etcd)", () => {
  let etcd: EtcdTestServer;
  let cutter: PartitionProxy;
  let a: RunningServer | undefined;
  let b: RunningServer | undefined;
  const la = capture();
  const lb = capture();
  const savedTtl = process.env.WEFT_LEADER_TTL_MS;

  beforeAll(async () => {
    process.env.WEFT_LEADER_TTL_MS = String(LEASE_TTL_MS);
    etcd = await startEtcd();
    cutter = await partitionProxy(Number(etcd.hostPort.split(":")[1]));
    const prefix = `/weft-duties-${process.pid}/`;
    // A reaches etcd through the cutter and starts first, so that it leads.
    a = await startServer({
      listen: "127.0.0.1:0",
      storeSpec: `etcd://127.0.0.1:${cutter.port}/?prefix=${prefix}&timeout=2000`,
      dev: true,
      logger: la.logger,
    });
    await until(
      async () => (await call(a as RunningServer, "GET", "/v1/status")).body.leader === true,
      "A to lead",
    );
    b = await startServer({
      listen: "127.0.0.1:0",
      storeSpec: `etcd://${etcd.hostPort}/?prefix=${prefix}&timeout=2000`,
      dev: true,
      logger: lb.logger,
    });
  }, 30_000);

  afterAll(async () => {
    cutter?.heal();
    await Promise.allSettled([a?.close(), b?.close()]);
    cutter?.close();
    await etcd?.stop();
    if (savedTtl === undefined) delete process.env.WEFT_LEADER_TTL_MS;
    else process.env.WEFT_LEADER_TTL_MS = savedTtl;
  });

  const signed = (l: { msg: string }[]) => l.filter((x) => x.msg === "leaf signed").length;

  it("status shows one leader; a CSR sent to the follower is signed by the leader", async () => {
    const sa = await call(a as RunningServer, "GET", "/v1/status");
    const sb = await call(b as RunningServer, "GET", "/v1/status");
    expect([sa.body.leader, sa.body.store, sb.body.leader, sb.body.store]).toEqual([
      true,
      "etcd",
      false,
      "etcd",
    ]);
    // The leader's URL is published with its key within a key-check period.
    let r = await call(b as RunningServer, "POST", "/v1/ca/sign", { csr: await csrFor("web") });
    for (let i = 0; i < 50 && r.status === 503; i++) {
      await new Promise((res) => setTimeout(res, 100));
      r = await call(b as RunningServer, "POST", "/v1/ca/sign", { csr: await csrFor("web") });
    }
    expect(r.status).toBe(200);
    expect(String(r.body.certificatePem)).toMatch(/BEGIN CERTIFICATE/);
    expect(signed(la.lines)).toBe(1);
    expect(signed(lb.lines)).toBe(0);
    // Refusal is in the service too, not only in the HTTP forwarding.
    const err = await (b as RunningServer).ca.rotate().catch((e: unknown) => e);
    expect(isWeftError(err) ? err.code : err).toBe("WEFT_ERR_UNAVAILABLE");
  }, 20_000);

  it("a partitioned old leader refuses to sign and expires nothing after losing its lease", async () => {
    const A = a as RunningServer;
    const B = b as RunningServer;
    const reg = await call(B, "PUT", "/v1/catalog/instances", {
      id: "x-1",
      service: "x",
      address: "127.0.0.1",
      port: 9000,
      checks: [{ id: "ttl", ttl: `${CHECK_TTL_MS}ms` }],
    });
    expect(reg.status).toBe(201);
    // Heartbeats go only to B; record every status B's view shows meanwhile.
    const seen = new Set<string>();
    let beating = true;
    const beats = (async () => {
      while (beating) {
        await call(B, "PUT", "/v1/catalog/instances/x-1/checks/ttl", { status: "passing" }).catch(() => {});
        seen.add(String(B.catalog.getInstance("x-1")?.status));
        await new Promise((r) => setTimeout(r, CHECK_TTL_MS / 4));
      }
    })();
    try {
      await until(() => A.catalog.getInstance("x-1") !== undefined, "A to see x-1");
      await new Promise((r) => setTimeout(r, 2 * CHECK_TTL_MS));
      expect(A.catalog.getInstance("x-1")?.status).toBe("passing"); // A leads and sees B's heartbeats

      const signedBefore = signed(la.lines);
      cutter.cut();
      const cutAt = Date.now();
      await until(
        () => la.lines.some((l) => l.msg === "lost leadership"),
        "A to step down",
        3 * LEASE_TTL_MS,
      );
      const steppedDownAt = (la.lines.find((l) => l.msg === "lost leadership") as { at: number }).at;
      console.log(
        `partitioned leader stepped down ${steppedDownAt - cutAt} ms after the cut (lease ${LEASE_TTL_MS} ms)`,
      );
      await until(() => lb.lines.some((l) => l.msg === "became leader"), "B to lead", 3 * LEASE_TTL_MS);
      console.log(`B leads ${Date.now() - cutAt} ms after the cut`);

      // A refuses to sign: at the CA service, and over HTTP (it cannot reach the leader either).
      const direct = await A.ca.sign(await csrChecked()).catch((e: unknown) => e);
      expect(isWeftError(direct) ? direct.code : direct).toBe("WEFT_ERR_UNAVAILABLE");
      const http = await call(A, "POST", "/v1/ca/sign", { csr: await csrFor("web") });
      expect(http.status).toBe(503);

      // Three check TTLs with A cut off (it hears no heartbeat now), then heal, then two more.
      await new Promise((r) => setTimeout(r, 3 * CHECK_TTL_MS));
      cutter.heal();
      await new Promise((r) => setTimeout(r, 2 * CHECK_TTL_MS));
      expect(signed(la.lines)).toBe(signedBefore);
      const expiredByA = la.lines.filter((l) => /TTL expired/.test(l.msg) && l.at >= steppedDownAt);
      expect(expiredByA).toEqual([]);
      expect([...seen]).toEqual(["passing"]);
      expect(B.catalog.getInstance("x-1")?.status).toBe("passing");
      await until(() => A.catalog.getInstance("x-1")?.status === "passing", "A's view after the heal");
    } finally {
      beating = false;
      await beats;
    }
  }, 60_000);
});

async function csrChecked() {
  const { checkCsr } = await import("../ca/csr.js");
  return checkCsr(await csrFor("web"), "weft.local");
}
