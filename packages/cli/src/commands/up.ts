/**
 * `weft up [-f weft.yaml] [-d] [--data-dir DIR]`: a whole mesh on this
 * machine from one file (up/supervisor.ts runs it).
 *
 * Before anything starts: the file is validated (up/plan.ts: YAML, kinds,
 * fields, upstreams naming a service no Workload provides, duplicate local
 * ports, mesh gateways; exit 2 with file:line:col and field), a live `weft up` on the same
 * data dir is refused (exit 1), what a previous run left behind (it was
 * killed) is stopped, and every fixed port must be free now (exit 2).
 *
 * Foreground: this process is the supervisor until Ctrl-C (or `weft down`).
 * `-d`: a supervisor is started in the background (a re-exec of `weft up
 * --supervise` in its own session, output to DIR/logs/up.log); this
 * process waits for its state file to say "running" (every replica healthy
 * in the catalog and every gateway ready: exit 0, with the summary) or "failed" (exit 1, with what
 * failed; the supervisor stops what it started).
 */
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { resolve } from "node:path";
import { parseDuration, WeftError } from "@weft/core";
import { type Command, Option } from "commander";
import type { Io } from "../io.js";
import { plural, useColor } from "../output.js";
import { WEFT_BIN } from "../up/launch.js";
import { lastRunLines, START_MARK } from "../up/log-files.js";
import { type DataDir, dataDirHint, dataDirLayout, shortPath, upDataDir } from "../up/paths.js";
import { checkPorts, planFile, portClaims, portInUse } from "../up/plan.js";
import {
  processAlive,
  readState,
  recordedProcesses,
  removeState,
  signalProcess,
  type UpState,
  waitReaped,
} from "../up/state.js";
import { gatewayTable, headerLines, humanDuration, replicaTable } from "../up/status-view.js";
import { Supervisor } from "../up/supervisor.js";
import { parseHostPort } from "./proxy.js";

interface UpFlags {
  file: string;
  detach?: boolean;
  dataDir?: string;
  listen: string;
  timeout: string;
  supervise?: boolean;
}

function invalid(errors: readonly string[], file: string, io: Io): WeftError {
  for (const e of errors) io.err.write(`${e}\n`);
  return new WeftError("WEFT_ERR_CONFIG_INVALID", {
    detail: `${plural(errors.length, "error")} in ${file}; nothing was started`,
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A previous `weft up` on this data dir that did not stop cleanly (killed)
 * may have left apps and sidecars running: stop them (only pids whose start
 * time still matches, so nothing else is ever signalled).
 */
async function stopLeftovers(state: UpState, io: Io): Promise<void> {
  const left = recordedProcesses(state).filter(
    (p) => p.kind !== "supervisor" && processAlive(p.pid, p.startTime),
  );
  if (left.length === 0) return;
  io.err.write(
    `stopping ${left.length} process${left.length === 1 ? "" : "es"} left running by a previous weft up that did not stop cleanly\n`,
  );
  for (const p of left) signalProcess(p.pid, "SIGTERM", p.group);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && left.some((p) => processAlive(p.pid, p.startTime))) await sleep(100);
  for (const p of left) if (processAlive(p.pid, p.startTime)) signalProcess(p.pid, "SIGKILL", p.group);
}

function durationFlag(flag: string, v: string): number {
  const r = parseDuration(v);
  if (!r.ok) throw new WeftError("WEFT_ERR_USAGE", { detail: `${flag} "${v}": ${r.error}` });
  if (r.ms < 1_000) throw new WeftError("WEFT_ERR_USAGE", { detail: `${flag} "${v}": must be at least 1s` });
  return r.ms;
}

export function registerUpCommand(program: Command, io: Io): void {
  program
    .command("up")
    .summary("run a whole mesh on this machine from one file")
    .description(
      "Run a local mesh from a file of resources: the control plane (in this process, state under --data-dir), every Workload's replicas each with its sidecar (`weft proxy`), every Gateway (`weft gateway`, ingress or terminating), and every other resource applied. Apps get PORT and, per upstream, WEFT_UPSTREAM_<SERVICE> (http://127.0.0.1:<local port>); they run in the file's directory. A process that dies is restarted with backoff. Ctrl-C (or `weft down`) stops gateways, then sidecars, then apps, then the control plane. The file is checked first: an invalid file, or a port in use, is exit 2 with file:line:col and field, and nothing starts.",
    )
    .option("-f, --file <file>", "the file of resources", "weft.yaml")
    .option(
      "-d, --detach",
      "start in the background; return once every replica is healthy and every gateway ready (exit 0) or failed (1)",
    )
    .option("--data-dir <dir>", "state, logs and the control plane's store (default: .weft/ beside the file)")
    .option(
      "--listen <addr>",
      "the control plane's API address (port 0: any free port; see weft ps)",
      "127.0.0.1:7400",
    )
    .option("--timeout <duration>", "with -d: how long to wait for everything to be healthy", "2m")
    .addOption(new Option("--supervise", "internal: run as the background supervisor of -d").hideHelp())
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft up                        # ./weft.yaml, in the foreground\n  $ weft up -f examples/bookstore/weft.yaml -d\n  $ weft up -d --listen 127.0.0.1:0 --data-dir /tmp/mesh\n\nThen: weft ps, weft logs NAME [-f], weft down (from the file's directory, or with --data-dir).\n",
    )
    .action(async (flags: UpFlags) => {
      const listen = parseHostPort("--listen", flags.listen);
      const timeoutMs = durationFlag("--timeout", flags.timeout);
      const planned = planFile(resolve(io.cwd, flags.file), flags.file);
      if (!planned.ok) throw invalid(planned.errors, flags.file, io);
      const { plan, documents } = planned;
      const dir = dataDirLayout(upDataDir(flags.file, flags.dataDir, io.cwd));

      const previous = readState(dir.state);
      if (!flags.supervise) {
        if (previous && processAlive(previous.supervisor.pid, previous.supervisor.startTime)) {
          throw new WeftError("WEFT_ERR_CONFLICT", {
            detail:
              `weft up is already running for ${dir.root} (supervisor pid ${previous.supervisor.pid}, ` +
              `file ${previous.file}); stop it first with weft down${dataDirHint(dir, io.cwd)}`,
          });
        }
        if (previous) {
          await stopLeftovers(previous, io);
          // Its control plane's store lock names its pid: let the kernel finish with it.
          await waitReaped(previous.supervisor.pid, 5_000);
        }
        const claims = portClaims(plan, documents, flags.file);
        const errors = await checkPorts(claims);
        if (listen.port !== 0) {
          const problem = await portInUse(listen.port, listen.host);
          if (problem) {
            errors.push(
              `--listen ${flags.listen}: ${problem}; is a weft server or another weft up running? ` +
                "Choose another address with --listen (port 0: any free port)",
            );
          }
        }
        if (errors.length > 0) throw invalid(errors, flags.file, io);
      }
      const staleInstances = [
        ...(previous?.replicas.map((r) => r.instance) ?? []),
        ...(previous?.gateways.flatMap((g) => (g.instance ? [g.instance] : [])) ?? []),
      ];

      if (flags.detach && !flags.supervise) {
        await detach(flags, plan.file, dir, timeoutMs, io);
        return;
      }
      const supervisor = new Supervisor({
        plan,
        dir,
        listen: flags.listen,
        io,
        detached: flags.supervise === true,
        timeoutMs,
        staleInstances,
      });
      await supervisor.run();
    });
}

/** `-d`: start the supervisor in the background and wait for "running" or "failed". */
async function detach(flags: UpFlags, file: string, dir: DataDir, timeoutMs: number, io: Io): Promise<void> {
  const started = Date.now();
  mkdirSync(dir.logs, { recursive: true, mode: 0o700 });
  const fd = openSync(dir.upLog, "a", 0o600);
  writeSync(fd, `${START_MARK}-d at ${new Date(started).toISOString()}: ${file}\n`);
  const child = spawn(
    process.execPath,
    [
      WEFT_BIN,
      "up",
      "--supervise",
      "-f",
      file,
      "--data-dir",
      dir.root,
      "--listen",
      flags.listen,
      "--timeout",
      `${timeoutMs}ms`,
    ],
    { cwd: io.cwd, detached: true, stdio: ["ignore", fd, fd], env: process.env },
  );
  closeSync(fd);
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  child.once("error", (e) => {
    spawnError = e;
  });
  child.once("exit", (code, signal) => {
    exit = { code, signal };
  });
  child.unref();

  // Ctrl-C while waiting: stop the supervisor (it stops what it started) before leaving.
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    if (child.pid) signalProcess(child.pid, "SIGTERM", false);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    // The supervisor enforces `timeoutMs` itself; this is a margin for its stopping.
    const deadline = started + timeoutMs + 45_000;
    for (;;) {
      if (spawnError) {
        throw new WeftError("WEFT_ERR_UNAVAILABLE", {
          detail: `could not start the supervisor: ${spawnError.message}`,
        });
      }
      const state = readState(dir.state);
      const ours = state && state.supervisor.pid === child.pid ? state : undefined;
      if (ours?.phase === "running" && !interrupted) {
        const color = useColor(io.out);
        const alive = (pid: number | null, st: number | null) => processAlive(pid, st);
        const gateways = ours.gateways.length > 0 ? ` and ${plural(ours.gateways.length, "gateway")}` : "";
        io.out.write(
          `weft up: ${plural(ours.replicas.length, "replica")} of ${plural(new Set(ours.replicas.map((r) => r.workload)).size, "workload")}${gateways} ` +
            `healthy in ${humanDuration(Date.now() - started)}; supervisor pid ${child.pid} runs in the background (log ${shortPath(dir.upLog, io.cwd)})\n`,
        );
        io.out.write(
          `${headerLines(ours, io.cwd, alive).join("\n")}\n\n${replicaTable(ours, alive, color)}${gatewayTable(ours, alive, color)}\n`,
        );
        const hint = dataDirHint(dir, io.cwd);
        io.out.write(`status: weft ps${hint}   logs: weft logs NAME [-f]${hint}   stop: weft down${hint}\n`);
        return;
      }
      if (exit || ours?.phase === "failed" || Date.now() > deadline) {
        // Let it finish stopping what it started, then say why.
        const message = ours?.message;
        const waitUntil = Date.now() + 40_000;
        while (!exit && Date.now() < waitUntil && child.pid && processAlive(child.pid)) await sleep(100);
        if (!exit && child.pid && processAlive(child.pid)) signalProcess(child.pid, "SIGKILL", true);
        if (interrupted)
          throw new WeftError("WEFT_ERR_UNAVAILABLE", { detail: "interrupted; everything was stopped" });
        const last = readState(dir.state);
        const failed = last && last.supervisor.pid === child.pid ? last : undefined;
        if (failed && !processAlive(child.pid ?? null)) removeState(dir.state);
        const detail =
          message ??
          failed?.message ??
          `the supervisor exited (${exit?.signal ?? `code ${exit?.code}`}) before everything was healthy; ` +
            `its last output:\n  ${lastRunLines(dir.upLog, 10).join("\n  ")}`;
        throw new WeftError("WEFT_ERR_UNAVAILABLE", { detail: `weft up failed: ${detail}` });
      }
      await sleep(100);
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
