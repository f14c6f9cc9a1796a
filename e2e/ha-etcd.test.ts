/**
 * Two real `weft server` replicas on one real etcd (issue #12): one ACL
 * bootstrap between them; a config change written through one replica
 * reaches a blocking query and a proxy stream held on the other (etcd watch
 * -> mirror -> blocking queries / proxy snapshots); exactly one leader for
 * once-only duties, and after the leader is killed (-9) the other replica
 * takes over within the lease time; a hung etcd gives bounded 503s, a
 * step-down and a full recovery, never a crash.
 */
import { WeftClient } from "@weft/api";
import { type EtcdTestServer, etcdBinary, startEtcd } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanup, startWeftServer, type WeftServer } from "./helpers/weft.js";

const suite = etcdBinary() ? describe : describe.skip;
if (!etcdBinary()) console.warn("ha-etcd.test.ts: SKIPPED - no etcd binary on PATH (install etcd-server)");

const LEASE_TTL_MS = 2_000;

async function until(cond: () => boolean, what: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const becameLeader = (s: WeftServer) => /"msg":"became leader"/.test(s.stderr());

suite("HA: two weft server replicas on one etcd", () => {
  let etcd: EtcdTestServer;
  let a: WeftServer;
  let b: WeftServer;
  /** The replica left after the leader was killed. */
  let survivor: WeftServer;

  beforeAll(async () => {
    etcd = await startEtcd();
    const store = `etcd://${etcd.hostPort}/?prefix=/weft-e2e-${process.pid}/&timeout=3000`;
    const env = { WEFT_LEADER_TTL_MS: String(LEASE_TTL_MS) };
    a = await startWeftServer({ store, env, expectToken: true });
    b = await startWeftServer({ store, env, expectToken: false });
  });
  afterAll(async () => {
    await cleanup();
    await etcd?.stop();
  });

  it("bootstraps ACL once: the first replica prints the token (not saved), the second none, and it works on both", async () => {
    expect(a.token).toBeDefined();
    expect(a.stdout()).toMatch(/not saved \(the store is not a local data dir\)/);
    expect(b.stdout()).not.toMatch(/bootstrap management token/);
    for (const s of [a, b]) {
      const c = new WeftClient({ addr: s.addr, token: a.token as string });
      expect((await c.status()).backend).toBe("etcd");
      expect((await c.listConfig("Intention")).value).toEqual([]);
    }
  });

  it("an Intention applied through replica A wakes a blocking query held on replica B", async () => {
    const ca = new WeftClient({ addr: a.addr, token: a.token as string });
    const cb = new WeftClient({ addr: b.addr, token: a.token as string });
    const before = await cb.listConfig("Intention");
    const held = cb.listConfig("Intention", { index: before.index, wait: "20s" });
    const t0 = Date.now();
    await ca.applyConfig([{ kind: "Intention", name: "api", sources: [{ name: "web", action: "allow" }] }]);
    const got = await held;
    console.log(`config propagation A -> etcd -> B (blocking query woke): ${Date.now() - t0} ms`);
    expect(got.index).toBeGreaterThan(before.index);
    expect(got.value.map((r) => (r as { name: string }).name)).toEqual(["api"]);
  });

  it("a proxy stream held on replica B gets a new snapshot when an Intention is applied through A", async () => {
    const token = a.token as string;
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const reg = await fetch(`${a.url}/v1/catalog/instances`, {
      method: "PUT",
      headers,
      body: JSON.stringify({ id: "pay-1", service: "pay", address: "127.0.0.1", port: 9000, checks: [] }),
    });
    expect(reg.status).toBe(201);
    const ac = new AbortController();
    const res = await fetch(`${b.url}/v1/proxy/stream/pay-1`, { headers, signal: ac.signal });
    expect(res.status).toBe(200);
    const snapshots: { inbound: { authz: { intention: boolean } } }[] = [];
    const reading = (async () => {
      const dec = new TextDecoder();
      let buf = "";
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        buf += dec.decode(chunk, { stream: true });
        for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
          const msg = JSON.parse(buf.slice(0, nl)) as { type: string; snapshot?: (typeof snapshots)[number] };
          buf = buf.slice(nl + 1);
          if (msg.type === "snapshot" && msg.snapshot) snapshots.push(msg.snapshot);
        }
      }
    })().catch(() => {});
    try {
      await until(() => snapshots.length > 0, "the first snapshot on B", 10_000);
      expect(snapshots[0]?.inbound.authz.intention).toBe(false);
      const t0 = Date.now();
      await new WeftClient({ addr: a.addr, token }).applyConfig([
        { kind: "Intention", name: "pay", sources: [{ name: "web", action: "allow" }] },
      ]);
      await until(
        () => snapshots.at(-1)?.inbound.authz.intention === true,
        "B's proxy to get the intention",
        10_000,
      );
      console.log(`intention applied on A -> proxy snapshot pushed by B: ${Date.now() - t0} ms`);
    } finally {
      ac.abort();
      await reading;
    }
  });

  it("elects exactly one leader; kill -9 of the leader makes the other leader within the lease time", async () => {
    await until(() => becameLeader(a) || becameLeader(b), "a leader", 3 * LEASE_TTL_MS);
    await new Promise((r) => setTimeout(r, 500));
    expect([becameLeader(a), becameLeader(b)].filter(Boolean).length).toBe(1);
    const [leader, follower] = becameLeader(a) ? [a, b] : [b, a];
    survivor = follower;
    const t0 = Date.now();
    await leader.kill9();
    // The dead leader's lease expires in etcd after the TTL; the follower retries every TTL/5.
    await until(() => becameLeader(follower), "the follower to take over", 2 * LEASE_TTL_MS + 1_000);
    console.log(`leader failover after kill -9: ${Date.now() - t0} ms (lease TTL ${LEASE_TTL_MS} ms)`);
    const c = new WeftClient({ addr: follower.addr, token: a.token as string });
    expect((await c.listConfig("Intention")).value.length).toBe(2);
  });

  it("survives a hung etcd: writes answer 503 WEFT_ERR_STORE_FAILED within the timeout, the leader steps down, all recovers", async () => {
    const s = survivor;
    const c = new WeftClient({ addr: s.addr, token: a.token as string });
    const intention = (name: string) => ({
      kind: "Intention",
      name,
      sources: [{ name: "web", action: "allow" }],
    });
    etcd.pause();
    try {
      const err = (await c.applyConfig([intention("during")]).then(
        () => undefined,
        (e: unknown) => e,
      )) as { status?: number; serverCode?: string } | undefined;
      expect({ status: err?.status, code: err?.serverCode }).toEqual({
        status: 503,
        code: "WEFT_ERR_STORE_FAILED",
      });
      await until(
        () => /"msg":"lost leadership"/.test(s.stderr()),
        "the leader to step down",
        3 * LEASE_TTL_MS,
      );
    } finally {
      etcd.resume();
    }
    expect(s.proc.exitCode).toBeNull();
    // Back: writes succeed again (the etcd client may hold off a few seconds) and it leads again.
    let ok = false;
    for (let i = 0; i < 50 && !ok; i++) {
      ok = await c.applyConfig([intention("after")]).then(
        () => true,
        () => new Promise<boolean>((r) => setTimeout(() => r(false), 200)),
      );
    }
    expect(ok).toBe(true);
    await until(
      () => (s.stderr().match(/"msg":"became leader"/g) ?? []).length >= 2,
      "leadership again",
      5 * LEASE_TTL_MS,
    );
    expect((await c.listConfig("Intention")).value.map((r) => (r as { name: string }).name).sort()).toEqual([
      "after",
      "api",
      "pay",
    ]);
  });
});
