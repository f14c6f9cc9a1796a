/**
 * The etcd backend against a REAL etcd started here (Debian's etcd-server).
 * Every store gets its own root prefix on the one etcd, so the contract's
 * "starts at revision 0" holds per store while etcd's own revision keeps
 * growing - which is exactly the mapping under test.
 */

import { isWeftError } from "@weft/core";
import { type EtcdTestServer, etcdBinary, startEtcd } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { storeContract } from "./contract.suite.js";
import type { EtcdStore } from "./etcd.js";
import { openStore } from "./open-store.js";
import type { Store, WatchBatch } from "./store.js";

const bin = etcdBinary();
if (!bin) console.warn("etcd.test.ts: SKIPPED - no etcd binary on PATH (install etcd-server)");
const suite = bin ? describe : describe.skip;

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return isWeftError(e) ? e.code : String(e);
  }
}

async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

suite("etcd store", () => {
  let etcd: EtcdTestServer;
  let n = 0;
  const root = () => `/weft-test/${process.pid}-${++n}/`;
  const spec = (prefix: string, extra = "") => `etcd://${etcd.hostPort}/?prefix=${prefix}${extra}`;

  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  let started = 0;
  beforeAll(() => {
    started = Date.now();
  });
  afterAll(() => {
    console.log(`etcd contract suite + etcd tests: ${Date.now() - started} ms`);
  });

  storeContract("etcd", () => openStore(spec(root())));

  describe("etcd specifics", () => {
    it("opens through openStore with a host list, and stores under the prefix with an envelope", async () => {
      const prefix = root();
      const s = await openStore(`etcd://${etcd.hostPort},${etcd.hostPort}/?prefix=${prefix}`);
      try {
        expect(s.backend).toBe("etcd");
        await s.put("/a", "1");
        const raw = await (s as EtcdStore).client.get(`${prefix}kv/a`).string();
        expect(raw).toBe("w1 1 1\n1");
        expect(await (s as EtcdStore).client.get(`${prefix}kv`).string()).toMatch(/^1 [0-9a-f-]{36}$/);
      } finally {
        await s.close();
      }
    });

    it("refuses bad specs with WEFT_ERR_CONFIG_INVALID", async () => {
      for (const bad of [
        `etcd://${etcd.hostPort}/?nope=1`,
        `etcd://${etcd.hostPort}/?cert=/x`,
        `etcd://${etcd.hostPort}/?username=u`,
        `etcd://${etcd.hostPort}/some/path`,
        `etcd://${etcd.hostPort}/?ca=/does/not/exist`,
        `etcd://${etcd.hostPort}/?timeout=5`,
      ]) {
        expect({ bad, code: await codeOf(openStore(bad)) }).toEqual({ bad, code: "WEFT_ERR_CONFIG_INVALID" });
      }
    });

    it("keeps stores on different prefixes apart, each with its own revisions", async () => {
      const a = await openStore(spec(root()));
      const b = await openStore(spec(root()));
      try {
        await a.put("/k", "a1");
        await a.put("/k", "a2");
        expect((await b.put("/k", "b1")).revision).toBe(1);
        expect((await a.get("/k"))?.value).toBe("a2");
        expect((await b.range("")).kvs.map((kv) => kv.value)).toEqual(["b1"]);
        expect(await a.revision()).toBe(2);
      } finally {
        await a.close();
        await b.close();
      }
    });

    it("two clients on one prefix (two replicas): concurrent increments lose nothing, revisions stay dense, each sees the other's watch events", async () => {
      const prefix = root();
      const a = await openStore(spec(prefix));
      const b = await openStore(spec(prefix));
      const seenByB: WatchBatch[] = [];
      try {
        await b.watch("/", (batch) => seenByB.push(batch), { fromRevision: 0 });
        const incr = async (s: Store) => {
          for (;;) {
            const kv = await s.get("/n");
            const r = await s.txn({
              compare: [{ key: "/n", target: "modRevision", op: "=", value: kv?.modRevision ?? 0 }],
              success: [{ type: "put", key: "/n", value: String(Number(kv?.value ?? "0") + 1) }],
            });
            if (r.succeeded) return;
          }
        };
        await Promise.all(Array.from({ length: 40 }, (_, i) => incr(i % 2 ? a : b)));
        expect((await a.get("/n"))?.value).toBe("40");
        expect(await b.revision()).toBe(40);
        await until(() => seenByB.at(-1)?.revision === 40, "b to see all of a's writes");
        expect(seenByB.map((x) => x.revision)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      } finally {
        await a.close();
        await b.close();
      }
    });

    it("a txn compare is exact across replicas: create-if-absent succeeds exactly once", async () => {
      const prefix = root();
      const stores = await Promise.all([1, 2, 3].map(() => openStore(spec(prefix))));
      try {
        const results = await Promise.all(
          stores.flatMap((s) =>
            [1, 2, 3].map(() =>
              s.txn({
                compare: [{ key: "/acl/bootstrap", target: "exists", value: false }],
                success: [{ type: "put", key: "/acl/bootstrap", value: "me" }],
              }),
            ),
          ),
        );
        expect(results.filter((r) => r.succeeded).length).toBe(1);
        expect(await stores[0]?.revision()).toBe(1);
      } finally {
        for (const s of stores) await s.close();
      }
    });

    it("resumes a watch after etcd history is compacted elsewhere only if it can; a watch from before it is refused", async () => {
      const s = await openStore(spec(root()));
      try {
        for (let i = 0; i < 5; i++) await s.put("/c", String(i));
        await s.compact(3);
        expect(await codeOf(s.watch("", () => {}, { fromRevision: 2 }))).toBe("WEFT_ERR_STORE_COMPACTED");
        const got: number[] = [];
        await s.watch("", (b) => got.push(b.revision), { fromRevision: 3 });
        await until(() => got.length === 2, "replay after compaction");
        expect(got).toEqual([4, 5]);
      } finally {
        await s.close();
      }
    });

    it("reads in chunks under etcd's --max-txn-ops; a write over it fails at once, naming the limit", async () => {
      const s = await openStore(spec(root()));
      try {
        const keys = Array.from({ length: 250 }, (_, i) => `/big/${String(i).padStart(3, "0")}`);
        // 250 compares (reads) and 100 puts: the reads span three read txns.
        const r = await s.txn({
          compare: keys.map((key) => ({ key, target: "exists" as const, value: false })),
          success: keys.slice(0, 100).map((key) => ({ type: "put" as const, key, value: "v" })),
        });
        expect(r.succeeded).toBe(true);
        expect((await s.range("/big/")).kvs.length).toBe(100);
        const t0 = Date.now();
        let err: unknown;
        try {
          await s.txn({
            compare: [],
            success: keys.map((key) => ({ type: "put" as const, key, value: "w" })),
          });
        } catch (e) {
          err = e;
        }
        expect(isWeftError(err, "WEFT_ERR_STORE_FAILED")).toBe(true);
        expect((err as Error).message).toContain("--max-txn-ops");
        // Refused by etcd, so not retried until the timeout (5 s).
        expect(Date.now() - t0).toBeLessThan(4_000);
        expect(await s.revision()).toBe(1);
      } finally {
        await s.close();
      }
    });

    it("fails to open within the timeout with WEFT_ERR_STORE_FAILED when nothing listens", async () => {
      const t0 = Date.now();
      const code = await codeOf(openStore("etcd://127.0.0.1:1/?timeout=500"));
      expect(code).toBe("WEFT_ERR_STORE_FAILED");
      expect(Date.now() - t0).toBeLessThan(10_000);
    });

    // Last: it stops the shared etcd for a moment.
    it("rejects a write with WEFT_ERR_STORE_FAILED (not a hang, not a crash) while etcd hangs, and works again after", async () => {
      const s = await openStore(spec(root(), "&timeout=600"));
      const errors: Error[] = [];
      const seen: number[] = [];
      await s.watch("", (b) => seen.push(b.revision), { onError: (e) => errors.push(e) });
      try {
        await s.put("/before", "1");
        etcd.pause();
        const codes = await Promise.all([
          codeOf(s.put("/during", "x")),
          codeOf(s.get("/before")),
          codeOf(s.txn({ compare: [], success: [{ type: "delete", key: "/before" }] })),
        ]);
        expect(codes).toEqual(["WEFT_ERR_STORE_FAILED", "WEFT_ERR_STORE_FAILED", "WEFT_ERR_STORE_FAILED"]);
        etcd.resume();
        // The client may need a moment to reconnect (its circuit breaker): retry briefly.
        let rev = 0;
        for (let i = 0; i < 100 && rev === 0; i++) {
          rev = await s.put("/after", "1").then(
            (r) => r.revision,
            () => new Promise<number>((r) => setTimeout(() => r(0), 100)),
          );
        }
        expect(rev).toBe(2);
        expect((await s.get("/during"))?.value).toBeUndefined();
        await until(() => seen.at(-1) === 2, "the watch to survive the outage");
        expect(seen).toEqual([1, 2]);
        expect(errors).toEqual([]);
      } finally {
        etcd.resume();
        await s.close();
      }
    });
  });
});
