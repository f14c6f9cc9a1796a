/** Where a command writes. Injected so commands can be run in-process by tests. */
import { type Out, stderr, stdout } from "./output.js";

export interface Io {
  out: Out;
  err: Out;
  /** Current directory for relative paths and the bootstrap token file. */
  cwd: string;
}

export function processIo(): Io {
  return { out: stdout(), err: stderr(), cwd: process.cwd() };
}
