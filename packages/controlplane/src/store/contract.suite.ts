/**
 * The shared contract suite: every Store backend runs exactly these tests
 * (Hono's router suite habit). Each test gets a fresh store from `open` and
 * the suite closes it afterwards. Tests assert on error codes, never text.
 */

import { isWeftError } from "@weft/core";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { compareKeys } from "./keys.js";
import type { KeyValue, Store, TxnOp, WatchBatch } from "./store.js";

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(isWeftError(err) ? err.code : err).toBe(code);
}

async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Collects watch batches; `revisions` flattens them for gap/duplicate checks. */
function collector() {
  const batches: WatchBatch[] = [];
  return {
    batches,
    onBatch: (b: WatchBatch) => {
      batches.push(b);
    },
    revisions: () => batches.map((b) => b.revision),
    last: () => batches.at(-1)?.revision ?? 0,
  };
}

const brief = (kv: KeyValue | undefined) =>
  kv && [kv.key, kv.value, kv.createRevision, kv.modRevision, kv.version];

export function storeContract(name: string, open: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    describe("revisions", () => {
      it("starts at 0 and moves by one per mutation; no-op deletes and read-only txns do not move it", async () => {
        expect(await store.revision()).toBe(0);
        expect((await store.put("/a", "1")).revision).toBe(1);
        expect((await store.put("/a", "1")).revision).toBe(2);
        expect((await store.delete("/a")).revision).toBe(3);
        const noop = await store.delete("/a");
        expect(noop).toEqual({ revision: 3, deleted: [] });
        expect((await store.deletePrefix("/nothing/")).revision).toBe(3);
        const txn = await store.txn({
          compare: [],
          success: [
            { type: "put", key: "/x", value: "1" },
            { type: "put", key: "/y", value: "2" },
            { type: "delete", key: "/z" },
          ],
        });
        expect(txn.revision).toBe(4);
        const ro = await store.txn({ compare: [], success: [{ type: "get", key: "/x" }] });
        expect(ro.revision).toBe(4);
        const noopTxn = await store.txn({ compare: [], success: [{ type: "delete", key: "/missing" }] });
        expect(noopTxn.revision).toBe(4);
        expect(await store.revision()).toBe(4);
        expect((await store.range("")).revision).toBe(4);
      });
    });

    describe("key metadata", () => {
      it("tracks createRevision, modRevision and version, reset by delete-then-recreate", async () => {
        const first = await store.put("/k", "a");
        expect(first.prev).toBeUndefined();
        await store.put("/other", "x");
        const second = await store.put("/k", "b");
        expect(brief(second.prev)).toEqual(["/k", "a", 1, 1, 1]);
        expect(brief(await store.get("/k"))).toEqual(["/k", "b", 1, 3, 2]);
        const del = await store.delete("/k");
        expect(del.deleted.map(brief)).toEqual([["/k", "b", 1, 3, 2]]);
        expect(await store.get("/k")).toBeUndefined();
        await store.put("/k", "c");
        expect(brief(await store.get("/k"))).toEqual(["/k", "c", 5, 5, 1]);
        expect(await store.get("/never")).toBeUndefined();
      });

      it("refuses malformed keys and values with WEFT_ERR_VALIDATION", async () => {
        await expectCode(store.put("", "v"), "WEFT_ERR_VALIDATION");
        await expectCode(store.put("/bad\uD800", "v"), "WEFT_ERR_VALIDATION");
        await expectCode(store.put("/k", 42 as unknown as string), "WEFT_ERR_VALIDATION");
        await expectCode(store.range("/", { limit: -1 }), "WEFT_ERR_VALIDATION");
        expect(await store.revision()).toBe(0);
      });

      it("stores unicode keys and values and a 1 MiB value intact", async () => {
        const keys = ["/ü/ñ", "/日本/語", "/emoji/😀", "/mixed/a\u00e9\uFFFF", "/nul/a\u0000b"];
        for (const k of keys) await store.put(k, `${k} → ✓ 🎉`);
        for (const k of keys) expect((await store.get(k))?.value).toBe(`${k} → ✓ 🎉`);
        const big = "x".repeat(1024 * 1024 - 3) + "€";
        await store.put("/big", big);
        expect((await store.get("/big"))?.value).toBe(big);
      });
    });

    describe("range", () => {
      it("returns keys by prefix in code point order, raw prefixes like etcd", async () => {
        for (const k of ["/b", "/a/2", "/a/1", "/ab", "/a", "/a/😀", "/a/\uFFFF", "/c/x"])
          await store.put(k, k);
        const keys = async (p: string) => (await store.range(p)).kvs.map((kv) => kv.key);
        expect(await keys("/a")).toEqual(["/a", "/a/1", "/a/2", "/a/\uFFFF", "/a/😀", "/ab"]);
        expect(await keys("/a/")).toEqual(["/a/1", "/a/2", "/a/\uFFFF", "/a/😀"]);
        expect(await keys("/a/😀")).toEqual(["/a/😀"]);
        expect(await keys("/zz")).toEqual([]);
        expect((await keys("")).length).toBe(8);
        const all = await keys("");
        expect([...all].sort(compareKeys)).toEqual(all);
      });

      it("pages with limit, startAfter and more", async () => {
        for (let i = 0; i < 25; i++) await store.put(`/p/${String(i).padStart(2, "0")}`, String(i));
        await store.put("/q", "outside");
        const first = await store.range("/p/", { limit: 10 });
        expect(first.kvs.length).toBe(10);
        expect(first.more).toBe(true);
        const seen: string[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await store.range("/p/", { limit: 10, startAfter: after });
          seen.push(...page.kvs.map((kv) => kv.key));
          if (!page.more) break;
          after = page.kvs.at(-1)?.key;
        }
        expect(seen.length).toBe(25);
        expect(new Set(seen).size).toBe(25);
        const exact = await store.range("/p/", { limit: 25 });
        expect(exact.more).toBe(false);
        expect((await store.range("/p/", { startAfter: "/p/23" })).kvs.map((kv) => kv.key)).toEqual([
          "/p/24",
        ]);
        expect((await store.range("/p/", { startAfter: "/a" })).kvs.length).toBe(25);
        expect((await store.range("/p/", { startAfter: "/z" })).kvs.length).toBe(0);
        expect((await store.range("/p/", { limit: 0 })).kvs.length).toBe(25);
        expect((await store.range("/p/", { startAfter: "" })).kvs.length).toBe(25);
      });
    });

    describe("txn", () => {
      it("evaluates every compare kind and runs the matching branch", async () => {
        await store.put("/k", "v1");
        await store.put("/k", "v2"); // create 1, mod 2, version 2
        const cases: [Parameters<Store["txn"]>[0]["compare"][number], boolean][] = [
          [{ key: "/k", target: "version", op: "=", value: 2 }, true],
          [{ key: "/k", target: "version", op: "!=", value: 2 }, false],
          [{ key: "/k", target: "version", op: "<", value: 3 }, true],
          [{ key: "/k", target: "version", op: ">", value: 2 }, false],
          [{ key: "/k", target: "modRevision", op: "=", value: 2 }, true],
          [{ key: "/k", target: "modRevision", op: ">", value: 1 }, true],
          [{ key: "/k", target: "createRevision", op: "=", value: 1 }, true],
          [{ key: "/k", target: "createRevision", op: "<", value: 1 }, false],
          [{ key: "/k", target: "value", op: "=", value: "v2" }, true],
          [{ key: "/k", target: "value", op: "!=", value: "v2" }, false],
          [{ key: "/k", target: "exists", value: true }, true],
          [{ key: "/k", target: "exists", value: false }, false],
          [{ key: "/none", target: "exists", value: false }, true],
          [{ key: "/none", target: "version", op: "=", value: 0 }, true],
          [{ key: "/none", target: "createRevision", op: "=", value: 0 }, true],
          [{ key: "/none", target: "value", op: "=", value: "" }, false],
          [{ key: "/none", target: "value", op: "!=", value: "x" }, false],
        ];
        for (const [cmp, expected] of cases) {
          const r = await store.txn({
            compare: [cmp],
            success: [{ type: "get", key: "/k" }],
            failure: [{ type: "get", key: "/none" }],
          });
          expect({ cmp, succeeded: r.succeeded }).toEqual({ cmp, succeeded: expected });
          expect(r.results.length).toBe(1);
          expect(r.results[0]?.value).toBe(expected ? "v2" : undefined);
        }
        expect(await store.revision()).toBe(2);
      });

      it("requires all compares, writes one revision, returns previous values", async () => {
        await store.put("/a", "1");
        await store.put("/b", "1");
        const fail = await store.txn({
          compare: [
            { key: "/a", target: "value", op: "=", value: "1" },
            { key: "/b", target: "value", op: "=", value: "2" },
          ],
          success: [{ type: "put", key: "/a", value: "x" }],
          failure: [
            { type: "put", key: "/c", value: "from-failure" },
            { type: "get", key: "/c" },
          ],
        });
        expect(fail.succeeded).toBe(false);
        expect(fail.revision).toBe(3);
        expect(fail.results.map(brief)).toEqual([undefined, ["/c", "from-failure", 3, 3, 1]]);
        const ok = await store.txn({
          compare: [{ key: "/a", target: "modRevision", op: "=", value: 1 }],
          success: [
            { type: "put", key: "/a", value: "2" },
            { type: "delete", key: "/b" },
            { type: "deletePrefix", prefix: "/c" },
            { type: "get", key: "/a" },
          ],
        });
        expect(ok.succeeded).toBe(true);
        expect(ok.revision).toBe(4);
        expect(ok.results.map(brief)).toEqual([
          ["/a", "1", 1, 1, 1],
          ["/b", "1", 2, 2, 1],
          undefined,
          ["/a", "2", 1, 4, 2],
        ]);
        expect((await store.range("")).kvs.map((kv) => kv.key)).toEqual(["/a"]);
      });

      it("refuses a txn that writes one key twice, before doing anything", async () => {
        const twice: TxnOp[] = [
          { type: "put", key: "/a", value: "1" },
          { type: "put", key: "/a", value: "2" },
        ];
        await expectCode(store.txn({ compare: [], success: twice }), "WEFT_ERR_VALIDATION");
        const overlap: TxnOp[] = [
          { type: "put", key: "/d/x", value: "1" },
          { type: "deletePrefix", prefix: "/d/" },
        ];
        await expectCode(store.txn({ compare: [], success: [], failure: overlap }), "WEFT_ERR_VALIDATION");
        expect(await store.revision()).toBe(0);
      });
    });

    describe("deletePrefix", () => {
      it("deletes every key under a raw prefix in one revision", async () => {
        for (const k of ["/s/a", "/s/b", "/sx", "/t"]) await store.put(k, k);
        const r = await store.deletePrefix("/s");
        expect(r.revision).toBe(5);
        expect(r.deleted.map((kv) => kv.key)).toEqual(["/s/a", "/s/b", "/sx"]);
        expect((await store.range("")).kvs.map((kv) => kv.key)).toEqual(["/t"]);
        expect((await store.deletePrefix("")).deleted.length).toBe(1);
        expect(await store.revision()).toBe(6);
      });
    });

    describe("watch", () => {
      it("delivers live events with prev, filtered by prefix, a txn as one batch", async () => {
        await store.put("/w/a", "0");
        const c = collector();
        const other = collector();
        await store.watch("/w/", c.onBatch);
        await store.watch("/elsewhere/", other.onBatch);
        await store.put("/w/a", "1");
        await store.put("/x", "ignored");
        await store.txn({
          compare: [],
          success: [
            { type: "put", key: "/w/b", value: "2" },
            { type: "put", key: "/x2", value: "ignored" },
            { type: "delete", key: "/w/a" },
          ],
        });
        await until(() => c.last() === 4, "txn batch");
        expect(c.revisions()).toEqual([2, 4]);
        const [first, txn] = c.batches;
        expect(first?.events).toEqual([
          {
            type: "put",
            kv: expect.objectContaining({ key: "/w/a", value: "1", modRevision: 2, version: 2 }),
            prev: expect.objectContaining({ value: "0" }),
          },
        ]);
        expect(
          txn?.events.map((e) => (e.type === "put" ? ["put", e.kv.key, e.kv.value] : ["delete", e.key])),
        ).toEqual([
          ["put", "/w/b", "2"],
          ["delete", "/w/a"],
        ]);
        const del = txn?.events[1];
        expect(del?.type === "delete" && del.revision === 4 && del.prev?.value === "1").toBe(true);
        expect(other.batches).toEqual([]);
      });

      it("replays from a revision then continues live, without gap or duplicate while writes race", async () => {
        for (let i = 0; i < 60; i++) await store.put(`/r/${i % 7}`, String(i));
        const c = collector();
        const pending: Promise<unknown>[] = [];
        const watching = store.watch("", c.onBatch, { fromRevision: 10 });
        for (let i = 0; i < 120; i++) {
          pending.push(
            i % 3 === 0
              ? store.txn({
                  compare: [],
                  success: [
                    { type: "put", key: `/r/t${i}`, value: "t" },
                    { type: "delete", key: `/r/${i % 7}` },
                  ],
                })
              : store.put(`/r/${i % 7}`, `live${i}`),
          );
          if (i % 10 === 0) await new Promise((r) => setImmediate(r));
        }
        await Promise.all(pending);
        await watching;
        const final = await store.revision();
        await until(() => c.last() === final, "replay to catch up");
        const revs = c.revisions();
        expect(revs).toEqual(Array.from({ length: final - 10 }, (_, i) => 11 + i));
        for (const b of c.batches)
          for (const e of b.events) expect(e.type === "put" ? e.kv.modRevision : e.revision).toBe(b.revision);
      });

      it("watches from a future revision and from 0", async () => {
        const future = collector();
        await store.watch("", future.onBatch, { fromRevision: 2 });
        await store.put("/a", "1");
        await store.put("/a", "2");
        await store.put("/a", "3");
        await until(() => future.last() === 3, "future watch");
        expect(future.revisions()).toEqual([3]);
        const all = collector();
        await store.watch("", all.onBatch, { fromRevision: 0 });
        await until(() => all.last() === 3, "replay from 0");
        expect(all.revisions()).toEqual([1, 2, 3]);
      });

      it("stops delivering after dispose, and a callback may write to the store", async () => {
        const c = collector();
        const w = await store.watch("", c.onBatch);
        const echo = collector();
        await store.watch("/ping", async (b) => {
          echo.onBatch(b);
          if (b.revision < 5) await store.put("/ping", String(b.revision));
        });
        await store.put("/ping", "start");
        await until(() => echo.last() === 5, "echo chain");
        expect(echo.revisions()).toEqual([1, 2, 3, 4, 5]);
        await w.dispose();
        const before = c.batches.length;
        await store.put("/after", "x");
        await new Promise((r) => setTimeout(r, 20));
        expect(c.batches.length).toBe(before);
      });

      it("ends a watch whose callback throws, reporting through onError, without disturbing others", async () => {
        const errors: Error[] = [];
        const bad: number[] = [];
        const good = collector();
        await store.watch(
          "",
          (b) => {
            bad.push(b.revision);
            throw new Error("consumer bug");
          },
          { onError: (e) => errors.push(e) },
        );
        await store.watch("", good.onBatch);
        await store.put("/a", "1");
        await store.put("/a", "2");
        await until(() => good.last() === 2, "good watcher");
        expect(bad).toEqual([1]);
        expect(errors.map((e) => e.message)).toEqual(["consumer bug"]);
        expect(good.revisions()).toEqual([1, 2]);
      });

      it("refuses a watch from before the compaction point with WEFT_ERR_STORE_COMPACTED", async () => {
        for (let i = 0; i < 10; i++) await store.put("/c", String(i));
        await store.compact(6);
        await expectCode(
          store.watch("", () => {}, { fromRevision: 5 }),
          "WEFT_ERR_STORE_COMPACTED",
        );
        const c = collector();
        await store.watch("", c.onBatch, { fromRevision: 6 });
        await until(() => c.last() === 10, "replay after compaction");
        expect(c.revisions()).toEqual([7, 8, 9, 10]);
        await store.compact(3); // older than the compaction point: nothing to do
        await expectCode(store.compact(11), "WEFT_ERR_VALIDATION");
        expect((await store.get("/c"))?.value).toBe("9");
      });
    });

    describe("close", () => {
      it("rejects every operation with WEFT_ERR_STORE_CLOSED and ends watches", async () => {
        await store.put("/a", "1");
        const errors: Error[] = [];
        await store.watch("", () => {}, { onError: (e) => errors.push(e) });
        await store.close();
        await store.close(); // idempotent
        expect(errors.map((e) => (isWeftError(e) ? e.code : e))).toEqual(["WEFT_ERR_STORE_CLOSED"]);
        const ops: Promise<unknown>[] = [
          store.get("/a"),
          store.range(""),
          store.put("/a", "2"),
          store.delete("/a"),
          store.deletePrefix("/"),
          store.txn({ compare: [], success: [] }),
          store.revision(),
          store.watch("", () => {}),
          store.compact(1),
        ];
        for (const p of ops) await expectCode(p, "WEFT_ERR_STORE_CLOSED");
      });
    });

    it("matches a reference model over random sequences of put, delete and txn (property)", async () => {
      const key = fc.constantFrom("/a", "/a/1", "/a/2", "/ab", "/b", "/😀");
      const op = fc.oneof(
        fc.record({ kind: fc.constant("put" as const), key, value: fc.string({ maxLength: 8 }) }),
        fc.record({ kind: fc.constant("delete" as const), key }),
        fc.record({ kind: fc.constant("deletePrefix" as const), key: fc.constantFrom("/a", "/a/", "/z") }),
        fc.record({
          kind: fc.constant("txn" as const),
          key,
          version: fc.integer({ min: 0, max: 3 }),
          writes: fc.uniqueArray(fc.record({ key, put: fc.boolean() }), {
            selector: (w) => w.key,
            maxLength: 3,
          }),
        }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops) => {
          const s = await open();
          try {
            const model = new Map<string, KeyValue>();
            let rev = 0;
            const write = (k: string, v: string | undefined) => {
              const prev = model.get(k);
              if (v === undefined) model.delete(k);
              else
                model.set(k, {
                  key: k,
                  value: v,
                  createRevision: prev ? prev.createRevision : rev + 1,
                  modRevision: rev + 1,
                  version: (prev?.version ?? 0) + 1,
                });
              return prev !== undefined || v !== undefined;
            };
            for (const o of ops) {
              if (o.kind === "put") {
                await s.put(o.key, o.value);
                write(o.key, o.value);
                rev++;
              } else if (o.kind === "delete") {
                await s.delete(o.key);
                if (write(o.key, undefined)) rev++;
              } else if (o.kind === "deletePrefix") {
                await s.deletePrefix(o.key);
                let changed = false;
                for (const k of [...model.keys()])
                  if (k.startsWith(o.key)) changed = write(k, undefined) || changed;
                if (changed) rev++;
              } else {
                const r = await s.txn({
                  compare: [{ key: o.key, target: "version", op: "=", value: o.version }],
                  success: o.writes.map((w) =>
                    w.put ? { type: "put", key: w.key, value: `v${rev}` } : { type: "delete", key: w.key },
                  ),
                });
                const holds = (model.get(o.key)?.version ?? 0) === o.version;
                expect(r.succeeded).toBe(holds);
                let changed = false;
                if (holds)
                  for (const w of o.writes) changed = write(w.key, w.put ? `v${rev}` : undefined) || changed;
                if (changed) rev++;
              }
            }
            const got = await s.range("");
            const want = [...model.values()].sort((a, b) => compareKeys(a.key, b.key));
            expect(got.kvs.map(brief)).toEqual(want.map(brief));
            expect(got.revision).toBe(rev);
          } finally {
            await s.close();
          }
        }),
        { numRuns: 40 },
      );
    });
  });
}
