/**
 * Heartbeats shared across replicas, against a REAL etcd: two catalogs on
 * one store prefix, each with a real leader election. An instance that
 * heartbeats only to the follower stays passing in the leader's view (the
 * leader runs expiry); one that stops goes critical after its TTL. Without
 * sharing (the control case) the leader expires the follower's instance.
 */
import { instanceRegistrationSchema } from "@weft/api";
import { type EtcdTestServer, etcdBinary, startEtcd } from "@weft/testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Duties, startDuties } from "../ha/duties.js";
import { openStore } from "../store/open-store.js";
import type { Store } from "../store/store.js";
import { Catalog } from "./catalog.js";

const suite = etcdBinary() ? describe : describe.skip;
if (!etcdBinary())
  console.warn("heartbeat-share.test.ts: SKIPPED - no etcd binary on PATH (install etcd-server)");

const TTL_MS = 1_000;

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Replica {
  store: Store;
  duties: Duties;
  catalog: Catalog;
}

suite("shared heartbeats (real etcd, two replicas)", () => {
  let etcd: EtcdTestServer;
  let n = 0;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.stop();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  });

  async function replicas(share: boolean): Promise<[leader: Replica, follower: Replica]> {
    const spec = `etcd://${etcd.hostPort}/?prefix=/weft-hb-${process.pid}-${++n}/`;
    const open = async (): Promise<Replica> => {
      const store = await openStore(spec);
      const duties = startDuties(store, { env: { WEFT_LEADER_TTL_MS: "2000" } }) as Duties;
      const catalog = await Catalog.open({ store, leader: duties.gate, shareHeartbeats: share });
      cleanups.push(async () => {
        await catalog.dispose();
        await duties.election.dispose();
        await store.close();
      });
      return { store, duties, catalog };
    };
    const a = await open();
    const b = await open();
    await until(() => a.duties.gate.isLeader() || b.duties.gate.isLeader(), "a leader");
    return a.duties.gate.isLeader() ? [a, b] : [b, a];
  }

  const register = (c: Catalog, id: string) =>
    c.register(
      instanceRegistrationSchema.parse({
        id,
        service: "api",
        address: "10.0.0.1",
        port: 8080,
        checks: [{ id: "ttl", ttl: `${TTL_MS}ms` }],
      }),
    );

  let sent = 0;
  /** Heartbeats `ids` on `c` every TTL/3 until stopped. */
  function beat(c: Catalog, ...ids: string[]): () => void {
    const t = setInterval(() => {
      for (const id of ids) {
        sent++;
        c.heartbeat(id, "ttl", { status: "passing", output: "ok" }).catch(() => {});
      }
    }, TTL_MS / 3);
    return () => clearInterval(t);
  }

  it("the leader keeps an instance heartbeating only to the follower passing; a silent one goes critical after the TTL", async () => {
    const [leader, follower] = await replicas(true);
    const live = Array.from({ length: 10 }, (_, i) => `live-${i}`);
    for (const id of ["live", ...live, "dead"]) await register(follower.catalog, id);
    await until(() => leader.catalog.getInstance("dead") !== undefined, "the leader to see the instances");
    sent = 0;
    const stop = beat(follower.catalog, "live", ...live);
    const stopDead = beat(follower.catalog, "dead");
    cleanups.push(async () => {
      stop();
      stopDead();
    });
    // Three TTLs of heartbeats reaching only the follower.
    await new Promise((r) => setTimeout(r, 3 * TTL_MS));
    expect(leader.catalog.getInstance("live")?.status).toBe("passing");
    expect(leader.catalog.getInstance("dead")?.status).toBe("passing");
    stopDead();
    const stoppedAt = Date.now();
    await until(
      () => leader.catalog.getInstance("dead")?.status === "critical",
      "dead to go critical",
      5 * TTL_MS,
    );
    const after = Date.now() - stoppedAt;
    console.log(
      `silent instance critical on the leader ${after} ms after its last heartbeat (TTL ${TTL_MS} ms)`,
    );
    expect(after).toBeGreaterThanOrEqual(TTL_MS - TTL_MS / 3 - 50);
    // The follower's mirror sees the leader's write too; the live one stays passing everywhere.
    await until(() => follower.catalog.getInstance("dead")?.status === "critical", "the follower to see it");
    await new Promise((r) => setTimeout(r, 2 * TTL_MS));
    expect(leader.catalog.getInstance("live")?.status).toBe("passing");
    expect(follower.catalog.getInstance("live")?.status).toBe("passing");
    for (const id of live) expect(leader.catalog.getInstance(id)?.status).toBe("passing");
    // One digest write per flush period, not one per heartbeat (12 instances beat together here).
    console.log(`${sent} heartbeats to the follower -> ${follower.catalog.heartbeatWrites} digest writes`);
    expect(follower.catalog.heartbeatWrites).toBeGreaterThan(0);
    expect(follower.catalog.heartbeatWrites * 5).toBeLessThan(sent);
    expect(leader.catalog.heartbeatWrites).toBe(0);
  }, 30_000);

  it("control: without sharing, the leader expires an instance that heartbeats only to the follower", async () => {
    const [leader, follower] = await replicas(false);
    await register(follower.catalog, "live");
    await until(() => leader.catalog.getInstance("live") !== undefined, "the leader to see it");
    const stop = beat(follower.catalog, "live");
    cleanups.push(async () => stop());
    await until(() => leader.catalog.getInstance("live")?.status === "critical", "expiry", 5 * TTL_MS);
  }, 30_000);
});
