/**
 * `weft snapshot save FILE` / `weft snapshot restore FILE`: the whole store
 * to a file and back, to move between backends (embedded SQLite <-> etcd)
 * and for backups.
 *
 * Data flow: save: --store -> paged range of every key, all pages at one
 * store revision (re-read when a write slipped in between) -> FILE (0600:
 * it holds the CA keys) written beside and renamed. restore: FILE parsed
 * and checked whole (header, every line, the key count) -> target store
 * empty, or --force clears it -> puts in bounded transactions.
 *
 * The store is opened directly (like `weft server --store`): an SQLite data
 * dir must not be in use by a running server (its lock says so); etcd may be
 * live, but restore into a live cluster replaces state under the replicas.
 *
 * File: JSON lines. Line 1 is the header
 *   {"weftSnapshot":1,"backend":"sqlite","revision":42,"keys":17,"createdAt":"..."}
 * then one {"k": key, "v": value} per key in key order. Keys under /ha/
 * (per-replica heartbeat digests) are runtime state and are left out.
 */
import { randomBytes } from "node:crypto";
import { chmod, open, readFile, rename, rm } from "node:fs/promises";
import { resolve } from "node:path";
import type { Store } from "@weft/controlplane";
import { weftError } from "@weft/core";
import type { Command } from "commander";
import { DEFAULT_DATA_DIR } from "../client-options.js";
import type { Io } from "../io.js";
import { plural } from "../output.js";

export const SNAPSHOT_FORMAT = 1;
/** Runtime state, never saved nor counted as content. */
export const SNAPSHOT_SKIPPED_PREFIXES: readonly string[] = ["/ha/"];
const PAGE = 1_000;
/** Bounds of one restore transaction (etcd allows 128 ops and 1.5 MiB per request by default). */
const TXN_OPS = 100;
const TXN_BYTES = 512 * 1024;

export interface SnapshotHeader {
  weftSnapshot: typeof SNAPSHOT_FORMAT;
  /** Backend the snapshot was taken from ("memory", "sqlite", "etcd"). */
  backend: string;
  /** Store revision all keys were read at. */
  revision: number;
  keys: number;
  createdAt: string;
}

export interface SnapshotEntry {
  k: string;
  v: string;
}

const skipped = (key: string) => SNAPSHOT_SKIPPED_PREFIXES.some((p) => key.startsWith(p));

/** Reads every key of `store` at one revision. */
export async function readAll(store: Store): Promise<{ revision: number; entries: SnapshotEntry[] }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const entries: SnapshotEntry[] = [];
    let revision: number | undefined;
    let startAfter: string | undefined;
    let consistent = true;
    for (;;) {
      const page = await store.range("", {
        limit: PAGE,
        ...(startAfter !== undefined ? { startAfter } : {}),
      });
      if (revision === undefined) revision = page.revision;
      else if (page.revision !== revision) {
        consistent = false; // written meanwhile: read again from the start
        break;
      }
      for (const kv of page.kvs) if (!skipped(kv.key)) entries.push({ k: kv.key, v: kv.value });
      const last = page.kvs.at(-1);
      if (!page.more || !last) break;
      startAfter = last.key;
    }
    if (consistent) return { revision: revision ?? 0, entries };
  }
  throw weftError("WEFT_ERR_CONFLICT", {
    detail: "the store kept changing while it was read; retry (or stop the writers)",
  });
}

/** The snapshot file's text: header line, then one line per key. */
export async function snapshotText(
  store: Store,
  now = new Date(),
): Promise<{ header: SnapshotHeader; text: string }> {
  const { revision, entries } = await readAll(store);
  const header: SnapshotHeader = {
    weftSnapshot: SNAPSHOT_FORMAT,
    backend: store.backend,
    revision,
    keys: entries.length,
    createdAt: now.toISOString(),
  };
  const lines = [JSON.stringify(header), ...entries.map((e) => JSON.stringify({ k: e.k, v: e.v }))];
  return { header, text: `${lines.join("\n")}\n` };
}

/** Parses and checks a whole snapshot file before anything is written. */
export function parseSnapshot(
  text: string,
  file = "snapshot",
): { header: SnapshotHeader; entries: SnapshotEntry[] } {
  const bad = (detail: string) => weftError("WEFT_ERR_VALIDATION", { detail: `${file}: ${detail}` });
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  let header: SnapshotHeader;
  try {
    header = JSON.parse(lines[0] ?? "") as SnapshotHeader;
  } catch {
    throw bad("line 1 is not a snapshot header (JSON)");
  }
  if (header === null || typeof header !== "object" || header.weftSnapshot !== SNAPSHOT_FORMAT) {
    throw bad(`line 1: not a weft snapshot of format ${SNAPSHOT_FORMAT}`);
  }
  if (!Number.isInteger(header.keys) || header.keys < 0) throw bad("line 1: header has no valid key count");
  const entries: SnapshotEntry[] = [];
  const seen = new Set<string>();
  for (let i = 1; i < lines.length; i++) {
    let e: SnapshotEntry;
    try {
      e = JSON.parse(lines[i] as string) as SnapshotEntry;
    } catch {
      throw bad(`line ${i + 1} is not JSON`);
    }
    if (
      e === null ||
      typeof e !== "object" ||
      typeof e.k !== "string" ||
      typeof e.v !== "string" ||
      !e.k.startsWith("/")
    ) {
      throw bad(`line ${i + 1}: expected {"k": "/key", "v": "value"}`);
    }
    if (seen.has(e.k)) throw bad(`line ${i + 1}: key "${e.k.slice(0, 100)}" appears twice`);
    seen.add(e.k);
    entries.push({ k: e.k, v: e.v });
  }
  if (entries.length !== header.keys) {
    throw bad(`the header promises ${header.keys} keys, the file holds ${entries.length} (truncated?)`);
  }
  return { header, entries };
}

/** Writes `entries` into `store`: refused when it holds anything unless `force` (which clears it first). */
export async function restoreEntries(
  store: Store,
  entries: readonly SnapshotEntry[],
  opts: { force?: boolean } = {},
): Promise<{ revision: number }> {
  const existing = await readAll(store);
  if (existing.entries.length > 0 && !opts.force) {
    throw weftError("WEFT_ERR_CONFLICT", {
      detail: `the target store holds ${plural(existing.entries.length, "key")} (a ${store.backend} store at revision ${existing.revision}); restore into an empty store, or pass --force to replace its contents`,
    });
  }
  let revision = existing.revision;
  if (opts.force && (existing.entries.length > 0 || existing.revision > 0)) {
    revision = (await store.deletePrefix("")).revision || revision;
  }
  let batch: { type: "put"; key: string; value: string }[] = [];
  let bytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const r = await store.txn({ compare: [], success: batch });
    revision = r.revision;
    batch = [];
    bytes = 0;
  };
  for (const e of entries) {
    const size = Buffer.byteLength(e.k) + Buffer.byteLength(e.v);
    if (batch.length >= TXN_OPS || (batch.length > 0 && bytes + size > TXN_BYTES)) await flush();
    batch.push({ type: "put", key: e.k, value: e.v });
    bytes += size;
  }
  await flush();
  return { revision };
}

const STORE_URL = /^[a-z][a-z0-9+.-]+:/i;

function storeSpecOf(spec: string, cwd: string): string {
  const s = spec.trim();
  return s === "memory" || STORE_URL.test(s) ? s : resolve(cwd, s);
}

async function withStore<T>(spec: string, io: Io, fn: (store: Store) => Promise<T>): Promise<T> {
  // Loaded here: other commands start without the control plane's dependencies.
  const { openStore } = await import("@weft/controlplane");
  const store = await openStore(storeSpecOf(spec, io.cwd));
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Writes `text` to `file` (mode 0600) through a temporary file and a rename: never a half-written snapshot. */
async function writeFileAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  const fh = await open(tmp, "wx", 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await chmod(tmp, 0o600);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

const STORE_HELP = `store: a data directory, sqlite:///path.db or etcd://host:port[,...][?prefix=...] (default: ${DEFAULT_DATA_DIR})`;

export function registerSnapshotCommands(program: Command, io: Io): void {
  const snap = program
    .command("snapshot")
    .summary("save the whole store to a file, or restore it (backups, SQLite <-> etcd)")
    .description(
      "Save every key of a store to a JSON-lines file, or restore such a file into an empty store.\n" +
        "The store is opened directly: stop the server of an SQLite data dir first; etcd may be live.\n" +
        "The file holds the CA private keys and ACL token hashes: it is written with mode 0600.",
    );
  snap
    .command("save")
    .argument("<file>", "where to write the snapshot")
    .option("--store <spec>", STORE_HELP, DEFAULT_DATA_DIR)
    .description("Write every key of the store, read at one revision, to FILE.")
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft snapshot save backup.jsonl\n  $ weft snapshot save backup.jsonl --store 'etcd://10.0.0.1:2379?prefix=/weft/'\n",
    )
    .action(async (file: string, opts: { store: string }) => {
      const path = resolve(io.cwd, file);
      const { header, text } = await withStore(opts.store, io, (store) => snapshotText(store));
      await writeFileAtomic(path, text);
      io.out.write(
        `saved ${plural(header.keys, "key")} from the ${header.backend} store (revision ${header.revision}) to ${path}\n`,
      );
    });
  snap
    .command("restore")
    .argument("<file>", "a snapshot written by weft snapshot save")
    .option("--store <spec>", STORE_HELP, DEFAULT_DATA_DIR)
    .option("--force", "replace the contents of a non-empty target store")
    .description("Write the keys of FILE into the store, which must be empty unless --force.")
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft snapshot restore backup.jsonl --store 'etcd://10.0.0.1:2379?prefix=/weft/'\n  $ weft snapshot restore backup.jsonl --store .weft/server --force\n",
    )
    .action(async (file: string, opts: { store: string; force?: boolean }) => {
      const path = resolve(io.cwd, file);
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (e) {
        throw weftError("WEFT_ERR_USAGE", { detail: `cannot read ${path}: ${(e as Error).message}` });
      }
      const { header, entries } = parseSnapshot(text, path);
      const { revision, backend } = await withStore(opts.store, io, async (store) => ({
        ...(await restoreEntries(store, entries, { force: opts.force === true })),
        backend: store.backend,
      }));
      io.out.write(
        `restored ${plural(entries.length, "key")} (saved from ${header.backend} at revision ${header.revision}, ${header.createdAt}) into the ${backend} store, now at revision ${revision}\n`,
      );
    });
}
