/**
 * `weft logs NAME [-f] [--sidecar] [-n N]`: the output of what `weft up`
 * runs, from the log files in its data dir. NAME is a workload (all its
 * replicas, each line prefixed `NAME-R | ` when there are several), one
 * replica (`frontend-1`), `controlplane` (the control plane's JSON log) or
 * `up` (the supervisor's events); a workload of that name wins. `--sidecar`
 * shows the replicas' sidecars instead of the apps. `-f` keeps printing new
 * lines until Ctrl-C or until the mesh stops.
 */
import { existsSync } from "node:fs";
import { WeftError } from "@weft/core";
import type { Command } from "commander";
import type { Io } from "../io.js";
import { followFiles, tailText } from "../up/log-files.js";
import { dataDirLayout, findDataDir } from "../up/paths.js";
import { processAlive, readState } from "../up/state.js";

interface LogsFlags {
  follow?: boolean;
  sidecar?: boolean;
  tail?: string;
  dataDir?: string;
}

export function registerLogsCommand(program: Command, io: Io): void {
  program
    .command("logs")
    .summary("print the output of a workload (or its sidecars) run by weft up")
    .description(
      "Print what a workload's replicas wrote (stdout and stderr), or with --sidecar their sidecars' JSON logs. NAME is a workload, a replica (frontend-1), a gateway, `controlplane` or `up` (weft up's own events). With several replicas each line starts with `NAME-R | `.",
    )
    .argument("<name>", "workload, replica, gateway, controlplane or up")
    .option("-f, --follow", "keep printing new lines (until Ctrl-C or the mesh stops)")
    .option("--sidecar", "the sidecars' logs instead of the apps'")
    .option("-n, --tail <lines>", "only the last N lines of each file")
    .option("--data-dir <dir>", "the weft up data dir (default: the nearest .weft/ from here up)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft logs loadgen -f\n  $ weft logs catalog-v1 --sidecar -n 20\n  $ weft logs frontend-1\n  $ weft logs controlplane -n 50\n",
    )
    .action(async (name: string, flags: LogsFlags) => {
      let n: number | undefined;
      if (flags.tail !== undefined) {
        n = /^\d{1,7}$/.test(flags.tail) ? Number(flags.tail) : Number.NaN;
        if (!Number.isFinite(n))
          throw new WeftError("WEFT_ERR_USAGE", {
            detail: `--tail "${flags.tail}": expected a number of lines`,
          });
      }
      const dir = dataDirLayout(findDataDir(io.cwd, flags.dataDir));
      const state = readState(dir.state);
      if (!state) throw new WeftError("WEFT_ERR_NOT_FOUND", { what: `a weft up state file (${dir.state})` });
      const replicas = state.replicas.filter((r) => r.workload === name || r.instance === name);
      let files: { label: string; file: string }[];
      if (replicas.length > 0) {
        files = replicas.map((r) => ({
          label: r.instance,
          file: flags.sidecar ? r.sidecar.log : r.app.log,
        }));
      } else if (state.gateways.some((g) => g.name === name)) {
        const g = state.gateways.find((x) => x.name === name);
        files = g?.log ? [{ label: name, file: g.log }] : [];
      } else if (name === "controlplane") {
        files = [{ label: name, file: state.controlPlane.log }];
      } else if (name === "up") {
        files = [{ label: name, file: state.supervisor.log }];
      } else {
        const workloads = [...new Set(state.replicas.map((r) => r.workload))];
        throw new WeftError("WEFT_ERR_NOT_FOUND", {
          what: `workload, replica or gateway "${name}" (workloads: ${workloads.join(", ")}${state.gateways.length > 0 ? `; gateways: ${state.gateways.map((g) => g.name).join(", ")}` : ""}; also: controlplane, up)`,
        });
      }
      const prefix = files.length > 1;
      const write = (label: string, line: string) =>
        io.out.write(prefix ? `${label} | ${line}\n` : `${line}\n`);
      for (const f of files) {
        if (!existsSync(f.file)) continue;
        const text = tailText(f.file, n);
        for (const line of text.split("\n").slice(0, -1)) write(f.label, line);
      }
      if (!flags.follow) return;

      const labels = new Map(files.map((f) => [f.file, f.label]));
      await new Promise<void>((done) => {
        const stop = followFiles(
          files.map((f) => f.file),
          (file, line) => write(labels.get(file) ?? "", line),
        );
        const finish = () => {
          clearInterval(watch);
          process.off("SIGINT", finish);
          process.off("SIGTERM", finish);
          stop();
          done();
        };
        // Until Ctrl-C, or until the mesh has stopped (its supervisor is gone).
        const watch = setInterval(() => {
          if (!processAlive(state.supervisor.pid, state.supervisor.startTime)) finish();
        }, 1_000);
        process.on("SIGINT", finish);
        process.on("SIGTERM", finish);
      });
    });
}
