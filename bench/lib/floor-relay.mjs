// The platform floor: the least a Node.js sidecar pair can do on this
// machine with Weft's architecture and none of its features. The "front"
// is a node:http server whose every request goes to the "back" over mTLS
// (TLS 1.3, the same Weft-CA certificates the bench issues), which relays
// it to the app through an undici Pool. Two hops, as Weft has two:
//   h1  kept-alive HTTP/1.1 connections (an undici Pool over TLS; the back
//       is an https server), what Weft uses for HTTP/1.1 apps;
//   h2  one HTTP/2 session (the back is an HTTP/2 secure server), what Weft
//       uses for gRPC and HTTP/2, and used for everything before.
//   raw no node:http and no undici at all: a hand parser on plain net / tls
//       sockets, kept-alive connections reused LIFO, Content-Length bodies
//       only, one request at a time per connection; the least JavaScript a
//       relay of this shape can run (Weft's own HTTP/1.1 front and client,
//       packages/dataplane/src/http/h1-fast/, work this way with every check).
// Bodies are relayed by piping, as a proxy must (it cannot buffer), headers
// copied, status relayed. No routing, authorization, metrics, retries,
// timeouts or logging.
//
//   node floor-relay.mjs front PORT BACK_PORT CRT CA h1|h2|raw
//   node floor-relay.mjs back PORT APP_PORT CRT CA h1|h2|raw
// Prints "floor ready port=P" once listening.
import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import net from "node:net";
import nodeTls from "node:tls";
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

/** The raw relay: parses each head, relays head and Content-Length body over a pooled connection. */
function rawRelay(connectNext) {
  const idle = [];
  const HOP_RAW = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"]);
  const parseHead = (buf, end) => {
    const lines = buf.toString("latin1", 0, end).split("\r\n");
    const headers = {};
    for (let i = 1; i < lines.length; i++) {
      const c = lines[i].indexOf(":");
      headers[lines[i].slice(0, c).toLowerCase()] = lines[i].slice(c + 1).trim();
    }
    return { line: lines[0], headers };
  };
  const serialize = (line, headers) => {
    let s = `${line}\r\n`;
    for (const k in headers) if (!HOP_RAW.has(k)) s += `${k}: ${headers[k]}\r\n`;
    return `${s}\r\n`;
  };
  return (down) => {
    let buf;
    let busy = false;
    down.on("error", () => {});
    const next = () => {
      if (busy || buf === undefined) return;
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const req = parseHead(buf, end);
      const total = end + 4 + Number(req.headers["content-length"] ?? 0);
      if (buf.length < total) return;
      const head = Buffer.from(serialize(req.line, req.headers), "latin1");
      const body = buf.subarray(end + 4, total);
      buf = total === buf.length ? undefined : buf.subarray(total);
      busy = true;
      const up = idle.pop() ?? connectNext().on("error", () => {});
      let rbuf;
      let need = -1;
      const onData = (chunk) => {
        if (need >= 0) {
          down.write(chunk);
          need -= chunk.length;
        } else {
          rbuf = rbuf === undefined ? chunk : Buffer.concat([rbuf, chunk]);
          const e = rbuf.indexOf("\r\n\r\n");
          if (e < 0) return;
          const res = parseHead(rbuf, e);
          need = Number(res.headers["content-length"] ?? 0) - (rbuf.length - e - 4);
          down.write(
            Buffer.concat([Buffer.from(serialize(res.line, res.headers), "latin1"), rbuf.subarray(e + 4)]),
          );
        }
        if (need > 0) return;
        up.off("data", onData);
        idle.push(up);
        busy = false;
        next();
      };
      up.on("data", onData);
      up.write(body.length > 0 ? Buffer.concat([head, body]) : head);
    };
    down.on("data", (chunk) => {
      buf = buf === undefined ? chunk : Buffer.concat([buf, chunk]);
      next();
    });
  };
}

if (hop === "raw") {
  const handle =
    role === "front"
      ? rawRelay(() =>
          nodeTls.connect({
            ...tls,
            port: Number(nextArg),
            host: "127.0.0.1",
            servername: "localhost",
            checkServerIdentity: () => undefined,
            ALPNProtocols: ["http/1.1"],
          }),
        )
      : rawRelay(() => net.connect(Number(nextArg), "127.0.0.1"));
  listen(
    role === "front"
      ? net.createServer({ noDelay: true }, handle)
      : nodeTls.createServer({ ...tls, requestCert: true, rejectUnauthorized: true }, handle),
  );
} else if (role === "front" && hop === "h1") {
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
