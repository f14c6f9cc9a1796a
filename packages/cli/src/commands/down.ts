/**
 * `weft down`: stops everything a `weft up` started and waits until every
 * process in its state file is gone. With the supervisor alive, it is asked
 * (SIGTERM) and stops things in order itself (gateways, sidecars, apps,
 * control plane); if it is gone (killed), its children are stopped from
 * here in the same order. Anything still alive after `--timeout` is killed (SIGKILL to
 * its process group). Pids are recognised by their start time, so a pid
 * reused by an unrelated process is never signalled. Nothing to stop is not
 * an error (exit 0).
 */
import { isWeftError, parseDuration, WeftError } from "@weft/core";
import type { Command } from "commander";
import type { Io } from "../io.js";
import { dataDirLayout, findDataDir } from "../up/paths.js";
import {
  processAlive,
  readState,
  recordedProcesses,
  removeState,
  signalProcess,
  type UpState,
  waitReaped,
} from "../up/state.js";
import { humanDuration } from "../up/status-view.js";

type Proc = ReturnType<typeof recordedProcesses>[number];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function key(p: Proc): string {
  return `${p.pid}/${p.startTime}`;
}

/** Signals `procs` with SIGTERM and waits until they are gone or `untilMs` passes. */
async function termAndWait(procs: Proc[], untilMs: number): Promise<void> {
  for (const p of procs) if (processAlive(p.pid, p.startTime)) signalProcess(p.pid, "SIGTERM", p.group);
  while (Date.now() < untilMs && procs.some((p) => processAlive(p.pid, p.startTime))) await sleep(100);
}

export function registerDownCommand(program: Command, io: Io): void {
  program
    .command("down")
    .summary("stop everything weft up started")
    .description(
      "Stop a `weft up` (found like weft ps does): the supervisor drains gateways, then sidecars, then stops apps and the control plane. Waits until every process it started is gone; after --timeout what is left is killed. Exit 0 also when nothing was running.",
    )
    .option("--data-dir <dir>", "the weft up data dir (default: the nearest .weft/ from here up)")
    .option("--timeout <duration>", "how long to wait for a graceful stop before SIGKILL", "45s")
    .addHelpText("after", "\nExamples:\n  $ weft down\n  $ weft down --data-dir examples/bookstore/.weft\n")
    .action(async (flags: { dataDir?: string; timeout: string }) => {
      const t = parseDuration(flags.timeout);
      if (!t.ok)
        throw new WeftError("WEFT_ERR_USAGE", { detail: `--timeout "${flags.timeout}": ${t.error}` });
      let root: string;
      try {
        root = findDataDir(io.cwd, flags.dataDir);
      } catch (e) {
        if (isWeftError(e, "WEFT_ERR_NOT_FOUND")) {
          io.err.write(`nothing to stop: ${e.message}\n`);
          return;
        }
        throw e;
      }
      const dir = dataDirLayout(root);
      const first = readState(dir.state);
      if (!first) {
        io.err.write("nothing to stop\n");
        return;
      }
      const started = Date.now();
      const deadline = started + t.ms;
      // Every process seen in the state file while waiting (a restart may add one).
      const seen = new Map<string, Proc>();
      const note = (s: UpState | undefined) => {
        if (s) for (const p of recordedProcesses(s)) seen.set(key(p), p);
      };
      note(first);
      const living = () => [...seen.values()].filter((p) => processAlive(p.pid, p.startTime));
      const sup = recordedProcesses(first).find((p) => p.kind === "supervisor") as Proc;

      if (processAlive(sup.pid, sup.startTime)) {
        io.err.write(`stopping weft up (supervisor pid ${sup.pid})...\n`);
        signalProcess(sup.pid, "SIGTERM", false);
        while (Date.now() < deadline && living().length > 0) {
          await sleep(100);
          note(readState(dir.state));
        }
      } else {
        // The supervisor was killed: stop its children here, in its order.
        const procs = living();
        io.err.write(`the supervisor is gone; stopping the ${procs.length} process(es) it left\n`);
        await termAndWait(
          procs.filter((p) => p.kind === "gateway"),
          Math.min(deadline, Date.now() + 20_000),
        );
        await termAndWait(
          procs.filter((p) => p.kind === "sidecar"),
          Math.min(deadline, Date.now() + 20_000),
        );
        await termAndWait(
          procs.filter((p) => p.kind === "app"),
          deadline,
        );
      }
      const forced = living();
      for (const p of forced) signalProcess(p.pid, "SIGKILL", p.group);
      if (forced.length > 0) {
        io.err.write(
          `killed (SIGKILL) after ${humanDuration(Date.now() - started)}: ${forced.map((p) => `${p.what} (pid ${p.pid})`).join(", ")}\n`,
        );
        const until = Date.now() + 5_000;
        while (Date.now() < until && living().length > 0) await sleep(50);
      }
      const survivors = living();
      if (survivors.length > 0) {
        throw new WeftError("WEFT_ERR_UNAVAILABLE", {
          detail: `could not stop: ${survivors.map((p) => `${p.what} (pid ${p.pid})`).join(", ")}`,
        });
      }
      // A killed supervisor may linger as a zombie; its store lock counts it as alive until reaped.
      await waitReaped(sup.pid, 5_000);
      removeState(dir.state);
      const apps = [...seen.values()].filter((p) => p.kind === "app").length;
      const sidecars = [...seen.values()].filter((p) => p.kind === "sidecar").length;
      const gateways = [...seen.values()].filter((p) => p.kind === "gateway").length;
      io.out.write(
        `stopped in ${humanDuration(Date.now() - started)}: control plane and supervisor (pid ${sup.pid}), ` +
          `${apps} app process${apps === 1 ? "" : "es"}, ${sidecars} sidecar${sidecars === 1 ? "" : "s"}` +
          `${gateways > 0 ? `, ${gateways} gateway process${gateways === 1 ? "" : "es"}` : ""}; nothing left running\n`,
      );
    });
}
