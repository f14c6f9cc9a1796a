/**
 * A proxyless gRPC client for the xDS e2e tests: @grpc/grpc-js-xds with
 * GRPC_XDS_BOOTSTRAP from the environment, one channel to `xds:///$TARGET`
 * (weft.e2e.Echo, echo.proto); with XDS_CREDS=1 the channel uses xDS
 * credentials (mTLS as the control plane's clusters say, certificates from
 * the bootstrap's file_watcher provider). Prints "ready" once started, then answers
 * each JSON line on stdin, {"id", "n", "method"?, "metadata"?, "deadlineMs"?, "concurrency"?, "staggerMs"?},
 * with one JSON line: {"id", "counts": {replica: n}, "errors": {grpcCode: n},
 * "details": [first few error messages], "messages": [first few reply messages]}. Calls run `concurrency` (default 8) at a time,
 * the workers starting `staggerMs` apart (default 0).
 */
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as xds from "@grpc/grpc-js-xds";
import * as loader from "@grpc/proto-loader";

xds.register();
const here = dirname(fileURLToPath(import.meta.url));
const def = loader.loadSync(join(here, "echo.proto"), { keepCase: true, longs: Number, defaults: true });
const pkg = grpc.loadPackageDefinition(def);
const creds =
  process.env.XDS_CREDS === "1"
    ? new xds.XdsChannelCredentials(grpc.credentials.createInsecure())
    : grpc.credentials.createInsecure();
// TARGET_ADDR: a plain host:port instead (an app calling its sidecar's outbound listener, h2c).
const target = process.env.TARGET_ADDR ?? `xds:///${process.env.TARGET ?? "echo"}`;
const client = new pkg.weft.e2e.Echo(target, creds);

function once(method, metadata, deadlineMs) {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata ?? {})) md.set(k, v);
  return new Promise((resolve) => {
    client[method]({ message: "hi" }, md, { deadline: Date.now() + deadlineMs }, (err, reply) =>
      resolve(
        err ? { code: err.code, details: err.details } : { replica: reply.replica, message: reply.message },
      ),
    );
  });
}

async function batch(cmd) {
  const counts = {};
  const errors = {};
  const details = [];
  const messages = [];
  let next = 0;
  const worker = async (i) => {
    if (cmd.staggerMs) await new Promise((r) => setTimeout(r, i * cmd.staggerMs));
    while (next < cmd.n) {
      next += 1;
      const r = await once(cmd.method ?? "Unary", cmd.metadata, cmd.deadlineMs ?? 5000);
      if (r.replica !== undefined) {
        counts[r.replica] = (counts[r.replica] ?? 0) + 1;
        if (messages.length < 3) messages.push(r.message);
      } else {
        errors[r.code] = (errors[r.code] ?? 0) + 1;
        if (details.length < 3) details.push(r.details);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(cmd.concurrency ?? 8, cmd.n) }, (_, i) => worker(i)));
  return { id: cmd.id, counts, errors, details, messages };
}

createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = JSON.parse(line);
  batch(cmd).then((r) => process.stdout.write(`${JSON.stringify(r)}\n`));
});
process.stdout.write("ready\n");
process.on("SIGTERM", () => process.exit(0));
