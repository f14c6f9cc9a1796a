/**
 * Runs the compiled `weft` executable as real processes for end-to-end
 * tests: `startWeftServer` spawns `weft server --listen 127.0.0.1:0` in its
 * own process group, waits for the `weft server listening on <url>` line
 * (never a sleep) and the bootstrap token, and registers the process so
 * `killAll()` (call it in afterAll) leaves nothing behind. `runWeft` runs
 * one CLI command to completion with a clean environment.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const WEFT_BIN = join(REPO, "packages/cli/dist/bin/weft.js");

function assertBuilt(): void {
  if (!existsSync(WEFT_BIN)) {
    throw new Error(`${WEFT_BIN} is missing: build first with \`npx tsc -b\` (npm test does it)`);
  }
}

const live = new Set<ChildProcess>();
const tmpDirs = new Set<string>();

/** A fresh temporary directory, removed by `cleanup()`. */
export function tempDir(prefix = "weft-e2e-"): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tmpDirs.add(d);
  return d;
}

/** The environment for child processes: no WEFT_* from the developer's shell, no colours. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("WEFT_") && k !== "NODE_OPTIONS") env[k] = v;
  }
  return { ...env, NO_COLOR: "1", ...extra };
}

/** Signals the process group of a child started with `detached: true` (the child alone if that fails). */
export function killGroup(p: ChildProcess, signal: NodeJS.Signals): void {
  if (p.pid === undefined || p.exitCode !== null || p.signalCode !== null) return;
  try {
    process.kill(-p.pid, signal);
  } catch {
    try {
      p.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** Resolves with how the child exited (at once if it already has). */
export function exited(p: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (p.exitCode !== null || p.signalCode !== null) {
    return Promise.resolve({ code: p.exitCode, signal: p.signalCode });
  }
  return new Promise((done) => p.once("exit", (code, signal) => done({ code, signal })));
}

export interface WeftServer {
  url: string;
  /** host:port, for --addr. */
  addr: string;
  port: number;
  /** The bootstrap management token (first start of a data dir only). */
  token: string | undefined;
  pid: number;
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** SIGKILL to the whole process group; resolves once it is gone. */
  kill9(): Promise<void>;
  /** SIGTERM and wait for a clean exit (SIGKILL after `timeoutMs`). Resolves to the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
}

export interface StartOptions {
  /** `--data-dir`; default: a fresh temp dir. */
  dataDir?: string;
  /** `--store` (e.g. "memory"). */
  store?: string;
  dev?: boolean;
  /** Wait for the bootstrap token lines (true for a fresh data dir or a memory store). */
  expectToken?: boolean;
  cwd?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

export async function startWeftServer(opts: StartOptions = {}): Promise<WeftServer> {
  assertBuilt();
  const dataDir = opts.dataDir ?? join(tempDir(), "data");
  const args = [WEFT_BIN, "server", "--listen", "127.0.0.1:0", "--data-dir", dataDir];
  if (opts.store) args.push("--store", opts.store);
  if (opts.dev) args.push("--dev");
  const proc = spawn(process.execPath, args, {
    cwd: opts.cwd ?? REPO,
    env: cleanEnv(opts.env),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group, so kill(-pid) takes any children too
  });
  live.add(proc);
  proc.once("exit", () => live.delete(proc));
  let out = "";
  let err = "";
  proc.stdout!.setEncoding("utf8");
  proc.stderr!.setEncoding("utf8");
  proc.stderr!.on("data", (c: string) => {
    err += c;
  });

  const expectToken = opts.expectToken ?? true;
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const { url, token } = await new Promise<{ url: string; token: string | undefined }>((resolveP, reject) => {
    const timer = setTimeout(() => {
      killGroup(proc, "SIGKILL");
      reject(
        new Error(
          `weft server did not print its URL within ${timeoutMs} ms\nstdout:\n${out}\nstderr:\n${err}`,
        ),
      );
    }, timeoutMs);
    const check = () => {
      const u = /weft server listening on (\S+)/.exec(out);
      const t = /bootstrap management token: (\S+)/.exec(out);
      if (u && (!expectToken || t)) {
        clearTimeout(timer);
        proc.off("exit", onExit);
        resolveP({ url: u[1] as string, token: t?.[1] });
      }
    };
    const onExit = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      reject(
        new Error(
          `weft server exited (${code ?? signal}) before listening\nstdout:\n${out}\nstderr:\n${err}`,
        ),
      );
    };
    proc.once("exit", onExit);
    proc.stdout!.on("data", (c: string) => {
      out += c;
      check();
    });
  });
  const u = new URL(url);
  return {
    url: url.replace(/\/+$/, ""),
    addr: u.host,
    port: Number(u.port),
    token,
    pid: proc.pid!,
    proc,
    stdout: () => out,
    stderr: () => err,
    async kill9() {
      killGroup(proc, "SIGKILL");
      await exited(proc);
    },
    async stop(stopTimeoutMs = 10_000) {
      killGroup(proc, "SIGTERM");
      const t = setTimeout(() => killGroup(proc, "SIGKILL"), stopTimeoutMs);
      const r = await exited(proc);
      clearTimeout(t);
      return r.code;
    },
  };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `weft ARGS...` to completion. `env` is added to a clean environment (no WEFT_* inherited). */
export function runWeft(
  args: readonly string[],
  opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunResult> {
  assertBuilt();
  const proc = spawn(process.execPath, [WEFT_BIN, ...args], {
    cwd: opts.cwd ?? tempDir("weft-cwd-"),
    env: cleanEnv(opts.env),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  live.add(proc);
  let stdout = "";
  let stderr = "";
  proc.stdout!.setEncoding("utf8").on("data", (c: string) => {
    stdout += c;
  });
  proc.stderr!.setEncoding("utf8").on("data", (c: string) => {
    stderr += c;
  });
  const timeoutMs = opts.timeoutMs ?? 15_000;
  return new Promise((done, fail) => {
    const timer = setTimeout(() => {
      killGroup(proc, "SIGKILL");
      fail(new Error(`weft ${args.join(" ")} did not finish within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    proc.once("error", (e) => {
      clearTimeout(timer);
      fail(e);
    });
    proc.once("close", (code) => {
      clearTimeout(timer);
      live.delete(proc);
      done({ code, stdout, stderr });
    });
  });
}

/** Kills every process this module started and removes the temp dirs. For afterAll/afterEach. */
export async function cleanup(): Promise<void> {
  const procs = [...live];
  for (const p of procs) killGroup(p, "SIGKILL");
  await Promise.all(procs.map(exited));
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
  tmpDirs.clear();
}
