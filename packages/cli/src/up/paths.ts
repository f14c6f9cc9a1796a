/**
 * Where `weft up` keeps things, under its data dir (default `.weft/` beside
 * the file):
 *
 *   DIR/state.json        what runs: pids, ports, API URL, token file (up/state.ts)
 *   DIR/server/           the embedded control plane's store and bootstrap-token;
 *                         the same layout as `weft server --data-dir .weft/server`, so
 *                         client commands run from the file's directory find the token
 *   DIR/logs/NAME.log     each app replica's output (NAME = workload-replica)
 *   DIR/logs/NAME.sidecar.log, DIR/logs/controlplane.log, DIR/logs/up.log
 *   DIR/logs/GATEWAY.gateway.log  each gateway's output (its ready line, JSON logs)
 *
 * `weft ps`, `weft down` and `weft logs` find the data dir from `--data-dir`,
 * else the nearest `.weft/state.json` from the current directory upwards
 * (as `docker compose` looks for its file).
 */
import { existsSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { WeftError } from "@weft/core";

export const DATA_DIR_NAME = ".weft";
export const STATE_FILE = "state.json";

export interface DataDir {
  root: string;
  state: string;
  server: string;
  tokenFile: string;
  logs: string;
  controlPlaneLog: string;
  upLog: string;
}

export function dataDirLayout(root: string): DataDir {
  return {
    root,
    state: join(root, STATE_FILE),
    server: join(root, "server"),
    tokenFile: join(root, "server", "bootstrap-token"),
    logs: join(root, "logs"),
    controlPlaneLog: join(root, "logs", "controlplane.log"),
    upLog: join(root, "logs", "up.log"),
  };
}

/** The app log of a replica (`frontend-1`), or its sidecar's. */
export function logFile(dir: DataDir, replicaId: string, sidecar = false): string {
  return join(dir.logs, `${replicaId}${sidecar ? ".sidecar" : ""}.log`);
}

/** A gateway's log (`edge.gateway.log`: no replica id ends in `.gateway`). */
export function gatewayLogFile(dir: DataDir, name: string): string {
  return join(dir.logs, `${name}.gateway.log`);
}

/** `weft up`'s data dir: the flag, or `.weft/` beside the file. */
export function upDataDir(file: string, flag: string | undefined, cwd: string): string {
  return flag !== undefined ? resolve(cwd, flag) : join(dirname(resolve(cwd, file)), DATA_DIR_NAME);
}

/**
 * The data dir of a running (or stale) `weft up` for ps/down/logs: `--data-dir`
 * when given, else the nearest `.weft/` holding a state file, from `cwd` up.
 * Throws WEFT_ERR_NOT_FOUND (exit 5) naming where it looked.
 */
export function findDataDir(cwd: string, flag: string | undefined): string {
  if (flag !== undefined) {
    const root = resolve(cwd, flag);
    if (!existsSync(join(root, STATE_FILE))) {
      throw new WeftError("WEFT_ERR_NOT_FOUND", {
        what: `a weft up state file (${join(root, STATE_FILE)}; is weft up running with this --data-dir?)`,
      });
    }
    return root;
  }
  let dir = resolve(cwd);
  for (;;) {
    const candidate = join(dir, DATA_DIR_NAME);
    if (existsSync(join(candidate, STATE_FILE))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new WeftError("WEFT_ERR_NOT_FOUND", {
    what:
      `a weft up state file (${DATA_DIR_NAME}/${STATE_FILE} in ${resolve(cwd)} or a parent directory; ` +
      "run this from the weft.yaml's directory, or pass --data-dir)",
  });
}

/** `path` relative to `cwd` when it is below it, else absolute. */
export function shortPath(path: string, cwd: string): string {
  const r = relative(cwd, path);
  return r === "" ? "." : r.startsWith("..") ? path : r;
}

/** How to reach this mesh from `cwd` with ps/logs/down: nothing extra, or `--data-dir X`. */
export function dataDirHint(dir: DataDir, cwd: string): string {
  try {
    if (findDataDir(cwd, undefined) === dir.root) return "";
  } catch {
    // not found from cwd
  }
  return ` --data-dir ${shortPath(dir.root, cwd)}`;
}

/** `weft ps | weft logs NAME -f | weft down`, with what it takes to find this mesh from `cwd`. */
export function elsewhereHint(dir: DataDir, fileDir: string, cwd: string): string {
  const cmds = "weft ps | weft logs NAME -f | weft down";
  const hint = dataDirHint(dir, cwd);
  if (hint === "") return cmds;
  if (dir.root === join(fileDir, DATA_DIR_NAME)) return `cd ${shortPath(fileDir, cwd)}, then ${cmds}`;
  return `${cmds} (each with${hint})`;
}
