/**
 * HTTP/1.1 test app for the tracing e2e test: a link of a call chain.
 * env: PORT (0 = any), NAME (service), NEXT_PORT (optional: the local port
 * of its sidecar's upstream, the next link). Prints "listening PORT".
 *   GET /healthz        200 ok
 *   any /chain...       when NEXT_PORT is set, calls 127.0.0.1:NEXT_PORT with
 *                       the same method and path, passing on the trace headers
 *                       it received (traceparent, tracestate, b3, x-b3-*) as an
 *                       instrumented app would, and its authorization (so a
 *                       credential crosses every sidecar), nothing else; answers
 *                       {service, received, next} (received: the trace headers
 *                       it got; next: the next link's answer, or its status)
 *   any other path      {service, received}; ?status=N answers N, ?delay=MS
 *                       waits first
 */
import { createServer, request } from "node:http";

const name = process.env.NAME ?? "app";
const nextPort = process.env.NEXT_PORT ? Number(process.env.NEXT_PORT) : undefined;
const TRACE_HEADERS = [
  "traceparent",
  "tracestate",
  "b3",
  "x-b3-traceid",
  "x-b3-spanid",
  "x-b3-parentspanid",
  "x-b3-sampled",
  "x-b3-flags",
];

function traceHeaders(headers) {
  const out = {};
  for (const h of TRACE_HEADERS) if (headers[h] !== undefined) out[h] = headers[h];
  return out;
}

function json(res, status, body) {
  const s = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(s) });
  res.end(s);
}

function callNext(method, path, headers) {
  return new Promise((resolve) => {
    const req = request(
      { host: "127.0.0.1", port: nextPort, method, path, headers, timeout: 10_000 },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let body;
          try {
            body = JSON.parse(text);
          } catch {
            body = text;
          }
          resolve({ status: res.statusCode, body });
        });
      },
    );
    req.on("error", (e) => resolve({ status: 0, error: e.message }));
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end();
  });
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  req.resume();
  req.on("end", async () => {
    if (url.pathname === "/healthz") {
      res.end("ok");
      return;
    }
    const received = traceHeaders(req.headers);
    if (url.pathname.startsWith("/chain") && nextPort !== undefined) {
      const auth = req.headers.authorization;
      const next = await callNext(req.method ?? "GET", req.url ?? "/", {
        ...received,
        ...(auth !== undefined ? { authorization: auth } : {}),
      });
      json(res, next.status === 200 ? 200 : 502, { service: name, received, next });
      return;
    }
    const delay = Number(url.searchParams.get("delay") ?? "0");
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    json(res, Number(url.searchParams.get("status") ?? "200"), { service: name, received });
  });
});

server.listen(Number(process.env.PORT ?? "0"), "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
