// The platform floor: the least a Node.js sidecar pair can do on this
// machine with Weft's architecture and none of its features. The "front"
// is a node:http server whose every request goes out as one HTTP/2 stream
// over one mTLS session (TLS 1.3, the same Weft-CA certificates the bench
// issues); the "back" is an HTTP/2 secure server relaying each stream to
// the app through an undici Pool. Bodies are relayed by piping, as a proxy
// must (it cannot buffer), headers copied, status relayed. No routing,
// authorization, metrics, retries, timeouts or logging.
//
//   node floor-relay.mjs front PORT BACK_PORT CRT CA
//   node floor-relay.mjs back PORT APP_PORT CRT CA
// Prints "floor ready port=P" once listening.
import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import { Pool } from "undici";

const [role, portArg, nextArg, crt, ca] = process.argv.slice(2);
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

if (role === "front") {
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
} else {
  const app = new Pool(`http://127.0.0.1:${nextArg}`, { connections: 1024 });
  const server = http2.createSecureServer({ ...tls, requestCert: true, rejectUnauthorized: true });
  server.on("stream", (stream, h, flags) => {
    const headers = {};
    for (const [k, v] of Object.entries(h)) if (k[0] !== ":") headers[k] = v;
    const ended = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    app
      .request({ method: h[":method"], path: h[":path"], headers, body: ended ? null : stream })
      .then((r) => {
        const out = { ":status": r.statusCode };
        for (const [k, v] of Object.entries(r.headers)) if (!HOP.has(k)) out[k] = v;
        stream.respond(out);
        r.body.pipe(stream);
      })
      .catch(() => {
        if (!stream.headersSent) stream.respond({ ":status": 502 });
        stream.end();
      });
  });
  listen(server);
}
