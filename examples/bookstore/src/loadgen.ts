/**
 * loadgen: keeps traffic flowing. Asks the frontend for its page through its
 * own sidecar (WEFT_UPSTREAM_FRONTEND) RATE times a second (default 4),
 * forever, and every REPORT seconds (default 5) logs one line: requests,
 * answers by status, which catalog version served them, latency. Serves
 * GET /healthz and GET /stats (the totals as JSON) on PORT.
 *
 *   2025-01-01T10:00:05Z loadgen-1 last 5s: 20 requests (4.0/s): 200×20 | catalog v1 65% v2 35% | p50 14ms p99 41ms
 */
import { connect } from "node:net";
import { errorText, log, sendJson, serveHttp, upstream } from "./lib.js";

const frontend = upstream("frontend");
const rate = Math.min(100, Math.max(0.1, Number(process.env.RATE ?? 4) || 4));
const reportEvery = Math.max(1, Number(process.env.REPORT ?? 5) || 5) * 1000;
const MAX_IN_FLIGHT = 16;

let inFlight = 0;
let current = {
  requests: 0,
  outcomes: new Map<string, number>(),
  versions: new Map<string, number>(),
  ms: [] as number[],
};
const totals = { requests: 0, ok: 0, failed: 0, outcomes: {} as Record<string, number> };

async function once(): Promise<void> {
  if (inFlight >= MAX_IN_FLIGHT) {
    current.outcomes.set("skipped", (current.outcomes.get("skipped") ?? 0) + 1);
    return;
  }
  inFlight++;
  const started = performance.now();
  let outcome: string;
  try {
    const res = await fetch(frontend, { signal: AbortSignal.timeout(5_000) });
    await res.arrayBuffer();
    outcome = String(res.status);
    const v = res.headers.get("x-catalog-version") ?? "none";
    current.versions.set(v, (current.versions.get(v) ?? 0) + 1);
  } catch (e) {
    const code = (e as { cause?: { code?: string } }).cause?.code;
    outcome =
      code ?? (e instanceof Error && e.name === "TimeoutError" ? "timeout" : `error: ${errorText(e)}`);
  } finally {
    inFlight--;
  }
  current.ms.push(performance.now() - started);
  current.requests++;
  current.outcomes.set(outcome, (current.outcomes.get(outcome) ?? 0) + 1);
  totals.requests++;
  if (outcome === "200") totals.ok++;
  else totals.failed++;
  totals.outcomes[outcome] = (totals.outcomes[outcome] ?? 0) + 1;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

function report(): void {
  const w = current;
  current = { requests: 0, outcomes: new Map(), versions: new Map(), ms: [] };
  const outcomes = [...w.outcomes.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k}×${n}`)
    .join(" ");
  const seen = [...w.versions.values()].reduce((a, b) => a + b, 0);
  const versions = [...w.versions.entries()]
    .sort()
    .map(([v, n]) => `${v} ${Math.round((100 * n) / Math.max(1, seen))}%`)
    .join(" ");
  const sorted = [...w.ms].sort((a, b) => a - b);
  log(
    `last ${reportEvery / 1000}s: ${w.requests} requests (${((w.requests * 1000) / reportEvery).toFixed(1)}/s): ${outcomes || "-"}` +
      ` | catalog ${versions || "-"} | p50 ${quantile(sorted, 0.5).toFixed(0)}ms p99 ${quantile(sorted, 0.99).toFixed(0)}ms`,
  );
}

serveHttp("loadgen", (req, res) => {
  const path = (req.url ?? "/").split("?")[0];
  if (path === "/healthz") sendJson(res, 200, { ok: true });
  else if (path === "/stats") sendJson(res, 200, { rate, ...totals });
  else sendJson(res, 404, { error: "try /healthz or /stats" });
});
/** Resolves once the sidecar's listener for the frontend accepts connections (it starts after this app). */
async function upstreamListening(): Promise<void> {
  for (;;) {
    const ok = await new Promise<boolean>((done) => {
      const s = connect({ host: frontend.hostname, port: Number(frontend.port) });
      s.once("connect", () => {
        s.destroy();
        done(true);
      });
      s.once("error", () => done(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 250));
  }
}

log(`waiting for the frontend upstream at ${frontend.host} (this app's sidecar)`);
await upstreamListening();
log(`sending ${rate} requests/s to the frontend at ${frontend.host}`);
setInterval(() => void once(), 1000 / rate);
setInterval(report, reportEvery);
