import type { Server } from "node:net";
import type { DataplaneLogger } from "../logger.js";

/**
 * A cap on the open connections of each sidecar listener (HARDENING: "a cap
 * on connections"): beyond it, a new connection is closed on arrival, before
 * any TLS or HTTP work, so a flood cannot exhaust memory or file descriptors
 * while the connections already open are served. With one connection per
 * concurrent request between sidecars, the default is generous.
 * WEFT_MAX_CONNECTIONS sets another (a positive integer).
 */

export const DEFAULT_MAX_CONNECTIONS = 10_000;
/** Drops are logged at most this often (a flood must not flood the log). */
const LOG_EVERY_MS = 10_000;

export function maxConnections(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.WEFT_MAX_CONNECTIONS;
  if (v === undefined || !/^[1-9][0-9]{0,8}$/.test(v)) return DEFAULT_MAX_CONNECTIONS;
  return Number(v);
}

/** Applies the cap to `server`; `onDrop` counts each connection closed for it. */
export function capConnections(
  server: Server,
  listener: "inbound" | "outbound",
  limit: number,
  onDrop: () => void,
  logger?: DataplaneLogger,
): void {
  server.maxConnections = limit;
  let lastLog = 0;
  let since = 0;
  server.on("drop", () => {
    onDrop();
    since++;
    const now = Date.now();
    if (now - lastLog < LOG_EVERY_MS) return;
    logger?.warn({ listener, limit, dropped: since }, "connection cap reached: new connections closed");
    lastLog = now;
    since = 0;
  });
}
