/**
 * TCP echo for the sidecar e2e tests. env: PORT (0 = any). Prints
 * "listening PORT". Echoes every byte; when the client half-closes (FIN) it
 * still writes "bye" and then ends its side, so a proxy that closes both
 * halves on the first FIN loses the "bye".
 */
import net from "node:net";

const server = net.createServer({ allowHalfOpen: true }, (s) => {
  s.on("error", () => {});
  // Echo with backpressure; our own FIN waits for the client's.
  s.pipe(s, { end: false });
  s.on("end", () => s.end("bye"));
});
server.listen(Number(process.env.PORT ?? "0"), "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
