/**
 * HTTP/1.1 test app for the sidecar e2e tests (node:http + ws).
 * env: PORT (0 = any), NAME (service), REPLICA. Prints "listening PORT".
 *   GET /healthz        200 ok
 *   GET /whoami         {service, replica, url (as received), requests}
 *   POST /echo          the request body streamed back
 *   GET /big?mb=N       N MiB of pattern bytes (pattern.mjs), streamed with backpressure;
 *                       also /big/N (tests that are not about query strings use it)
 *   POST /sink          reads the body (sha256), stopping for 3 s after the first 2 MiB;
 *                       answers {bytes, sha256}
 *   GET /stats          bytes written by the last /big and read by the last /sink so far
 *   GET /chunked        a few chunks without content-length
 *   GET /slow?ms=N      answers {slept: N} after N ms (default 1000); also /slow/N
 *   /public, /admin/x   200 with the path, any method
 *   /inspect, /inspect/x any method: reads the body and answers
 *                       {service, replica, method, url, host, headers, body}; query
 *                       ?status=N answers N, ?delay=MS waits first, ?fail=P answers
 *                       503 to P% of requests (seeded PRNG, SEED env)
 *   GET /_log           what the app saw since the last /_reset: {seen (requests
 *                       other than /healthz and /_*), shadow (of those, with a Host
 *                       ending "-shadow" before any port), recent (the last 1,000:
 *                       {method, url, host, body})}
 *   POST /_reset        zeroes /_log
 *   upgrade             WebSocket echo (text and binary)
 */
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import { WebSocketServer } from "ws";
import { CHUNK, patternChunk } from "./pattern.mjs";

const name = process.env.NAME ?? "app";
const replica = process.env.REPLICA ?? "0";
let requests = 0;
/** What /_log reports; /healthz and the /_ endpoints are not counted. */
const log = { seen: 0, shadow: 0, recent: [] };
const MAX_RECENT = 1_000;
let seed = Number(process.env.SEED ?? "1") >>> 0;

/** mulberry32: seeded, so a run's share of ?fail answers is repeatable. */
function random() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const stats = { bigWritten: 0, sinkRead: 0 };
const PAUSE_AFTER = 2 * 1024 * 1024;
const PAUSE_MS = 3_000;

function json(res, status, body) {
  const s = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(s) });
  res.end(s);
}

const server = createServer((req, res) => {
  requests++;
  const url = new URL(req.url ?? "/", "http://x");
  const path = url.pathname;
  if (path !== "/healthz" && !path.startsWith("/_")) {
    log.seen++;
    if (/-shadow(:\d+)?$/.test(req.headers.host ?? "")) log.shadow++;
  }
  if (path === "/inspect" || path.startsWith("/inspect/")) {
    const parts = [];
    req.on("data", (c) => parts.push(c));
    req.on("end", () => {
      const body = Buffer.concat(parts).toString();
      log.recent.push({ method: req.method, url: req.url, host: req.headers.host, body });
      if (log.recent.length > MAX_RECENT) log.recent.shift();
      const fail = Number(url.searchParams.get("fail") ?? "0");
      const status =
        fail > 0 && random() * 100 < fail ? 503 : Number(url.searchParams.get("status") ?? "200");
      const answer = () =>
        json(res, status, {
          service: name,
          replica,
          method: req.method,
          url: req.url,
          host: req.headers.host,
          headers: req.headers,
          body,
        });
      const delay = Number(url.searchParams.get("delay") ?? "0");
      if (delay > 0) {
        const t = setTimeout(answer, delay);
        res.on("close", () => clearTimeout(t));
      } else answer();
    });
  } else if (path === "/_log") {
    json(res, 200, log);
  } else if (path === "/_reset" && req.method === "POST") {
    log.seen = 0;
    log.shadow = 0;
    log.recent = [];
    json(res, 200, { ok: true });
  } else if (path === "/healthz") {
    res.end("ok\n");
  } else if (path === "/whoami") {
    json(res, 200, { service: name, replica, url: req.url, requests });
  } else if (path === "/echo") {
    res.writeHead(200, { "content-type": req.headers["content-type"] ?? "application/octet-stream" });
    req.pipe(res);
  } else if (path === "/big" || path.startsWith("/big/")) {
    const mb = Number(path.startsWith("/big/") ? path.slice(5) : (url.searchParams.get("mb") ?? "1"));
    const total = Math.round(mb * 1024 * 1024);
    const chunks = Math.ceil(total / CHUNK);
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": total });
    let i = 0;
    stats.bigWritten = 0;
    const pump = () => {
      while (i < chunks) {
        const len = Math.min(CHUNK, total - i * CHUNK);
        const ok = res.write(patternChunk(i, len));
        stats.bigWritten += len;
        i++;
        if (!ok) {
          res.once("drain", pump);
          return;
        }
      }
      res.end();
    };
    pump();
  } else if (path === "/sink") {
    const h = createHash("sha256");
    let paused = false;
    stats.sinkRead = 0;
    req.on("data", (c) => {
      h.update(c);
      stats.sinkRead += c.length;
      if (!paused && stats.sinkRead >= PAUSE_AFTER) {
        paused = true;
        req.pause();
        setTimeout(() => req.resume(), PAUSE_MS);
      }
    });
    req.on("end", () => json(res, 200, { bytes: stats.sinkRead, sha256: h.digest("hex") }));
  } else if (path === "/stats") {
    json(res, 200, stats);
  } else if (path === "/chunked") {
    res.writeHead(200, { "content-type": "text/plain" });
    let n = 0;
    const t = setInterval(() => {
      res.write(`chunk ${n} ${"x".repeat(n * 100)}\n`);
      if (++n === 10) {
        clearInterval(t);
        res.end("end\n");
      }
    }, 5);
    res.on("close", () => clearInterval(t));
  } else if (path === "/slow" || path.startsWith("/slow/")) {
    const ms = Number(path.startsWith("/slow/") ? path.slice(6) : (url.searchParams.get("ms") ?? "1000"));
    const t = setTimeout(() => json(res, 200, { slept: ms, replica }), ms);
    res.on("close", () => clearTimeout(t));
  } else if (path === "/public" || path.startsWith("/admin/")) {
    req.resume();
    req.on("end", () => json(res, 200, { path, method: req.method, service: name, replica }));
  } else {
    req.resume();
    json(res, 404, { error: "no such path", path });
  }
});

const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 });
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on("error", () => {});
});
server.on("upgrade", (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
});

server.keepAliveTimeout = 30_000;
server.listen(Number(process.env.PORT ?? "0"), "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
