/**
 * The embedded durable backend: one SQLite file (better-sqlite3), WAL mode,
 * synchronous=FULL. See README.md in this folder for the durability argument.
 *
 * better-sqlite3 is synchronous, and that is deliberate: the control plane is
 * the only writer, a commit is one WAL append plus one fsync (well under a
 * millisecond on an SSD), and running each operation to completion inside its
 * promise gives a total order of writes and watch events for free.
 *
 * Layout (MVCC-lite): `kv` holds the current state, `events` the history of
 * the last N revisions for watch replay, `meta` the revision, the compaction
 * point and the format version. The file carries application_id 'WEFT' and
 * user_version = format, so a foreign or future file is refused, not reused.
 */

import { closeSync, fsyncSync, linkSync, openSync, readSync, statSync, unlinkSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { isWeftError, weftError } from "@weft/core";
import Database from "better-sqlite3";
import { BaseStore, type BaseStoreOptions } from "./base-store.js";
import { compareKeys, prefixEnd } from "./keys.js";
import type { KeyValue, WatchBatch, WatchEvent } from "./store.js";
import type { Commit } from "./txn.js";

/** 'WEFT' in ASCII: marks our files in the SQLite header. */
export const SQLITE_APPLICATION_ID = 0x57454654;
/** Bumped on incompatible schema changes; a newer file is refused. */
export const SQLITE_FORMAT_VERSION = 1;

const SCHEMA = `
  CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
  CREATE TABLE kv (
    key TEXT PRIMARY KEY, value TEXT NOT NULL,
    create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL, version INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE events (
    rev INTEGER NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL CHECK (type IN ('put', 'delete')),
    key TEXT NOT NULL, value TEXT, create_rev INTEGER, version INTEGER,
    prev_value TEXT, prev_create_rev INTEGER, prev_mod_rev INTEGER, prev_version INTEGER,
    PRIMARY KEY (rev, seq)
  ) STRICT;
  INSERT INTO meta (name, value) VALUES ('format', ${SQLITE_FORMAT_VERSION}), ('revision', 0), ('compacted', 0);
`;

export interface SqliteStoreOptions extends BaseStoreOptions {
  /**
   * Cap on database pages (PRAGMA max_page_count): a write that would grow
   * the file past it fails with WEFT_ERR_STORE_FAILED, exactly as a full disk
   * does. A quota, and how the tests simulate a full disk.
   */
  maxPageCount?: number;
  /** Runs after the database is closed (the data dir releases its lock here). */
  onClose?: () => void;
}

interface EventRow {
  rev: number;
  type: "put" | "delete";
  key: string;
  value: string | null;
  create_rev: number | null;
  version: number | null;
  prev_value: string | null;
  prev_create_rev: number | null;
  prev_mod_rev: number | null;
  prev_version: number | null;
}

const KV_COLUMNS = "key, value, create_rev AS createRevision, mod_rev AS modRevision, version";
const SQLITE_MAGIC = "SQLite format 3\0";

export class SqliteStore extends BaseStore {
  readonly backend = "sqlite";
  /** Set after an I/O error: the on-disk state is unknown until a restart recovers from the WAL. */
  private broken: string | undefined;
  private readonly scans = new Map<string, Database.Statement>();
  private readonly stmt;
  private readonly commitTx;

  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
    private readonly opts: SqliteStoreOptions,
  ) {
    super(opts);
    const meta = (name: string) =>
      (db.prepare("SELECT value FROM meta WHERE name = ?").get(name) as { value: number } | undefined)?.value;
    this.rev = meta("revision") ?? 0;
    this.compacted = meta("compacted") ?? 0;
    this.stmt = {
      get: db.prepare(`SELECT ${KV_COLUMNS} FROM kv WHERE key = ?`),
      upsert: db.prepare(
        `INSERT INTO kv (key, value, create_rev, mod_rev, version) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, create_rev = excluded.create_rev,
           mod_rev = excluded.mod_rev, version = excluded.version`,
      ),
      remove: db.prepare("DELETE FROM kv WHERE key = ?"),
      event: db.prepare(
        `INSERT INTO events (rev, seq, type, key, value, create_rev, version,
           prev_value, prev_create_rev, prev_mod_rev, prev_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      history: db.prepare("SELECT * FROM events WHERE rev > ? AND rev <= ? ORDER BY rev, seq"),
      setMeta: db.prepare("UPDATE meta SET value = ? WHERE name = ?"),
      trim: db.prepare("DELETE FROM events WHERE rev <= ?"),
    };
    this.commitTx = db.transaction((c: Commit, compactTo: number | undefined) => {
      for (const kv of c.puts)
        this.stmt.upsert.run(kv.key, kv.value, kv.createRevision, kv.modRevision, kv.version);
      for (const key of c.deletes) this.stmt.remove.run(key);
      c.batch.events.forEach((e, seq) => {
        const p = e.prev;
        const [key, value, create, version] =
          e.type === "put"
            ? [e.kv.key, e.kv.value, e.kv.createRevision, e.kv.version]
            : [e.key, null, null, null];
        this.stmt.event.run(
          c.revision,
          seq,
          e.type,
          key,
          value,
          create,
          version,
          p?.value ?? null,
          p?.createRevision ?? null,
          p?.modRevision ?? null,
          p?.version ?? null,
        );
      });
      this.stmt.setMeta.run(c.revision, "revision");
      if (compactTo !== undefined) this.trim(compactTo);
    });
  }

  /**
   * Opens (creating it if absent) the store at `path`. Refuses with
   * WEFT_ERR_STORE_CORRUPT anything that is not an intact Weft store, with
   * WEFT_ERR_STORE_LOCKED a file another process has open. Never modifies a
   * file it refuses.
   */
  static async open(path: string, opts: SqliteStoreOptions = {}): Promise<SqliteStore> {
    const abs = resolve(path);
    const corrupt = (detail: string, cause?: unknown) =>
      weftError("WEFT_ERR_STORE_CORRUPT", { path: abs, detail }, { cause });
    let size: number;
    try {
      const st = statSync(abs);
      if (!st.isFile()) throw corrupt("not a regular file");
      size = st.size;
    } catch (e) {
      if (isWeftError(e)) throw e;
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw corrupt(`cannot stat: ${String(e)}`, e);
      createFresh(abs);
      size = -1;
    }
    // Checked before SQLite sees the file: SQLite would happily treat an
    // empty file as a new database, and we create ours atomically, so an
    // empty file is damage (or someone else's), never a fresh store.
    if (size === 0) throw corrupt("the file is empty (0 bytes)");
    if (size > 0 && readHeader(abs) !== SQLITE_MAGIC)
      throw corrupt("not a SQLite database (bad file header)");

    let db: Database.Database | undefined;
    try {
      db = new Database(abs, { fileMustExist: true, timeout: 100 });
      // Before any read: hold the file exclusively for the life of the store
      // (and skip the shared-memory index). The OS drops the lock if we die.
      db.pragma("locking_mode = EXCLUSIVE");
      verify(db, corrupt);
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = FULL");
      db.pragma("fullfsync = ON"); // macOS: F_FULLFSYNC; no-op elsewhere
      db.pragma("cell_size_check = ON");
      db.pragma("trusted_schema = OFF");
      if (opts.maxPageCount !== undefined) db.pragma(`max_page_count = ${Math.floor(opts.maxPageCount)}`);
      db.exec("BEGIN EXCLUSIVE; COMMIT"); // take the write lock now, not on the first put
      return new SqliteStore(db, abs, opts);
    } catch (e) {
      db?.close();
      if (isWeftError(e)) throw e;
      const code = sqliteCode(e);
      if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED") {
        throw weftError(
          "WEFT_ERR_STORE_LOCKED",
          { path: abs, detail: "the database file is locked" },
          { cause: e },
        );
      }
      throw corrupt(code ? `${code}: ${(e as Error).message}` : String(e), e);
    }
  }

  getSync(key: string): KeyValue | undefined {
    return this.stmt.get.get(key) as KeyValue | undefined;
  }

  scan(prefix: string, startAfter?: string, limit?: number): readonly KeyValue[] {
    const hi = prefixEnd(prefix);
    const after = startAfter !== undefined && compareKeys(startAfter, prefix) >= 0 ? startAfter : undefined;
    const shape = `${hi === undefined ? "" : "h"}${after === undefined ? "" : "a"}${limit === undefined ? "" : "l"}`;
    let stmt = this.scans.get(shape);
    if (!stmt) {
      const where = ["key >= @lo"];
      if (hi !== undefined) where.push("key < @hi");
      if (after !== undefined) where.push("key > @after");
      const sql = `SELECT ${KV_COLUMNS} FROM kv WHERE ${where.join(" AND ")} ORDER BY key${limit === undefined ? "" : " LIMIT @limit"}`;
      stmt = this.db.prepare(sql);
      this.scans.set(shape, stmt);
    }
    const params: Record<string, string | number> = { lo: prefix };
    if (hi !== undefined) params.hi = hi;
    if (after !== undefined) params.after = after;
    if (limit !== undefined) params.limit = limit;
    return stmt.all(params) as KeyValue[];
  }

  readHistory(after: number, maxRevisions: number): readonly WatchBatch[] {
    const rows = this.stmt.history.all(after, after + maxRevisions) as EventRow[];
    const out: { revision: number; events: WatchEvent[] }[] = [];
    for (const r of rows) {
      const prev: KeyValue | undefined =
        r.prev_version === null
          ? undefined
          : {
              key: r.key,
              value: r.prev_value as string,
              createRevision: r.prev_create_rev as number,
              modRevision: r.prev_mod_rev as number,
              version: r.prev_version,
            };
      const event: WatchEvent =
        r.type === "put"
          ? {
              type: "put",
              kv: {
                key: r.key,
                value: r.value as string,
                createRevision: r.create_rev as number,
                modRevision: r.rev,
                version: r.version as number,
              },
              prev,
            }
          : { type: "delete", key: r.key, revision: r.rev, prev };
      const last = out.at(-1);
      if (last?.revision === r.rev) last.events.push(event);
      else out.push({ revision: r.rev, events: [event] });
    }
    return out;
  }

  protected override ensureOpen(): void {
    super.ensureOpen();
    if (this.broken !== undefined) {
      throw weftError("WEFT_ERR_STORE_FAILED", {
        detail: `store is unusable after an I/O error (${this.broken}); restart the server to recover`,
      });
    }
  }

  protected applyCommit(c: Commit, compactTo: number | undefined): void {
    this.commitTx(c, compactTo);
  }

  protected applyCompact(revision: number): void {
    this.db.transaction(() => this.trim(revision))();
  }

  protected override writeFailed(e: unknown): Error {
    const code = sqliteCode(e);
    // After a failed fsync or write the kernel's and SQLite's views of the
    // file may differ ("fsyncgate"); the only safe recovery is to reopen and
    // let SQLite replay the WAL. A full disk rolls back cleanly instead.
    if (code?.startsWith("SQLITE_IOERR") || code === "SQLITE_CORRUPT") this.broken = code;
    const detail = code === "SQLITE_FULL" ? "the disk (or the store's page quota) is full" : String(e);
    return weftError("WEFT_ERR_STORE_FAILED", { detail }, { cause: e });
  }

  protected release(): void {
    try {
      this.db.close();
    } finally {
      this.opts.onClose?.();
    }
  }

  private trim(revision: number): void {
    this.stmt.trim.run(revision);
    this.stmt.setMeta.run(revision, "compacted");
  }
}

function sqliteCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown })?.code;
  return typeof code === "string" && code.startsWith("SQLITE_") ? code : undefined;
}

function readHeader(path: string): string {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(16);
    const n = readSync(fd, buf, 0, 16, 0);
    return buf.subarray(0, n).toString("latin1");
  } finally {
    closeSync(fd);
  }
}

/** Read-only checks; throws `corrupt(...)` on the first problem. */
function verify(db: Database.Database, corrupt: (detail: string) => Error): void {
  const appId = db.pragma("application_id", { simple: true }) as number;
  if (appId !== SQLITE_APPLICATION_ID) {
    throw corrupt(`not a Weft store (SQLite application_id is ${appId}, expected ${SQLITE_APPLICATION_ID})`);
  }
  const format = db.pragma("user_version", { simple: true }) as number;
  if (format > SQLITE_FORMAT_VERSION) {
    throw corrupt(
      `written by a newer Weft (format ${format}; this one reads format ${SQLITE_FORMAT_VERSION})`,
    );
  }
  if (format !== SQLITE_FORMAT_VERSION) throw corrupt(`unknown store format ${format}`);
  const problems = (db.pragma("quick_check(5)") as { quick_check: string }[]).map((r) =>
    r.quick_check.replace(/\s+/g, " "),
  );
  if (problems.join() !== "ok") throw corrupt(`integrity check failed: ${problems.join("; ")}`);
  const tables = new Set(
    (db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").all() as { name: string }[]).map(
      (r) => r.name,
    ),
  );
  for (const t of ["meta", "kv", "events"]) if (!tables.has(t)) throw corrupt(`table "${t}" is missing`);
  const meta = new Map(
    (db.prepare("SELECT name, value FROM meta").all() as { name: string; value: number }[]).map((r) => [
      r.name,
      r.value,
    ]),
  );
  if (meta.get("format") !== SQLITE_FORMAT_VERSION || !meta.has("revision") || !meta.has("compacted")) {
    throw corrupt("the meta table is incomplete");
  }
  const maxRev = (db.prepare("SELECT max(rev) AS m FROM events").get() as { m: number | null }).m ?? 0;
  if (maxRev > (meta.get("revision") as number)) throw corrupt("history is ahead of the recorded revision");
}

/**
 * Creates a new store file atomically: built and fsynced under a temporary
 * name, then hard-linked into place (fails if something appeared meanwhile)
 * and the directory fsynced. A crash leaves either no file or a complete one.
 */
function createFresh(abs: string): void {
  const tmp = `${abs}.init-${process.pid}-${Date.now()}`;
  try {
    const db = new Database(tmp);
    try {
      db.pragma(`application_id = ${SQLITE_APPLICATION_ID}`);
      db.pragma(`user_version = ${SQLITE_FORMAT_VERSION}`);
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = FULL");
      db.transaction(() => db.exec(SCHEMA))();
    } finally {
      db.close(); // checkpoints the WAL into the file and removes it
    }
    fsyncPath(tmp, "r+");
    linkSync(tmp, abs);
    fsyncPath(dirname(abs), "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return; // someone else created it: open theirs
    throw weftError("WEFT_ERR_STORE_FAILED", { detail: `cannot create ${abs}: ${String(e)}` }, { cause: e });
  } finally {
    for (const f of [tmp, `${tmp}-wal`, `${tmp}-shm`]) {
      try {
        unlinkSync(f);
      } catch {
        // already gone
      }
    }
  }
}

export function fsyncPath(path: string, flags: "r" | "r+"): void {
  const fd = openSync(path, flags);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
