/**
 * gRPC test app (@grpc/grpc-js, insecure h2c) for the sidecar e2e tests.
 * env: PORT (0 = any), REPLICA. Prints "listening PORT". Serves
 * weft.e2e.Echo (echo.proto): Unary, ServerStream (count replies),
 * ClientStream (joins the messages, sums payload sizes), Bidi (echoes each),
 * Fail (NOT_FOUND with a message naming the request); and
 * grpc.health.v1.Health/Check (SERVING).
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";

const here = dirname(fileURLToPath(import.meta.url));
const def = loader.loadSync([join(here, "echo.proto"), join(here, "health.proto")], {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
});
const pkg = grpc.loadPackageDefinition(def);
const replica = process.env.REPLICA ?? "0";

const server = new grpc.Server({ "grpc.max_receive_message_length": 16 * 1024 * 1024 });
server.addService(pkg.weft.e2e.Echo.service, {
  Unary(call, cb) {
    cb(null, { message: call.request.message, index: 0, payload: call.request.payload, replica });
  },
  ServerStream(call) {
    const n = call.request.count;
    let i = 0;
    const pump = () => {
      while (i < n) {
        const ok = call.write({ message: `${call.request.message} ${i}`, index: i, replica });
        i++;
        if (!ok) {
          call.once("drain", pump);
          return;
        }
      }
      call.end();
    };
    pump();
  },
  ClientStream(call, cb) {
    const parts = [];
    let bytes = 0;
    call.on("data", (m) => {
      parts.push(m.message);
      bytes += m.payload.length;
    });
    call.on("end", () =>
      cb(null, {
        message: parts.join(","),
        index: parts.length,
        payload: Buffer.from(String(bytes)),
        replica,
      }),
    );
  },
  Bidi(call) {
    let i = 0;
    call.on("data", (m) =>
      call.write({ message: `echo ${m.message}`, index: i++, payload: m.payload, replica }),
    );
    call.on("end", () => call.end());
  },
  Fail(call, cb) {
    cb({ code: grpc.status.NOT_FOUND, details: `no such thing: ${call.request.message} (é ✓)` });
  },
});
server.addService(pkg.grpc.health.v1.Health.service, {
  Check(_call, cb) {
    cb(null, { status: "SERVING" });
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
