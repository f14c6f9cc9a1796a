// The benchmark's upstream apps, in one process so one PID carries the app
// side's CPU: an HTTP/1.1 server (GET / -> 32 bytes, GET /64k -> 64 KiB),
// an h2c server (same paths), a grpc-js unary server (/bench.Bench/Echo ->
// 32 bytes, raw-buffer codec: no protobuf work to measure) and a TCP echo.
// Every listener on 127.0.0.1:0; prints one line when all serve:
//   bench apps ready http=P h2=P grpc=P tcp=P
// Run as a child: node bench/lib/apps.mjs
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import * as grpc from "@grpc/grpc-js";
import { echoServer } from "./grpc-echo.mjs";

const SMALL = Buffer.alloc(32, "w");
const LARGE = Buffer.alloc(64 * 1024, "W");

const listen = (server) =>
  new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => ok(server.address().port));
  });

// --- HTTP/1.1: long keep-alive so a connection is never closed mid-run.
const h1 = http.createServer((req, res) => {
  const body = req.url === "/64k" ? LARGE : SMALL;
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
  res.end(body);
  req.resume();
});
h1.keepAliveTimeout = 120_000;
h1.headersTimeout = 125_000;
h1.requestTimeout = 0;
h1.maxRequestsPerSocket = 0;

// --- h2c (prior knowledge), the same paths.
const h2 = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
h2.on("stream", (stream, headers) => {
  const body = headers[":path"] === "/64k" ? LARGE : SMALL;
  stream.respond({
    ":status": 200,
    "content-type": "application/octet-stream",
    "content-length": body.length,
  });
  stream.end(body);
  stream.resume();
});
h2.on("sessionError", () => {});

// --- TCP echo: every chunk back as it arrives.
const tcp = net.createServer({ noDelay: true }, (s) => {
  s.on("data", (d) => s.write(d));
  s.on("error", () => s.destroy());
});

// --- gRPC unary: /bench.Bench/Echo with a raw-buffer codec (grpc-echo.mjs).
const grpcServer = echoServer();
const grpcPort = await new Promise((ok, fail) =>
  grpcServer.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, port) =>
    e ? fail(e) : ok(port),
  ),
);

const [httpPort, h2Port, tcpPort] = await Promise.all([listen(h1), listen(h2), listen(tcp)]);
process.stdout.write(`bench apps ready http=${httpPort} h2=${h2Port} grpc=${grpcPort} tcp=${tcpPort}\n`);
process.on("SIGTERM", () => process.exit(0));
