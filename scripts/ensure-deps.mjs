// Installs dependencies on a fresh clone: `npm test` and `npm start` call this
// first, so a clone needs no manual install. A lockfile newer than the last
// install also triggers it.
//
// Why `npm install --no-save` and not `npm ci`: the registry this project is
// built against does not serve Biome's binaries for other platforms, so the
// lockfile cannot list them, and `npm ci` refuses such a lockfile as "out of
// sync". `npm install --no-save` installs the locked versions (integrity
// checked) and never rewrites package.json or the lockfile.
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";

const lock = "package-lock.json";
const marker = "node_modules/.package-lock.json";
const stale =
  !existsSync("node_modules") ||
  !existsSync(marker) ||
  (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs + 1000);
if (stale) {
  console.log(
    "[weft] installing dependencies (npm install --no-save; better-sqlite3 compiles, about a minute)...",
  );
  const r = spawnSync("npm", ["install", "--no-save", "--no-audit", "--no-fund"], { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
