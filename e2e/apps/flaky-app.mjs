/**
 * An HTTP/1.1 upstream that fails a share of its requests, for the retry
 * tests. env: PORT (0 = any), REPLICA, FAIL_PERCENT (0..100), SEED.
 * HANG_PERCENT (default 0) of the requests that do not fail answer after
 * HANG_MS (default 3000), for per-try timeouts.
 * Prints "listening PORT".
 *   GET  /healthz   200 ok, never fails, never counted
 *   GET  /stats     {replica, received, failed, bodies} since the last reset
 *   POST /reset     zeroes the counters; ?fail=N sets FAIL_PERCENT, ?hang=N HANG_PERCENT
 *   any other       503 for FAIL_PERCENT% of requests (seeded PRNG, so a run
 *                   is repeatable), else 200 {replica, n, body}; request
 *                   bodies are read whole and echoed in `body`
 */
import { createServer } from "node:http";

const replica = process.env.REPLICA ?? "0";
let failPercent = Number(process.env.FAIL_PERCENT ?? "0");
let hangPercent = Number(process.env.HANG_PERCENT ?? "0");
const hangMs = Number(process.env.HANG_MS ?? "3000");
let seed = Number(process.env.SEED ?? "1") >>> 0;
const stats = { received: 0, failed: 0, hung: 0 };

/** mulberry32: small, seeded, good enough to spread failures evenly. */
function random() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

function json(res, status, body) {
  const s = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(s) });
  res.end(s);
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  const parts = [];
  req.on("data", (c) => parts.push(c));
  req.on("end", () => {
    if (url.pathname === "/healthz") return json(res, 200, { ok: true });
    if (url.pathname === "/stats") return json(res, 200, { replica, ...stats });
    if (url.pathname === "/reset" && req.method === "POST") {
      stats.received = 0;
      stats.failed = 0;
      stats.hung = 0;
      const fail = url.searchParams.get("fail");
      if (fail !== null) failPercent = Number(fail);
      const hang = url.searchParams.get("hang");
      if (hang !== null) hangPercent = Number(hang);
      return json(res, 200, { replica, failPercent, hangPercent });
    }
    stats.received++;
    if (random() * 100 < failPercent) {
      stats.failed++;
      return json(res, 503, { replica, error: "injected" });
    }
    const answer = { replica, n: stats.received, body: Buffer.concat(parts).toString() };
    if (random() * 100 < hangPercent) {
      stats.hung++;
      const timer = setTimeout(() => json(res, 200, answer), hangMs);
      res.on("close", () => clearTimeout(timer));
      return;
    }
    json(res, 200, answer);
  });
});

server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT ?? "0"), "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
