/**
 * TCP health check: the app is passing when a connection to its port opens.
 * The socket is closed at once; nothing is written.
 */
import { connect, type Socket } from "node:net";
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
  return new Promise<ProbeResult>((resolve) => {
    let settled = false;
    let socket: Socket | undefined;
    const finish = (r: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      socket?.destroy();
      resolve(r);
    };
    const onAbort = () => finish(result("critical", `${label}: cancelled`));
    const timer = setTimeout(
      () => finish(result("critical", `${label}: timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    timer.unref();
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });

    try {
      socket = connect({ host: target.host, port: target.port });
    } catch (e) {
      return finish(result("critical", `${label}: ${errorText(e)}`));
    }
    socket.once("connect", () => finish(result("passing", `${label}: Success`)));
    socket.on("error", (e) => finish(result("critical", `${label}: ${errorText(e)}`)));
  });
}
