import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isWeftError } from "@weft/core";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { storeContract } from "./contract.suite.js";
import { openDataDir, readDataDirMarker } from "./data-dir.js";
import { MemoryStore } from "./memory.js";
import { openStore, registeredStoreBackends, registerStoreBackend } from "./open-store.js";
import { SqliteStore } from "./sqlite.js";
import type { WatchBatch } from "./store.js";

const root = mkdtempSync(join(tmpdir(), "weft-sqlite-test-"));
let n = 0;
const freshDir = () => mkdtempSync(join(root, `t${n++}-`));
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return isWeftError(e) ? e.code : String(e);
  }
}

storeContract("sqlite", () => SqliteStore.open(join(freshDir(), "store.db")));

describe("SqliteStore", () => {
  it("keeps state, revision and watch history across a reopen", async () => {
    const path = join(freshDir(), "store.db");
    const a = await SqliteStore.open(path);
    await a.put("/a", "1");
    await a.txn({
      compare: [],
      success: [
        { type: "put", key: "/b", value: "2" },
        { type: "put", key: "/a", value: "1b" },
      ],
    });
    await a.delete("/b");
    await a.close();
    const b = await SqliteStore.open(path);
    expect(await b.revision()).toBe(3);
    expect(await b.get("/a")).toEqual({
      key: "/a",
      value: "1b",
      createRevision: 1,
      modRevision: 2,
      version: 2,
    });
    const seen: WatchBatch[] = [];
    await b.watch("", (x) => seen.push(x), { fromRevision: 0 });
    await new Promise((r) => setTimeout(r, 20));
    expect(seen.map((x) => [x.revision, x.events.map((e) => e.type)])).toEqual([
      [1, ["put"]],
      [2, ["put", "put"]],
      [3, ["delete"]],
    ]);
    expect(seen[1]?.events[1]).toEqual({
      type: "put",
      kv: { key: "/a", value: "1b", createRevision: 1, modRevision: 2, version: 2 },
      prev: { key: "/a", value: "1", createRevision: 1, modRevision: 1, version: 1 },
    });
    await b.close();
  });

  it("compacts history automatically and persists the compaction point", async () => {
    const path = join(freshDir(), "store.db");
    const s = await SqliteStore.open(path, { historyLimit: 20 });
    for (let i = 0; i < 100; i++) await s.put(`/k${i % 5}`, String(i));
    await s.close();
    const db = new Database(path, { readonly: true });
    const events = (db.prepare("SELECT count(DISTINCT rev) AS c FROM events").get() as { c: number }).c;
    db.close();
    expect(events).toBeGreaterThanOrEqual(20);
    expect(events).toBeLessThanOrEqual(22);
    const again = await SqliteStore.open(path, { historyLimit: 20 });
    expect(await codeOf(again.watch("", () => {}, { fromRevision: 10 }))).toBe("WEFT_ERR_STORE_COMPACTED");
    expect(await codeOf(again.watch("", () => {}, { fromRevision: 80 }))).toBeUndefined();
    await again.close();
  });

  it("refuses a second opener of the same file while the first holds it", async () => {
    const path = join(freshDir(), "store.db");
    const first = await SqliteStore.open(path);
    expect(await codeOf(SqliteStore.open(path))).toBe("WEFT_ERR_STORE_LOCKED");
    await first.put("/still", "works");
    await first.close();
    const second = await SqliteStore.open(path);
    expect((await second.get("/still"))?.value).toBe("works");
    await second.close();
  });

  it("rejects a write that does not fit (full disk) without acknowledging or losing anything", async () => {
    const path = join(freshDir(), "store.db");
    const s = await SqliteStore.open(path, { maxPageCount: 64 });
    const value = "v".repeat(16 * 1024);
    let acked = 0;
    let failure: unknown;
    for (let i = 0; i < 100 && failure === undefined; i++) {
      try {
        await s.put(`/fill/${i}`, value);
        acked++;
      } catch (e) {
        failure = e;
      }
    }
    expect(isWeftError(failure, "WEFT_ERR_STORE_FAILED")).toBe(true);
    expect(await s.revision()).toBe(acked);
    expect(await s.get(`/fill/${acked}`)).toBeUndefined();
    // A full disk is not fatal: dropping history frees pages and writes work again.
    await s.compact(await s.revision());
    await s.deletePrefix("/fill/");
    await s.close();
    const reopened = await SqliteStore.open(path);
    expect(await reopened.revision()).toBe(acked + 1);
    await reopened.put("/after", "ok");
    await reopened.close();
  });

  it("creates the file atomically and leaves no temporary files", async () => {
    const dir = freshDir();
    const s = await SqliteStore.open(join(dir, "store.db"));
    await s.close();
    const { readdirSync } = await import("node:fs");
    expect(readdirSync(dir)).toEqual(["store.db"]);
  });
});

describe("openDataDir", () => {
  it("initialises a dir with a private mode, a marker and a lock released on close", async () => {
    const dir = join(freshDir(), "data");
    const s = await openDataDir(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const marker = readDataDirMarker(dir);
    expect(marker?.clusterId).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.parse(readFileSync(join(dir, "LOCK"), "utf8")).pid).toBe(process.pid);
    await s.put("/x", "1");
    await s.close();
    expect(existsSync(join(dir, "LOCK"))).toBe(false);
    const again = await openDataDir(dir);
    expect(readDataDirMarker(dir)).toEqual(marker);
    expect((await again.get("/x"))?.value).toBe("1");
    await again.close();
  });

  it("takes over a stale lock left by a dead process", async () => {
    const dir = join(freshDir(), "data");
    const { writeFileSync, mkdirSync } = await import("node:fs");
    const { hostname } = await import("node:os");
    mkdirSync(dir);
    // pid 2^22+ is above Linux's pid_max default, so it cannot be alive.
    writeFileSync(join(dir, "LOCK"), JSON.stringify({ pid: 4_194_304 + 17, hostname: hostname() }));
    const s = await openDataDir(dir);
    await s.close();
  });

  it("takes over a lock whose holder is a zombie (killed, not yet reaped)", async () => {
    const dir = join(freshDir(), "data");
    const { writeFileSync, mkdirSync } = await import("node:fs");
    const { hostname } = await import("node:os");
    const { spawn } = await import("node:child_process");
    mkdirSync(dir);
    // The background `sleep 1` outlives the shell, which has exec'd into `sleep 30` by then; that
    // parent never waits, so the child stays a zombie. (`sleep 0` raced: the shell could reap it
    // before its exec, and did once in CI.)
    const parent = spawn("sh", ["-c", "sleep 1 & echo $!; exec sleep 30"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    const zombie = Number(
      await new Promise<string>((ok) => parent.stdout.once("data", (d: Buffer) => ok(d.toString()))),
    );
    try {
      await expect
        .poll(() => readFileSync(`/proc/${zombie}/stat`, "utf8").split(") ")[1]?.[0], { timeout: 10_000 })
        .toBe("Z");
      writeFileSync(join(dir, "LOCK"), JSON.stringify({ pid: zombie, hostname: hostname() }));
      const s = await openDataDir(dir);
      await s.close();
    } finally {
      parent.kill("SIGKILL");
    }
  });
});

describe("openStore", () => {
  it("opens memory, sqlite URLs and data dirs, and refuses unknown schemes", async () => {
    const m1 = await openStore("memory");
    const m2 = await openStore("memory://?historyLimit=5");
    expect([m1.backend, m2.backend]).toEqual(["memory", "memory"]);
    const path = join(freshDir(), "x.db");
    const s = await openStore(`sqlite://${path}?historyLimit=100`);
    expect(s.backend).toBe("sqlite");
    await s.close();
    const d = await openStore(join(freshDir(), "dd"));
    expect(d.backend).toBe("sqlite");
    await d.close();
    expect(await codeOf(openStore("zk://localhost:2181"))).toBe("WEFT_ERR_CONFIG_INVALID");
    expect(await codeOf(openStore("sqlite://relative.db"))).toBe("WEFT_ERR_CONFIG_INVALID");
    expect(await codeOf(openStore(`sqlite://${path}?bogus=1`))).toBe("WEFT_ERR_CONFIG_INVALID");
    expect(await codeOf(openStore("memory://?historyLimit=-3"))).toBe("WEFT_ERR_CONFIG_INVALID");
    expect(await codeOf(openStore(""))).toBe("WEFT_ERR_CONFIG_INVALID");
  });

  it("lets a backend register by scheme", async () => {
    registerStoreBackend("test-mem", async () => new MemoryStore());
    expect(registeredStoreBackends()).toContain("test-mem");
    expect((await openStore("test-mem://anything")).backend).toBe("memory");
  });
});
