/**
 * The `weft` program: builds the commander tree, runs one command, and maps
 * whatever happened to an exit code (exit-codes.ts) and one line on stderr
 * (`error: <message> (<CODE>)`). Nothing below here calls process.exit
 * except `weft server`'s signal handling; no stack trace reaches the user
 * (set WEFT_TRACE=cli to see them).
 */
import { createRequire } from "node:module";
import { tracer } from "@weft/core";
import { Command, CommanderError } from "commander";
import { registerAclCommands } from "./commands/acl.js";
import { registerCaCommands } from "./commands/ca.js";
import { registerCatalogCommands } from "./commands/catalog.js";
import { registerConfigCommands } from "./commands/config.js";
import { registerServerCommand } from "./commands/server.js";
import { registerStatusCommand } from "./commands/status.js";
import { EXIT, EXIT_CODES_HELP, type ExitCode, exitCodeFor } from "./exit-codes.js";
import { type Io, processIo } from "./io.js";
import { formatError } from "./output.js";

const trace = tracer("cli");

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
  const program = new Command("weft");
  program
    .description("Weft service mesh: control plane, resources, catalog, ACL and CA.")
    .version(version(), "-v, --version")
    .helpCommand(true)
    .showSuggestionAfterError(true)
    .configureHelp({ sortSubcommands: false })
    .configureOutput({
      writeOut: (s) => io.out.write(s),
      writeErr: (s) => io.err.write(s),
      // Commander's own usage errors, in the house format.
      outputError: (s, write) => write(`${s.trimEnd()} (WEFT_ERR_USAGE)\n`),
    })
    .exitOverride()
    .addHelpText(
      "after",
      `\nExamples:\n  $ weft server --data-dir .weft/server\n  $ weft validate -f mesh.yaml\n  $ weft apply -f mesh.yaml\n  $ weft get intention api -o yaml\n  $ weft services\n  $ weft instances api --all\n  $ weft ca roots\n\n${ENV_HELP}\n\n${EXIT_CODES_HELP}\n`,
    );

  registerServerCommand(program, io);
  registerConfigCommands(program, io);
  registerCatalogCommands(program, io);
  registerAclCommands(program, io);
  registerCaCommands(program, io);
  registerStatusCommand(program, io);

  // Every subcommand reports usage errors the same way and never exits by itself.
  const configure = (cmd: Command) => {
    for (const sub of cmd.commands) {
      sub.exitOverride().configureOutput({
        writeOut: (s) => io.out.write(s),
        writeErr: (s) => io.err.write(s),
        outputError: (s, write) => write(`${s.trimEnd()} (WEFT_ERR_USAGE)\n`),
      });
      sub.showSuggestionAfterError(true);
      configure(sub);
    }
  };
  configure(program);
  return program;
}

/** Runs `weft` with argv (including node and script) and returns the exit code. */
export async function run(argv: readonly string[], io: Io = processIo()): Promise<ExitCode> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv]);
    return EXIT.OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end in a CommanderError with exitCode 0.
      if (e.exitCode === 0) return EXIT.OK;
      return EXIT.USAGE;
    }
    trace("command failed", { error: e instanceof Error ? e.stack : String(e) });
    io.err.write(`${formatError(e)}\n`);
    return exitCodeFor(e);
  }
}

/** Entry point of the executable: run, flush, exit with the code. */
export async function main(argv: readonly string[] = process.argv): Promise<void> {
  const bail = (e: unknown) => {
    // Last resort: an error escaping a callback. One line, no stack.
    trace("uncaught", { error: e instanceof Error ? e.stack : String(e) });
    process.stderr.write(`${formatError(e)}\n`);
    process.exit(EXIT.ERROR);
  };
  process.on("uncaughtException", bail);
  process.on("unhandledRejection", bail);
  const code = await run(argv);
  // Flush stdout before exiting: idle keep-alive sockets would otherwise hold the process open.
  process.stdout.write("", () => process.exit(code));
}
