// `npm start`: runs the bookstore example as a whole local mesh,
// `weft up -f examples/bookstore/weft.yaml` (prestart has installed and built
// everything, the example included). Arguments after `--` go to weft up:
// `npm start -- -d` starts it in the background (`weft down` stops it).
//
// The mesh's state, logs and control plane store live in
// examples/bookstore/.weft/; weft ps / logs / down / apply find them when run
// from examples/bookstore (or with --data-dir examples/bookstore/.weft).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const weft = resolve(root, "packages/cli/dist/bin/weft.js");
const example = resolve(root, "examples/bookstore");

for (const built of [weft, resolve(example, "dist/frontend.js")]) {
  if (!existsSync(built)) {
    console.error(`[weft] ${built} is missing: build first (npm run build; npm start does it)`);
    process.exit(1);
  }
}

const child = spawn(
  process.execPath,
  [weft, "up", "-f", "examples/bookstore/weft.yaml", ...process.argv.slice(2)],
  {
    cwd: root,
    stdio: "inherit",
  },
);
// weft up stops everything in order on the first signal (and ignores the duplicate that
// Ctrl-C under npm produces); pass on what reaches this wrapper and wait for it.
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  });
}
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
