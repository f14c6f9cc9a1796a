/** Tests only: runs the program in-process with its output captured. */
import type { Io } from "./io.js";
import { run } from "./main.js";

export async function runCaptured(
  args: readonly string[],
  cwd: string,
): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io: Io = {
    out: {
      write: (t) => {
        out += t;
      },
      isTTY: false,
    },
    err: {
      write: (t) => {
        err += t;
      },
      isTTY: false,
    },
    cwd,
  };
  const code = await run(["node", "weft", ...args], io);
  return { code, out, err };
}
