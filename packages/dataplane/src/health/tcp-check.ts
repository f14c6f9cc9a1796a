/**
 * TCP health check: the app is passing when a connection to its port opens.
 * The socket is closed at once; nothing is written.
 */
import { connect } from "node:net";
import { boundedProbe } from "./bounded-probe.js";
import {
  errorText,
  hostPort,
  type ProbeOptions,
  type ProbeResult,
  type ProbeTarget,
  result,
} from "./result.js";

/** Never rejects. `timeoutMs` bounds the connect. */
export function probeTcp(
  target: ProbeTarget,
  timeoutMs: number,
  opts: ProbeOptions = {},
): Promise<ProbeResult> {
  const label = `TCP connect ${hostPort(target)}`;
  return boundedProbe(label, timeoutMs, opts, (p) => {
    const socket = connect({ host: target.host, port: target.port });
    p.onSettle(() => socket.destroy());
    socket.once("connect", () => p.finish(result("passing", `${label}: Success`)));
    socket.on("error", (e) => p.fail(errorText(e)));
  });
}
