/**
 * kill -9 during writes: a child process commits txns as fast as it can and
 * prints each one after its promise resolved; we SIGKILL it at a random
 * point, several times on the same file, then check that every acknowledged
 * write survived, that no txn was torn, and that the file is intact.
 *
 * Needs the compiled store (`npx tsc -b packages/controlplane`).
 */

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterAll, expect, it } from "vitest";
import { SqliteStore } from "./sqlite.js";

const CHILD = fileURLToPath(new URL("./testdata/crash-writer.mjs", import.meta.url));
const DIST = new URL("../../dist/store/sqlite.js", import.meta.url);
const KILLS = 5;

const dir = mkdtempSync(join(tmpdir(), "weft-crash-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function valueFor(i: number): string {
  return `${i}:${"x".repeat((i * 7919) % 20_000)}`;
}

/** Runs the writer from `first` and kills it after `target` acknowledgements; returns the acknowledged indexes. */
function runAndKill(path: string, first: number, target: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, DIST.href, path, String(first)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const acked: number[] = [];
    let partial = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000); // bound each round in time
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      for (const l of lines) acked.push(Number(l));
      if (acked.length >= target) child.kill("SIGKILL");
    });
    child.stderr.on("data", (c) => {
      stderr += String(c);
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (signal !== "SIGKILL") reject(new Error(`writer exited ${code} ${signal}: ${stderr}`));
      else if (acked.length === 0) reject(new Error(`writer acknowledged nothing: ${stderr}`));
      else resolve(acked);
    });
  });
}

it("loses no acknowledged write and never corrupts across repeated kill -9", async () => {
  expect(existsSync(DIST), "build first: npx tsc -b packages/controlplane").toBe(true);
  const path = join(dir, "store.db");
  const acked: number[] = [];
  let next = 0;
  for (let round = 0; round < KILLS; round++) {
    const target = 20 + Math.floor(Math.random() * 300);
    const got = await runAndKill(path, next, target);
    acked.push(...got);
    next = Math.max(...got) + 1;
  }

  const store = await SqliteStore.open(path); // runs quick_check and the format checks
  let lost = 0;
  for (const i of acked) {
    const kv = await store.get(`/crash/${i}`);
    if (kv?.value !== valueFor(i)) lost++;
  }
  const crash = (await store.range("/crash/")).kvs;
  const mirror = (await store.range("/mirror/")).kvs;
  // Atomicity: both keys of every txn, or neither (unacknowledged txns may have landed).
  expect(mirror.map((kv) => kv.key.slice("/mirror/".length))).toEqual(
    crash.map((kv) => kv.key.slice("/crash/".length)),
  );
  const revision = await store.revision();
  expect(revision).toBe(Math.max(...crash.map((kv) => kv.modRevision)));
  expect(revision).toBeGreaterThanOrEqual(acked.length);
  for (const kv of crash) expect(kv.value).toBe(valueFor(Number(kv.key.slice("/crash/".length))));
  await store.close();

  const db = new Database(path, { readonly: true });
  expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
  db.close();

  console.log(`kill -9 during ${acked.length} writes: ${lost} acknowledged writes lost (${KILLS} kills)`);
  expect(lost).toBe(0);
});
