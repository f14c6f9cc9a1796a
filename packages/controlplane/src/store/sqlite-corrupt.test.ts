/**
 * A damaged store must stop the server with WEFT_ERR_STORE_CORRUPT naming the
 * file, never start empty, and never "repair" the file (which could throw
 * away what a human could still recover).
 */

import { createHash, randomBytes } from "node:crypto";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isWeftError } from "@weft/core";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDataDir } from "./data-dir.js";
import { SqliteStore } from "./sqlite.js";

const root = mkdtempSync(join(tmpdir(), "weft-corrupt-test-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (name = "store.db") => {
  const d = join(root, `c${n++}`);
  mkdirSync(d);
  return join(d, name);
};

const digest = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

async function refusal(p: Promise<{ close(): Promise<void> }>): Promise<{ code: string; message: string }> {
  try {
    const s = await p;
    await s.close();
  } catch (e) {
    if (isWeftError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error("opened a store that should have been refused");
}

/** A valid, populated, checkpointed store file (about 100 pages). */
let good: string;
beforeAll(async () => {
  good = fresh();
  const s = await SqliteStore.open(good);
  for (let i = 0; i < 100; i++) await s.put(`/svc/${i}`, `${i}`.repeat(300));
  await s.close();
});

describe("SqliteStore refuses damaged files", () => {
  const cases: [string, (path: string) => void][] = [
    ["random bytes", (p) => writeFileSync(p, randomBytes(64 * 1024))],
    ["a zero-length file", (p) => writeFileSync(p, "")],
    [
      "a database cut in half",
      (p) => {
        copyFileSync(good, p);
        truncateSync(p, Math.floor(readFileSync(p).length / 2));
      },
    ],
    [
      "a database with a page overwritten by garbage",
      (p) => {
        const buf = readFileSync(good);
        Buffer.alloc(4096, 0xff).copy(buf, 4096 * 3);
        writeFileSync(p, buf);
      },
    ],
    [
      "another application's SQLite file",
      (p) => {
        const db = new Database(p);
        db.exec(
          "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('mine')",
        );
        db.close();
      },
    ],
    [
      "a Weft store from a newer format",
      (p) => {
        copyFileSync(good, p);
        const db = new Database(p);
        db.pragma("user_version = 99");
        db.close();
      },
    ],
    ["a directory", (p) => mkdirSync(p)],
  ];

  for (const [name, make] of cases) {
    it(`refuses ${name} with WEFT_ERR_STORE_CORRUPT and leaves it untouched`, async () => {
      const path = fresh();
      make(path);
      const before = name === "a directory" ? "" : digest(path);
      const err = await refusal(SqliteStore.open(path));
      expect(err.code).toBe("WEFT_ERR_STORE_CORRUPT");
      expect(err.message).toContain(path);
      if (before) expect(digest(path)).toBe(before);
    });
  }
});

describe("openDataDir refuses to start empty", () => {
  it("refuses a dir whose marker says it was initialised but whose store is gone or empty", async () => {
    const dir = join(root, "dd-missing");
    const s = await openDataDir(dir);
    await s.put("/important", "data");
    await s.close();
    rmSync(join(dir, "store.db"));
    const missing = await refusal(openDataDir(dir));
    expect(missing.code).toBe("WEFT_ERR_STORE_CORRUPT");
    expect(missing.message).toContain("initialised");
    writeFileSync(join(dir, "store.db"), "");
    expect((await refusal(openDataDir(dir))).code).toBe("WEFT_ERR_STORE_CORRUPT");
  });

  it("refuses a second opener of a locked dir, in this process and in another", async () => {
    const dir = join(root, "dd-locked");
    const s = await openDataDir(dir);
    const again = await refusal(openDataDir(dir));
    expect(again.code).toBe("WEFT_ERR_STORE_LOCKED");
    // Another live process holds the lock: pid 1 always exists.
    await s.close();
    writeFileSync(
      join(dir, "LOCK"),
      JSON.stringify({ pid: 1, hostname: (await import("node:os")).hostname() }),
    );
    const other = await refusal(openDataDir(dir));
    expect(other.code).toBe("WEFT_ERR_STORE_LOCKED");
    expect(other.message).toContain("pid 1");
  });
});
