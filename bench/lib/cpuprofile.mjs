// Reads a V8 .cpuprofile (node --cpu-prof) and ranks where the time went:
// self time per function (name + file:line) and per file, as a share of the
// non-idle time. Open the file itself in Chrome DevTools (Performance) or
// speedscope for a flame graph.
import { readFileSync } from "node:fs";
import { ROOT } from "./weft-server.mjs";

const shortUrl = (url) =>
  url
    .replace(`file://${ROOT}/`, "")
    .replace(/^node_modules\//, "npm:")
    .replace(/^packages\/(\w+)\/dist\//, "@weft/$1/");

/** -> {totalMs, idleMs, busyMs, functions: [{name, where, selfMs, pct}], files: [{file, selfMs, pct}]} */
export function summarizeCpuProfile(file, top = 20) {
  const p = JSON.parse(readFileSync(file, "utf8"));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const fns = new Map();
  const files = new Map();
  const categories = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const cf = byId.get(id).callFrame;
    total += us;
    if (cf.functionName === "(idle)") {
      idle += us;
      continue;
    }
    const where = cf.url ? `${shortUrl(cf.url)}:${cf.lineNumber + 1}` : "";
    const name = cf.functionName || "(anonymous)";
    const key = `${name} ${where}`;
    const f = fns.get(key) ?? { name, where, us: 0 };
    f.us += us;
    fns.set(key, f);
    const fileKey = cf.url ? shortUrl(cf.url) : name; // (garbage collector), (program)...
    files.set(fileKey, (files.get(fileKey) ?? 0) + us);
    const cat = categoryOf(cf);
    categories.set(cat, (categories.get(cat) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us) => Math.round((1000 * us) / Math.max(1, busy)) / 10;
  const ms = (us) => Math.round(us / 100) / 10;
  return {
    totalMs: ms(total),
    idleMs: ms(idle),
    busyMs: ms(busy),
    functions: [...fns.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, where: f.where, selfMs: ms(f.us), pct: pct(f.us) })),
    categories: [...categories.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([category, us]) => ({ category, selfMs: ms(us), pct: pct(us) })),
    files: [...files.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([f, us]) => ({ file: f, selfMs: ms(us), pct: pct(us) })),
  };
}

/** Weft's code, npm dependencies, Node's JavaScript, native code (syscalls, TLS, builtins), GC, V8 itself. */
function categoryOf(cf) {
  if (cf.functionName === "(garbage collector)") return "garbage collector";
  if (cf.functionName === "(program)") return "V8/native, unattributed (program)";
  if (cf.url.includes("/packages/")) return "Weft (@weft/*)";
  if (cf.url.includes("/node_modules/")) return "npm dependencies";
  if (cf.url.startsWith("node:")) return "Node.js internals (JS)";
  if (!cf.url) return "native functions (syscalls, TLS, parsers, builtins)";
  return "other";
}
