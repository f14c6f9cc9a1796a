// A real `weft server` on a fresh SQLite data dir for a benchmark, with a
// deadline that kills it (and exits) if the benchmark hangs.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const WEFT_BIN = join(ROOT, "packages/cli/dist/bin/weft.js");
/** What `weft proxy` prints once it serves: instance id, inbound port, admin port. */
export const SIDECAR_READY = /weft proxy ready service=\S+ instance=(\S+) inbound=(\d+) admin=(\d+)/;

/** `weft proxy` arguments for a bench sidecar of `srv`: loopback listeners, warn logs, then `extra`. */
export function sidecarArgs(srv, { service, appPort, protocol, extra = [] }) {
  return [
    WEFT_BIN,
    ...["proxy", "--service", service, "--app-port", String(appPort), "--protocol", protocol],
    ...["--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--log-level", "warn"],
    ...["--server", srv.addr, "--token", srv.token],
    ...extra,
  ];
}

export async function startBenchServer(name, deadlineMs = 300_000) {
  const dir = mkdtempSync(join(tmpdir(), `weft-${name}-`));
  const srv = spawn(
    process.execPath,
    [
      join(ROOT, "packages/cli/dist/bin/weft.js"),
      "server",
      "--listen",
      "127.0.0.1:0",
      "--data-dir",
      join(dir, "srv"),
    ],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  const stop = () => {
    clearTimeout(deadline);
    srv.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = setTimeout(() => {
    console.error(`${name} bench: timed out after ${deadlineMs / 1000} s`);
    stop();
    process.exit(1);
  }, deadlineMs);
  deadline.unref();
  let out = "";
  const url = await new Promise((ok, fail) => {
    srv.once("exit", (code) => fail(new Error(`weft server exited (${code}) before listening`)));
    srv.stdout.setEncoding("utf8").on("data", (d) => {
      out += d;
      const m = /listening on (\S+)[\s\S]*bootstrap management token/.exec(out);
      if (m) ok(m[1]);
    });
  });
  const token = readFileSync(join(dir, "srv/bootstrap-token"), "utf8").trim();
  const rssMb = () =>
    Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${srv.pid}/status`, "utf8"))[1]) / 1024;
  return { url, addr: new URL(url).host, token, pid: srv.pid, rssMb, stop };
}

/** Writes a result to bench/results/<name>-<date>.json; returns the path. */
export function writeResult(name, result) {
  mkdirSync(join(ROOT, "bench/results"), { recursive: true });
  const file = join(ROOT, "bench/results", `${name}-${result.date.replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}
