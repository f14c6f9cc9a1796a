/**
 * One process `weft up` keeps running (an app replica or a sidecar): spawned
 * in its own process group (so Ctrl-C in the terminal reaches only the
 * supervisor, which stops things in order, and a signal to the group also
 * reaches whatever the app itself spawned), stdout and stderr appended to
 * its log file. When it dies unexpectedly the exit is recorded with the last
 * lines it wrote and it is started again after a backoff (core's Backoff,
 * reset once a run lasted `stableMs`). `stop()` sends SIGTERM to the group
 * and SIGKILL after a grace period.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, closeSync, openSync } from "node:fs";
import { Backoff } from "@weft/core";
import { lastRunLines, START_MARK } from "./log-files.js";
import { type ExitRecord, type ProcRecord, processStartTime, signalProcess } from "./state.js";

export interface SpawnSpec {
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
}

export interface ManagedProcessOptions {
  /** `frontend-1` or `frontend-1 sidecar`: how events name it. */
  name: string;
  log: string;
  /** Called before each start (a sidecar picks fresh listener ports here). */
  prepare: () => Promise<SpawnSpec>;
  onStart?: (p: ManagedProcess) => void;
  /** `restartInMs` is undefined when no restart follows (stopping). */
  onExit?: (p: ManagedProcess, exit: ExitRecord, restartInMs: number | undefined) => void;
  /** A run at least this long resets the backoff. Default 10 s. */
  stableMs?: number;
  backoff?: { baseMs: number; maxMs: number };
}

/** "exit code 1", "signal SIGKILL", "could not start: spawn x ENOENT". */
export function describeExit(e: Pick<ExitRecord, "code" | "signal">, spawnError?: string): string {
  if (spawnError) return `could not start: ${spawnError}`;
  if (e.signal) return `killed by ${e.signal}`;
  return `exited with code ${e.code}`;
}

export class ManagedProcess {
  readonly record: ProcRecord;
  private child: ChildProcess | undefined;
  private readonly backoff: Backoff;
  private restartTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private exitWaiters: (() => void)[] = [];
  /** The reason the last spawn failed, when it did (ENOENT, EACCES). */
  spawnError: string | undefined;

  constructor(private readonly o: ManagedProcessOptions) {
    this.record = {
      pid: null,
      startTime: null,
      status: "stopped",
      restarts: 0,
      startedAt: null,
      lastExit: null,
      log: o.log,
    };
    this.backoff = new Backoff({ ...(o.backoff ?? { baseMs: 500, maxMs: 15_000 }), jitter: 0.5 });
  }

  get name(): string {
    return this.o.name;
  }

  get alive(): boolean {
    return this.child !== undefined;
  }

  /** Starts the process (again). Resolves once spawned (not once it serves). */
  async start(): Promise<void> {
    if (this.stopping || this.child) return;
    this.record.status = "starting";
    let spec: SpawnSpec;
    try {
      spec = await this.o.prepare();
    } catch (e) {
      this.exited(null, null, e instanceof Error ? e.message : String(e));
      return;
    }
    if (this.stopping) {
      this.record.status = "stopped";
      return;
    }
    const started = Date.now();
    const attempt = this.record.restarts + 1;
    const fd = openSync(this.o.log, "a", 0o600);
    try {
      appendFileSync(
        fd,
        `${START_MARK}start ${attempt} of ${this.o.name} at ${new Date(started).toISOString()}: ${[spec.command, ...spec.args].join(" ")}\n`,
      );
      this.spawnError = undefined;
      const child = spawn(spec.command, spec.args, {
        cwd: spec.cwd,
        env: spec.env,
        stdio: ["ignore", fd, fd],
        detached: true,
      });
      this.child = child;
      let done = false;
      const finish = (code: number | null, signal: NodeJS.Signals | null, err?: string) => {
        if (done) return;
        done = true;
        if (this.child === child) this.child = undefined;
        this.exited(code, signal, err);
      };
      child.once("error", (e) => finish(null, null, e.message));
      child.once("exit", (code, signal) => finish(code, signal));
      if (child.pid !== undefined) {
        this.record.pid = child.pid;
        this.record.startTime = processStartTime(child.pid);
        this.record.startedAt = started;
        this.record.status = "running";
        this.o.onStart?.(this);
      }
    } finally {
      closeSync(fd);
    }
  }

  private exited(code: number | null, signal: NodeJS.Signals | null, spawnError?: string): void {
    const now = Date.now();
    const uptimeMs = this.record.startedAt !== null && !spawnError ? now - this.record.startedAt : 0;
    if (spawnError) this.spawnError = spawnError;
    const output = spawnError ? [spawnError] : lastRunLines(this.o.log, 8);
    const exit: ExitRecord = { code, signal, at: now, uptimeMs, output };
    try {
      appendFileSync(this.o.log, `${START_MARK}${this.o.name} ${describeExit(exit, spawnError)}\n`);
    } catch {
      // the log directory is gone (weft down removed it): nothing to write into
    }
    this.record.pid = null;
    this.record.startTime = null;
    this.record.lastExit = exit;
    const waiters = this.exitWaiters;
    this.exitWaiters = [];
    for (const w of waiters) w();
    if (this.stopping) {
      this.record.status = "stopped";
      this.o.onExit?.(this, exit, undefined);
      return;
    }
    if (uptimeMs >= (this.o.stableMs ?? 10_000)) this.backoff.reset();
    const delay = this.backoff.next();
    this.record.status = "backoff";
    this.o.onExit?.(this, exit, delay);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.record.restarts++;
      void this.start();
    }, delay);
  }

  /** Resolves once the current run (if any) has exited. */
  private waitExit(): Promise<void> {
    if (!this.child) return Promise.resolve();
    return new Promise((r) => this.exitWaiters.push(r));
  }

  /** No more restarts; SIGTERM to the group, SIGKILL after `graceMs`. Resolves once it has exited. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const child = this.child;
    if (!child?.pid) {
      this.record.status = "stopped";
      return;
    }
    const exited = this.waitExit();
    signalProcess(child.pid, "SIGTERM");
    const kill = setTimeout(() => {
      if (child.pid) signalProcess(child.pid, "SIGKILL");
    }, graceMs);
    await exited;
    clearTimeout(kill);
    // What the app left in its group (say, a shell's children) goes too. The group only:
    // the pid itself is reaped and may already belong to someone else.
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // the group is empty
    }
  }

  /** Last resort (the supervisor is exiting abnormally): SIGKILL, synchronously. */
  killNow(): void {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.child?.pid) signalProcess(this.child.pid, "SIGKILL");
  }
}
