/**
 * A slow gRPC echo server for the xDS circuit-breaker e2e test:
 * weft.e2e.Echo/Unary (echo.proto) answers after DELAY_MS (default 300)
 * with `replica` = REPLICA. Plaintext h2c on 127.0.0.1:PORT (0 = any);
 * prints "listening PORT".
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";

const here = dirname(fileURLToPath(import.meta.url));
const def = loader.loadSync(join(here, "echo.proto"), { keepCase: true, longs: Number, defaults: true });
const pkg = grpc.loadPackageDefinition(def);
const replica = process.env.REPLICA ?? "0";
const delayMs = Number(process.env.DELAY_MS ?? "300");

const server = new grpc.Server();
server.addService(pkg.weft.e2e.Echo.service, {
  Unary(call, cb) {
    setTimeout(
      () => cb(null, { message: call.request.message, index: 0, payload: call.request.payload, replica }),
      delayMs,
    );
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
