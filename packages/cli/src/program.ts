/**
 * The machinery every `weft` entry shares: one commander program in the
 * house style (usage errors as `... (WEFT_ERR_USAGE)`, no process.exit from
 * commander), one command run, and whatever happened mapped to an exit code
 * (exit-codes.ts) and one line on stderr. No stack trace reaches the user
 * (set WEFT_TRACE=cli to see them).
 */
import { tracer } from "@weft/core";
import { Command, CommanderError } from "commander";
import { EXIT, type ExitCode, exitCodeFor } from "./exit-codes.js";
import { type Io, processIo } from "./io.js";
import { formatError } from "./output.js";

const trace = tracer("cli");

export type ProgramBuilder = (io: Io) => Command;

/** A bare program writing to `io`, with commander's usage errors in the house format. */
export function baseProgram(io: Io): Command {
  return new Command("weft")
    .helpCommand(true)
    .showSuggestionAfterError(true)
    .configureHelp({ sortSubcommands: false })
    .configureOutput({
      writeOut: (s) => io.out.write(s),
      writeErr: (s) => io.err.write(s),
      outputError: (s, write) => write(`${s.trimEnd()} (WEFT_ERR_USAGE)\n`),
    })
    .exitOverride();
}

/** Every subcommand reports usage errors the same way and never exits by itself. */
export function configureSubcommands(cmd: Command, io: Io): void {
  for (const sub of cmd.commands) {
    sub.exitOverride().configureOutput({
      writeOut: (s) => io.out.write(s),
      writeErr: (s) => io.err.write(s),
      outputError: (s, write) => write(`${s.trimEnd()} (WEFT_ERR_USAGE)\n`),
    });
    sub.showSuggestionAfterError(true);
    configureSubcommands(sub, io);
  }
}

/** Runs the program with argv (including node and script) and returns the exit code. */
export async function runProgram(
  build: ProgramBuilder,
  argv: readonly string[],
  io: Io = processIo(),
): Promise<ExitCode> {
  const program = build(io);
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

/** Entry point of an executable: run, flush, exit with the code. */
export async function mainOf(build: ProgramBuilder, argv: readonly string[] = process.argv): Promise<void> {
  const bail = (e: unknown) => {
    // Last resort: an error escaping a callback. One line, no stack.
    trace("uncaught", { error: e instanceof Error ? e.stack : String(e) });
    process.stderr.write(`${formatError(e)}\n`);
    process.exit(EXIT.ERROR);
  };
  process.on("uncaughtException", bail);
  process.on("unhandledRejection", bail);
  const code = await runProgram(build, argv);
  // Flush stdout before exiting: idle keep-alive sockets would otherwise hold the process open.
  process.stdout.write("", () => process.exit(code));
}
