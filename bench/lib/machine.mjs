// What a result was measured on: CPUs, memory, kernel, Node, the commit and
// whether the tree had local changes, and the versions of the external tools.
import { spawnSync } from "node:child_process";
import os from "node:os";
import { ROOT } from "./weft-server.mjs";

const out = (cmd, args) => {
  const r = spawnSync(cmd, args, { encoding: "utf8", cwd: ROOT, timeout: 10_000 });
  return r.status === 0 ? `${r.stdout}${r.stderr}`.trim() : undefined;
};

export function machineInfo() {
  const cpus = os.cpus();
  const commit = out("git", ["rev-parse", "HEAD"]);
  const dirty = out("git", ["status", "--porcelain", "--untracked-files=no"]);
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model,
    cpuMhz: cpus.map((c) => c.speed),
    memoryMb: Math.round(os.totalmem() / 1024 / 1024),
    freeMemoryMb: Math.round(os.freemem() / 1024 / 1024),
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    openssl: process.versions.openssl,
    commit,
    localChanges: dirty === undefined ? undefined : dirty.length > 0,
  };
}

/** Any output, whatever the exit status (`wrk -v` exits 1). */
const anyOut = (cmd, args) => {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 10_000 });
  return r.error ? undefined : `${r.stdout}${r.stderr}`.trim();
};

export function toolVersions() {
  const first = (s) => s?.split("\n")[0];
  return {
    haproxy: /HAProxy version (\S+)/.exec(anyOut("haproxy", ["-v"]) ?? "")?.[1],
    wrk: first(anyOut("wrk", ["-v"]))?.replace(/ Copyright.*/, ""),
    h2load: /h2load nghttp2\/(\S+)/.exec(anyOut("h2load", ["--version"]) ?? "")?.[1],
    openssl: first(anyOut("openssl", ["version"])),
  };
}
