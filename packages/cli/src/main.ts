/**
 * The `weft` program: builds the commander tree, runs one command, and maps
 * whatever happened to an exit code (exit-codes.ts) and one line on stderr
 * (`error: <message> (<CODE>)`). Nothing below here calls process.exit
 * except `weft server`'s signal handling; no stack trace reaches the user
 * (set WEFT_TRACE=cli to see them).
 */
import { createRequire } from "node:module";
import type { Command } from "commander";
import { registerAclCommands } from "./commands/acl.js";
import { registerBootstrapCommand } from "./commands/bootstrap.js";
import { registerCaCommands } from "./commands/ca.js";
import { registerCatalogCommands } from "./commands/catalog.js";
import { registerConfigCommands } from "./commands/config.js";
import { registerDownCommand } from "./commands/down.js";
import { registerExplainCommand } from "./commands/explain.js";
import { registerGatewayCommand } from "./commands/gateway.js";
import { registerLogsCommand } from "./commands/logs.js";
import { registerProxyCommand } from "./commands/proxy.js";
import { registerPsCommand } from "./commands/ps.js";
import { registerServerCommand } from "./commands/server.js";
import { registerSnapshotCommands } from "./commands/snapshot.js";
import { registerStatCommand } from "./commands/stat.js";
import { registerStatusCommand } from "./commands/status.js";
import { registerTapCommand } from "./commands/tap.js";
import { registerTopCommand } from "./commands/top.js";
import { registerUpCommand } from "./commands/up.js";
import { EXIT_CODES_HELP, type ExitCode } from "./exit-codes.js";
import { type Io, processIo } from "./io.js";
import { baseProgram, configureSubcommands, mainOf, runProgram } from "./program.js";

function version(): string {
  try {
    const req = createRequire(import.meta.url);
    return (req("../package.json") as { version: string }).version;
  } catch {
    return "0.0.0";
  }
}

const ENV_HELP = `Environment:
  WEFT_ADDR   control plane address (default 127.0.0.1:7400); --addr overrides
  WEFT_TOKEN  ACL token secret; --token overrides. With neither, commands use
              ./.weft/server/bootstrap-token when that file exists
  NO_COLOR    no colours (colours are only used on a terminal anyway)
  WEFT_TRACE  debug tracing, e.g. WEFT_TRACE=cli,store or all`;

export function buildProgram(io: Io): Command {
  const program = baseProgram(io)
    .description("Weft service mesh: control plane, sidecar proxy, resources, catalog, ACL and CA.")
    .version(version(), "-v, --version")
    .addHelpText(
      "after",
      `\nExamples:\n  $ weft server --data-dir .weft/server\n  $ weft validate -f mesh.yaml\n  $ weft apply -f mesh.yaml\n  $ weft get intention api -o yaml\n  $ weft services\n  $ weft instances api --all\n  $ weft ca roots\n\n${ENV_HELP}\n\n${EXIT_CODES_HELP}\n`,
    );

  registerServerCommand(program, io);
  registerProxyCommand(program, io);
  registerGatewayCommand(program, io);
  registerConfigCommands(program, io);
  registerCatalogCommands(program, io);
  registerAclCommands(program, io);
  registerCaCommands(program, io);
  registerStatusCommand(program, io);
  registerExplainCommand(program, io);
  registerStatCommand(program, io);
  registerTopCommand(program, io);
  registerTapCommand(program, io);
  registerUpCommand(program, io);
  registerPsCommand(program, io);
  registerDownCommand(program, io);
  registerLogsCommand(program, io);
  registerBootstrapCommand(program, io);
  registerSnapshotCommands(program, io);
  configureSubcommands(program, io);
  return program;
}

/** Runs `weft` with argv (including node and script) and returns the exit code. */
export function run(argv: readonly string[], io: Io = processIo()): Promise<ExitCode> {
  return runProgram(buildProgram, argv, io);
}

/** Entry point of the executable: run, flush, exit with the code. */
export function main(argv: readonly string[] = process.argv): Promise<void> {
  return mainOf(buildProgram, argv);
}
