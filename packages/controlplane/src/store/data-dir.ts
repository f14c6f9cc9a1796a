/**
 * The server's data directory:
 *
 *   <dir>/weft-data.json  marker written once, after the store first exists
 *   <dir>/store.db        the SQLite store (plus -wal while open)
 *   <dir>/LOCK            {pid, hostname} of the server holding the dir
 *
 * The marker is what makes "never a silent start with an empty registry"
 * checkable: if it says the dir was initialised but store.db is gone or
 * empty, something deleted our data and we refuse to start rather than
 * create a fresh, empty store in its place.
 *
 * LOCK gives a readable error naming the other process; the authoritative
 * guard is SQLite's exclusive file lock (see sqlite.ts), which the OS drops
 * when a process dies, so a racy stale-lock takeover still cannot let two
 * servers write one file.
 */

import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { isWeftError, newId, weftError } from "@weft/core";
import { fsyncPath, SqliteStore, type SqliteStoreOptions } from "./sqlite.js";

export const DATA_DIR_MARKER = "weft-data.json";
export const DATA_DIR_STORE = "store.db";
export const DATA_DIR_LOCK = "LOCK";

export interface DataDirMarker {
  readonly format: 1;
  readonly clusterId: string;
  readonly createdAt: string;
}

export type DataDirOptions = Omit<SqliteStoreOptions, "onClose">;

/** Lock files held by this process, so a second open in-process is refused too. */
const held = new Set<string>();

/** Opens (initialising on first use) the data dir's store; see the file comment for the rules. */
export async function openDataDir(dir: string, opts: DataDirOptions = {}): Promise<SqliteStore> {
  const abs = resolve(dir);
  try {
    mkdirSync(abs, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw weftError(
      "WEFT_ERR_STORE_FAILED",
      { detail: `cannot create data dir ${abs}: ${String(e)}` },
      { cause: e },
    );
  }
  if (!statSync(abs).isDirectory()) {
    throw weftError("WEFT_ERR_STORE_CORRUPT", { path: abs, detail: "the data dir path is not a directory" });
  }
  const release = acquireLock(abs);
  try {
    const marker = readDataDirMarker(abs);
    const dbPath = join(abs, DATA_DIR_STORE);
    if (marker) {
      const size = fileSize(dbPath);
      if (size === undefined || size === 0) {
        throw weftError("WEFT_ERR_STORE_CORRUPT", {
          path: dbPath,
          detail: `data dir was initialised (cluster ${marker.clusterId}, ${marker.createdAt}) but its store is ${
            size === undefined ? "missing" : "empty"
          }`,
        });
      }
    }
    const store = await SqliteStore.open(dbPath, { ...opts, onClose: release });
    if (!marker) {
      try {
        writeMarker(abs);
      } catch (e) {
        await store.close();
        throw weftError(
          "WEFT_ERR_STORE_FAILED",
          { detail: `cannot write ${DATA_DIR_MARKER}: ${String(e)}` },
          { cause: e },
        );
      }
    }
    return store;
  } catch (e) {
    release();
    throw e;
  }
}

/** The marker of an initialised data dir, or undefined for a new one. */
export function readDataDirMarker(dir: string): DataDirMarker | undefined {
  const path = join(resolve(dir), DATA_DIR_MARKER);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw weftError(
      "WEFT_ERR_STORE_CORRUPT",
      { path, detail: `cannot read the marker: ${String(e)}` },
      { cause: e },
    );
  }
  try {
    const m = JSON.parse(text) as Partial<DataDirMarker>;
    if (m.format === 1 && typeof m.clusterId === "string" && typeof m.createdAt === "string") {
      return { format: 1, clusterId: m.clusterId, createdAt: m.createdAt };
    }
  } catch {
    // fall through
  }
  throw weftError("WEFT_ERR_STORE_CORRUPT", { path, detail: "the data dir marker is not valid" });
}

function writeMarker(dir: string): void {
  const marker: DataDirMarker = { format: 1, clusterId: newId(), createdAt: new Date().toISOString() };
  const path = join(dir, DATA_DIR_MARKER);
  const tmp = `${path}.tmp-${process.pid}`;
  writeDurably(tmp, `${JSON.stringify(marker, null, 2)}\n`, "w");
  renameSync(tmp, path);
  fsyncPath(dir, "r");
}

function writeDurably(path: string, text: string, flags: "w" | "wx"): void {
  const fd = openSync(path, flags, 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fileSize(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch {
    return undefined;
  }
}

interface LockOwner {
  pid: number;
  hostname: string;
}

/** A lock younger than this with no readable owner is being written, not stale. */
const LOCK_GRACE_MS = 5_000;

function acquireLock(dir: string): () => void {
  const path = join(dir, DATA_DIR_LOCK);
  const locked = (detail: string) => weftError("WEFT_ERR_STORE_LOCKED", { path: dir, detail });
  if (held.has(path)) throw locked("already open in this process");
  const me: LockOwner = { pid: process.pid, hostname: hostname() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeDurably(path, `${JSON.stringify(me)}\n`, "wx");
      held.add(path);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        held.delete(path);
        const owner = readLock(path);
        if (owner?.pid === me.pid && owner.hostname === me.hostname) unlinkQuietly(path);
      };
    } catch (e) {
      if (isWeftError(e)) throw e;
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
        throw weftError(
          "WEFT_ERR_STORE_FAILED",
          { detail: `cannot create ${path}: ${String(e)}` },
          { cause: e },
        );
      }
    }
    const owner = readLock(path);
    if (owner === undefined) {
      const age = Date.now() - (statMtime(path) ?? 0);
      if (age < LOCK_GRACE_MS) throw locked(`${path} is being created by another process`);
    } else if (isAlive(owner)) {
      throw locked(`held by pid ${owner.pid} on ${owner.hostname}; if no server runs, delete ${path}`);
    }
    unlinkQuietly(path); // stale: its owner is gone
  }
  throw locked(`${path} keeps reappearing`);
}

function readLock(path: string): LockOwner | undefined {
  try {
    const o = JSON.parse(readFileSync(path, "utf8")) as Partial<LockOwner>;
    if (typeof o.pid === "number" && typeof o.hostname === "string")
      return { pid: o.pid, hostname: o.hostname };
  } catch {
    // missing or half-written
  }
  return undefined;
}

function isAlive(owner: LockOwner): boolean {
  if (owner.hostname !== hostname()) return true; // cannot tell for another machine: assume alive
  // Our own pid but not in `held`: a previous incarnation (containers reuse pid 1).
  if (owner.pid === process.pid) return false;
  try {
    process.kill(owner.pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  // kill(pid, 0) also succeeds on a zombie: a holder killed with -9 and not yet reaped is gone.
  return !isZombie(owner.pid);
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) S ...": the state follows the last ")" (comm may contain spaces and parentheses).
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
  } catch {
    return false; // no /proc (not Linux): trust kill(0)
  }
}

function statMtime(path: string): number | undefined {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
