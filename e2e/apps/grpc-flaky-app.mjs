/**
 * A flaky gRPC echo server for the xDS retry e2e test: weft.e2e.Echo/Unary
 * (echo.proto) answers UNAVAILABLE to every other call it receives (the
 * 1st, 3rd, ...), and echoes the others with `replica` = REPLICA. Plaintext
 * h2c on 127.0.0.1:PORT (0 = any); prints "listening PORT".
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";

const here = dirname(fileURLToPath(import.meta.url));
const def = loader.loadSync(join(here, "echo.proto"), { keepCase: true, longs: Number, defaults: true });
const pkg = grpc.loadPackageDefinition(def);
const replica = process.env.REPLICA ?? "0";
let calls = 0;

const server = new grpc.Server();
server.addService(pkg.weft.e2e.Echo.service, {
  Unary(call, cb) {
    calls += 1;
    if (calls % 2 === 1) {
      cb({ code: grpc.status.UNAVAILABLE, details: `flaky: call ${calls} refused` });
      return;
    }
    cb(null, { message: call.request.message, index: calls, payload: call.request.payload, replica });
  },
});
server.bindAsync(
  `127.0.0.1:${process.env.PORT ?? "0"}`,
  grpc.ServerCredentials.createInsecure(),
  (err, port) => {
    if (err) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    process.stdout.write(`listening ${port}\n`);
  },
);
process.on("SIGTERM", () => process.exit(0));
