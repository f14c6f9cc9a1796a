import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { describeExit, ManagedProcess, type SpawnSpec } from "./managed-process.js";
import type { ExitRecord } from "./state.js";

const dir = mkdtempSync(join(tmpdir(), "weft-managed-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const started: ManagedProcess[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop(1_000)));
});

function node(script: string): () => Promise<SpawnSpec> {
  return async () => ({ command: process.execPath, args: ["-e", script], cwd: dir, env: process.env });
}

function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const t = setInterval(() => {
      if (cond()) {
        clearInterval(t);
        resolve();
      } else if (Date.now() > deadline) {
        clearInterval(t);
        reject(new Error("timed out"));
      }
    }, 20);
  });
}

describe("ManagedProcess", () => {
  it("restarts a process that dies, with backoff, keeping its exit and last output", async () => {
    const exits: { exit: ExitRecord; restartIn: number | undefined }[] = [];
    const log = join(dir, "crash.log");
    const p = new ManagedProcess({
      name: "crash",
      log,
      prepare: node("console.log('hello'); console.error('boom'); process.exit(3)"),
      onExit: (_p, exit, restartIn) => exits.push({ exit, restartIn }),
      backoff: { baseMs: 50, maxMs: 200 },
    });
    started.push(p);
    await p.start();
    await until(() => p.record.restarts >= 2);
    expect(exits[0]?.exit).toMatchObject({ code: 3, signal: null, output: ["hello", "boom"] });
    expect(exits[0]?.restartIn).toBeGreaterThanOrEqual(25);
    expect(exits[0]?.restartIn).toBeLessThanOrEqual(50);
    expect(p.record.lastExit?.code).toBe(3);
    const text = readFileSync(log, "utf8");
    expect(text).toMatch(/--- weft up: start 1 of crash at .*: .*node -e/);
    expect(text).toMatch(/--- weft up: crash exited with code 3/);
    expect(text).toMatch(/--- weft up: start 3 of crash/);
  });

  it("stop() sends SIGTERM to the group and resolves once it exited; no restart follows", async () => {
    const exits: (number | undefined)[] = [];
    const p = new ManagedProcess({
      name: "sleeper",
      log: join(dir, "sleeper.log"),
      prepare: node(
        "process.on('SIGTERM', () => { console.log('bye'); process.exit(0); }); console.log('up'); setInterval(() => {}, 1000)",
      ),
      onExit: (_p, _e, restartIn) => exits.push(restartIn),
    });
    await p.start();
    const pid = p.record.pid as number;
    expect(p.alive).toBe(true);
    // Its handler is installed once it says so (a fixed sleep was not always enough on a loaded machine).
    await until(() => readFileSync(join(dir, "sleeper.log"), "utf8").includes("up\n"));
    await p.stop(5_000);
    expect(p.alive).toBe(false);
    expect(p.record).toMatchObject({
      status: "stopped",
      pid: null,
      lastExit: { code: 0, output: ["up", "bye"] },
    });
    expect(exits).toEqual([undefined]);
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it("a process ignoring SIGTERM is killed after the grace period", async () => {
    const p = new ManagedProcess({
      name: "stubborn",
      log: join(dir, "stubborn.log"),
      prepare: node("process.on('SIGTERM', () => {}); console.log('up'); setInterval(() => {}, 1000)"),
    });
    await p.start();
    await until(() => readFileSync(join(dir, "stubborn.log"), "utf8").includes("up\n"));
    const t0 = Date.now();
    await p.stop(300);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(p.record.lastExit?.signal).toBe("SIGKILL");
  });

  it("a command that cannot be started is recorded and retried", async () => {
    const exits: string[] = [];
    const p = new ManagedProcess({
      name: "missing",
      log: join(dir, "missing.log"),
      prepare: async () => ({ command: join(dir, "no-such-program"), args: [], cwd: dir, env: process.env }),
      onExit: (q, e) => exits.push(describeExit(e, q.spawnError)),
      backoff: { baseMs: 20, maxMs: 40 },
    });
    started.push(p);
    await p.start();
    await until(() => exits.length >= 2);
    expect(exits[0]).toMatch(/^could not start: spawn .*no-such-program ENOENT$/);
  });
});
