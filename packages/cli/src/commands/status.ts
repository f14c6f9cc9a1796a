/** `weft status`: is the control plane up, on which store, at which revision. No token needed. */
import type { Command } from "commander";
import { type ClientFlags, clientFrom, withClientOptions } from "../client-options.js";
import type { Io } from "../io.js";
import { json, table } from "../output.js";

export function registerStatusCommand(program: Command, io: Io): void {
  withClientOptions(
    program
      .command("status")
      .summary("show the control plane's status")
      .description(
        "Show the control plane's version, store backend, whether the replica answering is the leader (etcd), and the current store revision.",
      )
      .option("--json", "print as JSON"),
  )
    .addHelpText("after", "\nExamples:\n  $ weft status\n  $ WEFT_ADDR=10.0.0.5:7400 weft status --json\n")
    .action(async (opts: ClientFlags & { json?: boolean }) => {
      const client = clientFrom(opts, io.cwd);
      const s = await client.status();
      if (opts.json) {
        io.out.write(json({ addr: client.baseUrl, ...s }));
        return;
      }
      io.out.write(
        table(
          ["FIELD", "VALUE"],
          [
            ["address", client.baseUrl],
            ["version", String(s.version)],
            ["backend", String(s.backend)],
            // Replicated control plane (etcd): whether this replica runs the once-only duties.
            ["leader", s.leader === undefined ? "-" : s.leader ? "yes" : "no (follower)"],
            ["revision", String(s.revision)],
            ["dev", String(s.dev)],
          ],
        ).replace(/^FIELD.*\n/, ""),
      );
    });
}
