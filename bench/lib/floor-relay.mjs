// The platform floor: the least a Node.js sidecar pair can do on this
// machine with Weft's architecture and none of its features. The "front"
// is a node:http server whose every request goes to the "back" over mTLS
// (TLS 1.3, the same Weft-CA certificates the bench issues), which relays
// it to the app through an undici Pool. Two hops, as Weft has two:
//   h1  kept-alive HTTP/1.1 connections (an undici Pool over TLS; the back
//       is an https server), what Weft uses for HTTP/1.1 apps;
//   h2  one HTTP/2 session (the back is an HTTP/2 secure server), what Weft
//       uses for gRPC and HTTP/2, and used for everything before.
// Bodies are relayed by piping, as a proxy must (it cannot buffer), headers
// copied, status relayed. No routing, authorization, metrics, retries,
// timeouts or logging.
//
//   node floor-relay.mjs front PORT BACK_PORT CRT CA h1|h2
//   node floor-relay.mjs back PORT APP_PORT CRT CA h1|h2
// Prints "floor ready port=P" once listening.
import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import { Pool } from "undici";

const [role, portArg, nextArg, crt, ca, hop = "h2"] = process.argv.slice(2);
const pem = readFileSync(crt, "utf8");
const key = pem.slice(pem.indexOf("-----BEGIN PRIVATE KEY-----"));
const cert = pem.slice(0, pem.indexOf("-----BEGIN PRIVATE KEY-----"));
const tls = { key, cert, ca: readFileSync(ca), minVersion: "TLSv1.3" };
// Exit normally on SIGTERM, so that `node --cpu-prof` writes its profile.
process.once("SIGTERM", () => process.exit(0));
const HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "host"]);

function listen(server) {
  server.listen(Number(portArg), "127.0.0.1", () =>
    process.stdout.write(`floor ready port=${server.address().port}\n`),
  );
}

/** Relays an undici response to a node:http or HTTP/2 server response. */
function fromUndici(r, respond, sink) {
  const out = {};
  for (const [k, v] of Object.entries(r.headers)) if (!HOP.has(k)) out[k] = v;
  respond(r.statusCode, out);
  r.body.pipe(sink);
}

/** A node:http request handler that relays every request through an undici Pool. */
function viaPool(pool) {
  return (req, res) => {
    const headers = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k)) headers[k] = v;
    const bodyless =
      req.headers["content-length"] === undefined && req.headers["transfer-encoding"] === undefined;
    pool
      .request({ method: req.method, path: req.url, headers, body: bodyless ? null : req })
      .then((r) => fromUndici(r, (status, h) => res.writeHead(status, h), res))
      .catch(() => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
  };
}

if (role === "front" && hop === "h1") {
  const peer = new Pool(`https://127.0.0.1:${nextArg}`, {
    connections: 1024,
    connect: {
      ...tls,
      servername: "localhost",
      checkServerIdentity: () => undefined,
      ALPNProtocols: ["http/1.1"],
    },
  });
  const server = http.createServer(viaPool(peer));
  server.keepAliveTimeout = 60_000;
  listen(server);
} else if (role === "front") {
  let session;
  const peer = () => {
    if (!session || session.closed || session.destroyed) {
      session = http2.connect(`https://127.0.0.1:${nextArg}`, {
        ...tls,
        servername: "localhost",
        checkServerIdentity: () => undefined,
      });
      session.on("error", () => {});
    }
    return session;
  };
  const server = http.createServer((req, res) => {
    const headers = { ":method": req.method, ":path": req.url, ":authority": req.headers.host ?? "app" };
    for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k)) headers[k] = v;
    const bodyless =
      req.headers["content-length"] === undefined && req.headers["transfer-encoding"] === undefined;
    const stream = peer().request(headers, { endStream: bodyless });
    if (!bodyless) req.pipe(stream);
    stream.on("response", (h) => {
      const out = {};
      for (const [k, v] of Object.entries(h)) if (k[0] !== ":") out[k] = v;
      res.writeHead(Number(h[":status"]), out);
      stream.pipe(res);
    });
    stream.on("error", () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
  });
  server.keepAliveTimeout = 60_000;
  listen(server);
} else if (hop === "h1") {
  const app = new Pool(`http://127.0.0.1:${nextArg}`, { connections: 1024 });
  const server = https.createServer({ ...tls, requestCert: true, rejectUnauthorized: true }, viaPool(app));
  server.keepAliveTimeout = 60_000;
  listen(server);
} else {
  const app = new Pool(`http://127.0.0.1:${nextArg}`, { connections: 1024 });
  const server = http2.createSecureServer({ ...tls, requestCert: true, rejectUnauthorized: true });
  server.on("stream", (stream, h, flags) => {
    const headers = {};
    for (const [k, v] of Object.entries(h)) if (k[0] !== ":") headers[k] = v;
    const ended = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    app
      .request({ method: h[":method"], path: h[":path"], headers, body: ended ? null : stream })
      .then((r) => fromUndici(r, (status, out) => stream.respond({ ...out, ":status": status }), stream))
      .catch(() => {
        if (!stream.headersSent) stream.respond({ ":status": 502 });
        stream.end();
      });
  });
  listen(server);
}
