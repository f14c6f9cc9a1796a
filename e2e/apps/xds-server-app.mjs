/**
 * A proxyless gRPC server for the xDS e2e tests: @grpc/grpc-js-xds's
 * XdsServer with XdsServerCredentials (plaintext fallback), configured
 * from GRPC_XDS_BOOTSTRAP (`weft bootstrap grpc`): its Listener (mTLS from
 * the bootstrap's certificate provider, the Intention as RBAC) comes from
 * the control plane. Run it with GRPC_XDS_EXPERIMENTAL_RBAC=true.
 * weft.e2e.Echo/Unary (echo.proto) answers with `replica` = REPLICA and
 * `message` = the caller's URI SAN (its SPIFFE ID, "unknown" without one).
 * Binds HOST:PORT (default 127.0.0.1, PORT required: the registered port)
 * and prints "listening PORT" once it serves, i.e. once its Listener came.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as xds from "@grpc/grpc-js-xds";
import * as loader from "@grpc/proto-loader";

xds.register();
const here = dirname(fileURLToPath(import.meta.url));
const def = loader.loadSync(join(here, "echo.proto"), { keepCase: true, longs: Number, defaults: true });
const pkg = grpc.loadPackageDefinition(def);
const replica = process.env.REPLICA ?? "0";
const host = process.env.HOST ?? "127.0.0.1";
const port = Number(process.env.PORT);
if (!(port > 0)) {
  process.stderr.write("PORT is required (the instance's registered port)\n");
  process.exit(2);
}

const server = new xds.XdsServer({ drainGraceTimeMs: 1000 });
server.addService(pkg.weft.e2e.Echo.service, {
  Unary(call, cb) {
    const san = call.getAuthContext().sslPeerCertificate?.subjectaltname ?? "";
    const caller = /URI:(spiffe:\/\/[^,\s]+)/.exec(san)?.[1] ?? "unknown";
    cb(null, { message: caller, index: 0, payload: call.request.payload, replica });
  },
});
server.bindAsync(
  `${host}:${port}`,
  new xds.XdsServerCredentials(grpc.ServerCredentials.createInsecure()),
  (err, p) => {
    if (err) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    process.stdout.write(`listening ${p}\n`);
  },
);
process.on("SIGTERM", () => process.exit(0));
