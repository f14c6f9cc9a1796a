// `npm start`: runs a local control plane in dev mode (API open on loopback,
// state under .weft/server) and applies the example's resources to it.
// When `weft up` lands (issue #5) this becomes `weft up -f examples/bookstore/weft.yaml`.
import { spawn, spawnSync } from "node:child_process";
import { resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const weft = resolve(root, "packages/cli/dist/bin/weft.js");
const addr = process.env.WEFT_ADDR ?? "127.0.0.1:7400";
const example = resolve(root, "examples/bookstore");

const server = spawn(
  process.execPath,
  [weft, "server", "--dev", "--listen", addr, "--data-dir", resolve(root, ".weft/server")],
  {
    stdio: ["ignore", "pipe", "inherit"],
  },
);
let applied = false;
server.stdout.setEncoding("utf8");
server.stdout.on("data", (chunk) => {
  process.stdout.write(chunk);
  if (!applied && chunk.includes("weft server listening on")) {
    applied = true;
    const r = spawnSync(process.execPath, [weft, "apply", "-f", example, "--addr", addr], {
      stdio: "inherit",
    });
    if (r.status !== 0) {
      console.error(`[weft] applying ${example} failed (exit ${r.status})`);
    } else {
      console.log(`\n[weft] control plane ready at http://${addr} (dev mode). Try:`);
      console.log(`  npx weft get intention --addr ${addr}`);
      console.log(`  npx weft services --addr ${addr}`);
      console.log(`  npx weft ca roots --addr ${addr}`);
      console.log("Ctrl-C stops it.");
    }
  }
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => server.kill("SIGTERM"));
server.on("exit", (code) => process.exit(code ?? 0));
