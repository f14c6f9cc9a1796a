/**
 * `weft proxy` alone: the sidecar's entry. It builds a program with only the
 * proxy command so that a sidecar process loads neither the control plane,
 * the resource schemas (zod) nor the other commands (bin/weft.ts picks this
 * entry when the first argument is "proxy"). Same flags, output and exit
 * codes as through the full program.
 */
import { registerProxyCommand } from "./commands/proxy.js";
import type { Io } from "./io.js";
import { baseProgram, configureSubcommands, mainOf } from "./program.js";

export function buildProxyProgram(io: Io) {
  const program = baseProgram(io).description("Weft sidecar proxy.");
  registerProxyCommand(program, io);
  configureSubcommands(program, io);
  return program;
}

export function main(argv: readonly string[] = process.argv): Promise<void> {
  return mainOf(buildProxyProgram, argv);
}
