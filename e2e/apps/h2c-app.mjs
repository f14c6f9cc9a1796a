/**
 * Cleartext HTTP/2 (h2c, prior knowledge) echo for the sidecar e2e tests.
 * env: PORT (0 = any), REPLICA. Prints "listening PORT". Every stream is
 * answered 200 with its request body echoed and x-path / x-method /
 * x-replica headers; /healthz answers "ok".
 */
import http2 from "node:http2";

const replica = process.env.REPLICA ?? "0";
const server = http2.createServer();
server.on("stream", (stream, headers) => {
  stream.on("error", () => {});
  const path = String(headers[":path"]);
  if (path === "/healthz") {
    stream.respond({ ":status": 200 });
    stream.end("ok\n");
    return;
  }
  stream.respond({
    ":status": 200,
    "content-type": "application/octet-stream",
    "x-path": path,
    "x-method": String(headers[":method"]),
    "x-replica": replica,
    "x-protocol": "h2",
  });
  stream.pipe(stream);
});
server.on("sessionError", () => {});
server.listen(Number(process.env.PORT ?? "0"), "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
