/**
 * A proxyless gRPC server with the mesh's mTLS, for the xDS e2e tests: its
 * SPIFFE certificate, key and the mesh roots come from CERT_DIR (cert.pem,
 * key.pem, ca.pem, as `weft bootstrap grpc --cert-dir` writes them); a
 * client certificate signed by the mesh is required. weft.e2e.Echo/Unary
 * (echo.proto) answers with `replica` = REPLICA and `message` = the
 * caller's URI SAN (its SPIFFE ID). Listens on 127.0.0.1:PORT; prints
 * "listening PORT".
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";

const here = dirname(fileURLToPath(import.meta.url));
const def = loader.loadSync(join(here, "echo.proto"), { keepCase: true, longs: Number, defaults: true });
const pkg = grpc.loadPackageDefinition(def);
const replica = process.env.REPLICA ?? "0";
const dir = process.env.CERT_DIR ?? ".";
const read = (f) => readFileSync(join(dir, f));

const server = new grpc.Server();
server.addService(pkg.weft.e2e.Echo.service, {
  Unary(call, cb) {
    const san = call.getAuthContext().sslPeerCertificate?.subjectaltname ?? "";
    const caller = /URI:(spiffe:\/\/[^,\s]+)/.exec(san)?.[1] ?? "unknown";
    cb(null, { message: caller, index: 0, payload: call.request.payload, replica });
  },
});
const creds = grpc.ServerCredentials.createSsl(
  read("ca.pem"),
  [{ cert_chain: read("cert.pem"), private_key: read("key.pem") }],
  true,
);
server.bindAsync(`127.0.0.1:${process.env.PORT ?? "0"}`, creds, (err, port) => {
  if (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`listening ${port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
