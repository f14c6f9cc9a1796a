/**
 * weft snapshot save/restore: memory -> file -> etcd (a REAL etcd) -> file
 * -> SQLite data dir, every key and value equal at each step (runtime /ha/
 * keys left out); a non-empty target is refused unless --force; a damaged
 * or truncated file is refused before anything is written. The CLI itself
 * runs in-process for the SQLite leg.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemoryStore, openStore, type Store } from "@weft/controlplane";
import { isWeftError } from "@weft/core";
import { type EtcdTestServer, etcdBinary, startEtcd } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCaptured } from "../run-captured.suite.js";
import { parseSnapshot, readAll, restoreEntries, snapshotText } from "./snapshot.js";

const dir = mkdtempSync(join(tmpdir(), "weft-snapshot-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function seeded(): Promise<Store> {
  const s = new MemoryStore();
  await s.put("/config/Intention/api", JSON.stringify({ kind: "Intention", name: "api", sources: [] }));
  await s.put("/catalog/instances/api/api-1", JSON.stringify({ id: "api-1", note: "ünïcode\nnewline" }));
  await s.put("/ca/active", "root-1");
  await s.put("/ha/heartbeats/replica-1", '{"v":1,"checks":[]}');
  // Enough keys for several restore transactions.
  for (let i = 0; i < 250; i++) await s.put(`/acl/tokens/t-${String(i).padStart(3, "0")}`, `{"i":${i}}`);
  await s.delete("/acl/tokens/t-007");
  return s;
}

const contents = async (s: Store) => (await readAll(s)).entries;

describe("snapshot file", () => {
  it("round-trips through parse, leaving out /ha/ keys, and refuses damaged files", async () => {
    const src = await seeded();
    const { header, text } = await snapshotText(src);
    expect(header).toMatchObject({ weftSnapshot: 1, backend: "memory", keys: 252 });
    expect(header.revision).toBe(await src.revision());
    const parsed = parseSnapshot(text);
    expect(parsed.entries).toEqual(await contents(src));
    expect(parsed.entries.some((e) => e.k.startsWith("/ha/"))).toBe(false);

    const lines = text.trimEnd().split("\n");
    const codeOf = (t: string) => {
      try {
        parseSnapshot(t);
        return "ok";
      } catch (e) {
        return isWeftError(e) ? e.code : String(e);
      }
    };
    expect(codeOf(`${lines.slice(0, -1).join("\n")}\n`)).toBe("WEFT_ERR_VALIDATION"); // truncated
    expect(codeOf(`{"weftSnapshot":2,"keys":0}\n`)).toBe("WEFT_ERR_VALIDATION"); // unknown format
    expect(codeOf(`${lines[0]}\n{"k":"no-slash","v":""}\n`)).toBe("WEFT_ERR_VALIDATION");
    expect(codeOf(`${[...lines, "{not json"].join("\n")}\n`)).toBe("WEFT_ERR_VALIDATION");
    await src.close();
  });

  it("restore refuses a non-empty target unless forced, and --force replaces its contents", async () => {
    const src = await seeded();
    const { entries } = parseSnapshot((await snapshotText(src)).text);
    const target = new MemoryStore();
    await target.put("/config/Intention/old", "{}");
    const err = await restoreEntries(target, entries).catch((e: unknown) => e);
    expect(isWeftError(err) ? err.code : err).toBe("WEFT_ERR_CONFLICT");
    expect(await contents(target)).toEqual([{ k: "/config/Intention/old", v: "{}" }]);
    await restoreEntries(target, entries, { force: true });
    expect(await contents(target)).toEqual(await contents(src));
    // Runtime keys alone do not make a store "non-empty".
    const onlyHa = new MemoryStore();
    await onlyHa.put("/ha/heartbeats/x", "{}");
    await restoreEntries(onlyHa, entries);
    expect(await contents(onlyHa)).toEqual(await contents(src));
    for (const s of [src, target, onlyHa]) await s.close();
  });
});

const withEtcd = etcdBinary() ? describe : describe.skip;
if (!etcdBinary())
  console.warn("snapshot.test.ts: etcd leg SKIPPED - no etcd binary on PATH (install etcd-server)");

withEtcd("snapshot across backends (real etcd)", () => {
  let etcd: EtcdTestServer;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it("memory -> etcd -> SQLite data dir (through the CLI) -> etcd, equal at every step", async () => {
    const src = await seeded();
    const want = await contents(src);
    const file1 = join(dir, "from-memory.jsonl");
    writeFileSync(file1, (await snapshotText(src)).text);
    await src.close();

    // Into etcd (as the CLI would, by spec).
    const etcdSpec = `etcd://${etcd.hostPort}/?prefix=/weft-snap-${process.pid}/`;
    const e1 = await openStore(etcdSpec);
    await restoreEntries(e1, parseSnapshot(readFileSync(file1, "utf8")).entries);
    expect(await contents(e1)).toEqual(want);
    // --force on etcd: a stray key goes, the snapshot's keys stay (the counter and leader keys are outside the range).
    await e1.put("/config/Intention/stray", "{}");
    await restoreEntries(e1, parseSnapshot(readFileSync(file1, "utf8")).entries, { force: true });
    expect(await contents(e1)).toEqual(want);
    await e1.close();

    // etcd -> file -> SQLite data dir, with the CLI.
    const file2 = join(dir, "from-etcd.jsonl");
    const save = await runCaptured(["snapshot", "save", file2, "--store", etcdSpec], dir);
    expect(save.err).toBe("");
    expect(save.code).toBe(0);
    expect(save.out).toMatch(/saved 252 keys from the etcd store \(revision \d+\)/);
    expect(statSync(file2).mode & 0o777).toBe(0o600);
    expect(parseSnapshot(readFileSync(file2, "utf8")).header.backend).toBe("etcd");
    const dataDir = join(dir, "server-data");
    const restore = await runCaptured(["snapshot", "restore", file2, "--store", dataDir], dir);
    expect(restore.err).toBe("");
    expect(restore.out).toMatch(/restored 252 keys \(saved from etcd .*\) into the sqlite store/);
    // A second restore into the now non-empty store is refused (exit code != 0, store unchanged).
    const again = await runCaptured(["snapshot", "restore", file2, "--store", dataDir], dir);
    expect(again.code).not.toBe(0);
    expect(again.err).toMatch(/--force/);
    const sq = await openStore(dataDir);
    expect(sq.backend).toBe("sqlite");
    expect(await contents(sq)).toEqual(want);

    // And back: SQLite -> a fresh etcd prefix.
    const file3 = join(dir, "from-sqlite.jsonl");
    writeFileSync(file3, (await snapshotText(sq)).text);
    await sq.close();
    const e2 = await openStore(`etcd://${etcd.hostPort}/?prefix=/weft-snap2-${process.pid}/`);
    await restoreEntries(e2, parseSnapshot(readFileSync(file3, "utf8")).entries);
    expect(await contents(e2)).toEqual(want);
    await e2.close();
  }, 60_000);
});
