// Enforces the one-way imports of ARCHITECTURE.md: prints "bad layering" and
// exits 1 when a package imports a @weft package it may not, or reaches into
// another package's files by relative path.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";

const ALLOWED = {
  core: [],
  api: ["core"],
  dataplane: ["core", "api"],
  controlplane: ["core", "api"],
  gateway: ["core", "api", "dataplane"],
  // `weft server`/`weft proxy`/`weft gateway` run those parts in-process.
  cli: ["core", "api", "controlplane", "dataplane", "gateway", "web"],
  web: ["api"],
  testkit: ["core", "api"],
};
// Tests may additionally use the testkit.
const TEST_EXTRA = ["testkit"];

const root = resolve(import.meta.dirname, "..");
const pkgsDir = join(root, "packages");
const importRe =
  /(?:^|\s)(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/gm;

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "dist") continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* walk(p);
    else if (/\.(ts|tsx|mts)$/.test(name) && !name.endsWith(".d.ts")) yield p;
  }
}

const problems = [];
for (const pkg of readdirSync(pkgsDir)) {
  const src = join(pkgsDir, pkg, "src");
  try {
    statSync(src);
  } catch {
    continue;
  }
  const allowed = ALLOWED[pkg];
  if (!allowed) {
    problems.push(`bad layering: package "${pkg}" has no entry in scripts/check-layering.mjs`);
    continue;
  }
  for (const file of walk(src)) {
    const isTest = /\.(test|suite)\.ts$/.test(file) || file.includes(`${sep}testdata${sep}`);
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(importRe)) {
      const spec = m[1] ?? m[2];
      const rel = relative(root, file);
      if (spec.startsWith("@weft/")) {
        const target = spec.slice("@weft/".length).split("/")[0];
        if (target === pkg) continue;
        if (!allowed.includes(target) && !(isTest && TEST_EXTRA.includes(target))) {
          problems.push(
            `bad layering: ${rel} imports @weft/${target}; "${pkg}" may import only [${allowed.join(", ")}]`,
          );
        }
      } else if (spec.startsWith(".")) {
        const target = resolve(file, "..", spec);
        if (!target.startsWith(join(pkgsDir, pkg) + sep)) {
          problems.push(`bad layering: ${rel} reaches outside its package with "${spec}"`);
        }
      }
    }
  }
}
if (problems.length > 0) {
  for (const p of problems) console.error(p);
  process.exit(1);
}
console.log("layering ok");
