/**
 * `GET /v1/proxy/stream/:id`: the proxy config stream as NDJSON over a
 * long-lived HTTP response. One line per ProxyStreamMessage: the current
 * snapshot at once, then each new version, and a heartbeat every
 * PROXY_STREAM_HEARTBEAT_MS so the proxy can tell a dead control plane from
 * a quiet one. The watch is released when the client goes away.
 */
import type { ServerResponse } from "node:http";
import { PROXY_STREAM_HEARTBEAT_MS, type ProxyStreamMessage } from "@weft/api";
import { systemClock } from "@weft/core";
import type { ProxyStreams } from "../snapshot/proxy-streams.js";
import { sendError } from "./respond.js";

export function streamSnapshots(
  proxies: ProxyStreams,
  instanceId: string,
  res: ServerResponse,
  signal: AbortSignal,
  log?: Parameters<typeof sendError>[2],
  heartbeatMs = PROXY_STREAM_HEARTBEAT_MS,
): void {
  let watch: { dispose(): void } | undefined;
  let heartbeat: { cancel(): void } | undefined;
  const stop = (): void => {
    heartbeat?.cancel();
    watch?.dispose();
  };
  const write = (msg: ProxyStreamMessage): boolean => {
    if (res.writableEnded || res.destroyed) return true;
    return res.write(`${JSON.stringify(msg)}\n`);
  };
  try {
    watch = proxies.open(instanceId, {
      write: (msg) => {
        if (!res.headersSent) {
          res.writeHead(200, {
            "content-type": "application/x-ndjson",
            "cache-control": "no-store",
          });
        }
        return write(msg);
      },
      onDrain: (fn) => res.on("drain", fn),
      end: () => {
        heartbeat?.cancel();
        if (!res.headersSent) res.writeHead(200, { "content-type": "application/x-ndjson" });
        if (!res.writableEnded) res.end();
      },
    });
  } catch (err) {
    sendError(res, err, log);
    return;
  }
  // Headers go out now even when the first snapshot could not be built, so the proxy knows it is connected.
  if (!res.headersSent) {
    res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
    res.flushHeaders();
  }
  heartbeat = systemClock.setInterval(() => write({ type: "heartbeat" }), heartbeatMs);
  if (signal.aborted) stop();
  else signal.addEventListener("abort", stop, { once: true });
}
