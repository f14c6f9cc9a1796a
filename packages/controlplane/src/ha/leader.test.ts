/**
 * Leader election against a REAL etcd. A partition is a TCP proxy between
 * one replica's client and etcd that stops forwarding (a black hole, no
 * reset), so that replica's keepalives go unanswered while etcd and the
 * other replica carry on.
 */

import { createServer, type Server, Socket } from "node:net";
import { isWeftError } from "@weft/core";
import { type EtcdTestServer, etcdBinary, startEtcd } from "@weft/testkit";
import { Etcd3 } from "etcd3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EtcdStore } from "../store/etcd.js";
import { LeaderElection } from "./leader.js";

const suite = etcdBinary() ? describe : describe.skip;
if (!etcdBinary()) console.warn("leader.test.ts: SKIPPED - no etcd binary on PATH (install etcd-server)");

/** A TCP proxy to `target` that can black-hole its connections. */
async function partitionableProxy(
  target: number,
): Promise<{ port: number; cut(): void; heal(): void; close(): void }> {
  let cut = false;
  const pairs = new Set<[Socket, Socket]>();
  const server: Server = createServer((down) => {
    const up = new Socket();
    up.connect(target, "127.0.0.1");
    const pair: [Socket, Socket] = [down, up];
    pairs.add(pair);
    down.on("data", (d) => {
      if (!cut) up.write(d);
    });
    up.on("data", (d) => {
      if (!cut) down.write(d);
    });
    const end = () => {
      pairs.delete(pair);
      down.destroy();
      up.destroy();
    };
    down.on("close", end);
    up.on("close", end);
    down.on("error", end);
    up.on("error", end);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    cut: () => {
      cut = true;
    },
    heal: () => {
      // Connections that lost bytes are unusable: reset them, new ones flow.
      cut = false;
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
    },
    close: () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      server.close();
    },
  };
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

suite("LeaderElection (real etcd)", () => {
  let etcd: EtcdTestServer;
  let n = 0;
  const cleanup: (() => unknown)[] = [];
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.stop();
  });
  afterEach(async () => {
    for (const c of cleanup.reverse()) await c();
    cleanup.length = 0;
  });

  const client = (port?: number) => {
    const c = new Etcd3({ hosts: port ? `http://127.0.0.1:${port}` : etcd.url });
    cleanup.push(() => c.close());
    return c;
  };
  const elect = (c: Etcd3, key: string, id: string) => {
    const e = LeaderElection.start({ client: c, key, id, ttlMs: 2_000, marginMs: 500, retryMs: 200 });
    const events: { leader: boolean; at: number }[] = [];
    e.onChange((leader) => events.push({ leader, at: Date.now() }));
    cleanup.push(() => e.dispose());
    return { e, events };
  };

  it("elects exactly one of three; a resigning leader hands over at once", async () => {
    const key = `/weft-test/leader-${++n}`;
    const all = ["a", "b", "c"].map((id) => ({ id, ...elect(client(), key, id) }));
    await until(() => all.some((x) => x.e.isLeader()), "a leader");
    await new Promise((r) => setTimeout(r, 600)); // several campaign rounds: still exactly one
    const leaders = all.filter((x) => x.e.isLeader());
    expect(leaders.length).toBe(1);
    const first = leaders[0] as (typeof all)[number];
    expect(await first.e.holder()).toBe(first.id);
    const t0 = Date.now();
    await first.e.dispose();
    await until(() => all.some((x) => x !== first && x.e.isLeader()), "a successor");
    const handover = Date.now() - t0;
    console.log(`resign handover: ${handover} ms (retry interval 200 ms)`);
    expect(all.filter((x) => x.e.isLeader()).length).toBe(1);
    expect(first.events.map((x) => x.leader)).toEqual([true, false]);
  });

  it("a partitioned leader steps down before the other replica can win, and its fenced writes are refused", async () => {
    const key = `/weft-test/leader-${++n}`;
    const proxy = await partitionableProxy(Number(new URL(etcd.url).port));
    cleanup.push(() => proxy.close());
    const a = elect(client(proxy.port), key, "a");
    await until(() => a.e.isLeader(), "a to lead");
    const b = elect(client(), key, "b");
    const fence = a.e.fence();
    expect(fence).toBeDefined();
    // A store view fenced on a's term, on the (healthy) direct client.
    const store = await EtcdStore.open({
      hosts: [etcd.url],
      root: `/weft-test/fenced-${n}/`,
      timeoutMs: 2_000,
    });
    cleanup.push(() => store.close());
    const fenced = store.fenced(fence as NonNullable<typeof fence>);
    expect((await fenced.put("/duty", "by a")).revision).toBe(1);

    const cutAt = Date.now();
    proxy.cut();
    await until(() => b.e.isLeader(), "b to take over", 15_000);
    const lostAt = a.events.find((x) => !x.leader)?.at;
    const gainedAt = b.events.find((x) => x.leader)?.at as number;
    expect(lostAt).toBeDefined();
    console.log(
      `partition failover: a stepped down after ${(lostAt as number) - cutAt} ms, b leader after ${gainedAt - cutAt} ms (TTL 2000 ms)`,
    );
    // The fencing order: a stopped before b started.
    expect(lostAt as number).toBeLessThan(gainedAt);
    expect(a.e.isLeader()).toBe(false);
    // Even a writer that still holds a's fence cannot write any more.
    let code: string | undefined;
    try {
      await fenced.put("/duty", "late write by a");
    } catch (e) {
      code = isWeftError(e) ? e.code : String(e);
    }
    expect(code).toBe("WEFT_ERR_CONFLICT");
    expect((await store.get("/duty"))?.value).toBe("by a");
    const bFence = b.e.fence() as NonNullable<ReturnType<typeof b.e.fence>>;
    expect((await store.fenced(bFence).put("/duty", "by b")).revision).toBe(2);

    // Healed, a stays a follower while b leads.
    proxy.heal();
    await new Promise((r) => setTimeout(r, 1_500));
    expect(a.e.isLeader()).toBe(false);
    expect(b.e.isLeader()).toBe(true);
  });
});
