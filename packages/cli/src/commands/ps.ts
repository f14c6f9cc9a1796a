/**
 * `weft ps [--json]`: what a `weft up` runs, from its state file (found
 * from the current directory upwards, or `--data-dir`): the control plane's
 * pid and API/UI address, and per replica the app's pid and port, the
 * sidecar's pid, inbound and admin (metrics) ports, health in the catalog,
 * restarts and inbound requests per second; per gateway its pid, the ports
 * it serves on, its admin (metrics) port and health. Every pid is checked
 * alive now.
 */

import { WeftError } from "@weft/core";
import type { Command } from "commander";
import type { Io } from "../io.js";
import { json, useColor } from "../output.js";
import { dataDirLayout, findDataDir } from "../up/paths.js";
import { processAlive, readState } from "../up/state.js";
import { gatewayTable, headerLines, psJson, replicaTable } from "../up/status-view.js";

export function registerPsCommand(program: Command, io: Io): void {
  program
    .command("ps")
    .summary("show what weft up runs")
    .description(
      "Show each process a `weft up` started: workload, replica, app pid and port, sidecar pid, inbound and admin (metrics) ports, health, restarts, inbound requests/s; each gateway's pid, listener ports, admin (metrics) port and health; and the control plane's pid and API address. The mesh is found through .weft/state.json in this directory or a parent (the weft.yaml's directory), or --data-dir.",
    )
    .option("--json", "print as JSON (pids with `alive` checked now)")
    .option("--data-dir <dir>", "the weft up data dir (default: the nearest .weft/ from here up)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft ps\n  $ weft ps --json | jq '.processes[] | {instance, health}'\n  $ weft ps --json | jq '.gateways[] | {name, listeners, admin, health}'\n",
    )
    .action((flags: { json?: boolean; dataDir?: string }) => {
      const dir = dataDirLayout(findDataDir(io.cwd, flags.dataDir));
      const state = readState(dir.state);
      if (!state) throw new WeftError("WEFT_ERR_NOT_FOUND", { what: `a weft up state file (${dir.state})` });
      const alive = (pid: number | null, st: number | null) => processAlive(pid, st);
      if (flags.json) {
        io.out.write(json(psJson(state, alive)));
        return;
      }
      io.out.write(`${headerLines(state, io.cwd, alive).join("\n")}\n\n`);
      io.out.write(replicaTable(state, alive, useColor(io.out)));
      io.out.write(gatewayTable(state, alive, useColor(io.out)));
      if (!alive(state.supervisor.pid, state.supervisor.startTime)) {
        io.err.write("the supervisor is not running (it was killed); weft down stops whatever is left\n");
      }
    });
}
