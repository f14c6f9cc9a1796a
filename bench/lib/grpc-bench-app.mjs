// The proxyless bench's server app, in one process so one PID carries the
// app's CPU for every line: a grpc-js server answering /bench.Bench/Echo
// (raw-buffer codec, 32 bytes back, as bench/lib/apps.mjs) on two ports:
//   plain: plaintext (h2c), for direct calls and behind the proxies;
//   tls:   the mesh's mTLS with the certificate `weft bootstrap grpc
//          --cert-dir` wrote (CERT_DIR/cert.pem, key.pem, ca.pem), a client
//          certificate signed by the mesh required, as a proxyless server
//          serves (e2e/apps/grpc-tls-app.mjs). Direct mTLS and proxyless
//          callers reach this one.
// Env: TLS_PORT (the port registered in the catalog), CERT_DIR.
// Prints: grpc bench app ready plain=P tls=Q
//   node bench/lib/grpc-bench-app.mjs
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { echoServer } from "./grpc-echo.mjs";

const dir = process.env.CERT_DIR ?? ".";
const read = (f) => readFileSync(join(dir, f));

const server = echoServer();
const bind = (addr, creds) =>
  new Promise((ok, fail) => server.bindAsync(addr, creds, (e, port) => (e ? fail(e) : ok(port))));

const plain = await bind("127.0.0.1:0", grpc.ServerCredentials.createInsecure());
const tls = await bind(
  `127.0.0.1:${process.env.TLS_PORT ?? "0"}`,
  grpc.ServerCredentials.createSsl(
    read("ca.pem"),
    [{ cert_chain: read("cert.pem"), private_key: read("key.pem") }],
    true,
  ),
);
process.stdout.write(`grpc bench app ready plain=${plain} tls=${tls}\n`);
process.on("SIGTERM", () => process.exit(0));
