import http from "node:http";
import type { Duplex } from "node:stream";
import { Flag, FlagSet } from "./flags.js";
import { HOP_BY_HOP, isInternalHeader } from "./headers.js";
import { rawLocalReply } from "./local-reply.js";

/**
 * HTTP/1.1 Upgrade (WebSocket and any `Connection: Upgrade`), which cannot
 * ride a multiplexed HTTP/2 session: each upgrade gets its own connection
 * to the next hop. Both directions are parsed by node:http — the request by
 * the listener's server, the answer by a ClientRequest on the upstream
 * socket — so only a real 101 turns the connection into a raw tunnel. Any
 * other answer is relayed as one response and the connection is closed:
 * otherwise a refused upgrade would leave a raw pipe to the app on which
 * later requests would bypass authorization. For the same reason bytes the
 * client sends before the 101 are held back until it arrives.
 */

const noop = (): void => {};
/** How long a connection we ended may linger before it is destroyed (lets the reply reach the client). */
const LINGER_MS = 5_000;

export interface UpgradeRequest {
  method: string;
  path: string;
  /** Flat name/value pairs in order, as node:http's rawHeaders (Connection and Upgrade included). */
  rawHeaders: string[];
}

export interface UpgradeRelayOptions {
  /** The client's socket, as the listener's "upgrade" event handed it over. */
  client: Duplex;
  /** Bytes the client sent after the request head. */
  clientHead: Buffer;
  /** A connected socket to the next hop (peer proxy or app). */
  upstream: Duplex;
  request: UpgradeRequest;
  /** Until the answer's head; none = no limit. */
  timeoutMs?: number;
  /** A tunnel without traffic either way for this long is closed. */
  idleTimeoutMs: number;
  maxHeaderSize: number;
}

export interface UpgradeResult {
  status: number;
  flags: FlagSet;
}

/** Ends a connection with a final message, and destroys it if the other side does not close. */
export function endWith(socket: Duplex, data: string): void {
  if (socket.destroyed) return;
  socket.end(data);
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}

/** Raw name/value pairs without the fields `drop` names (given the lowercase name). */
export function filterRaw(rawHeaders: readonly string[], drop: (name: string) => boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (!drop(name.toLowerCase())) out.push(name, rawHeaders[i + 1] as string);
  }
  return out;
}

/** Raw pairs without the mesh's own fields. */
export function withoutInternal(rawHeaders: readonly string[]): string[] {
  return filterRaw(rawHeaders, isInternalHeader);
}

function head(statusLine: string, pairs: readonly string[]): string {
  let out = `${statusLine}\r\n`;
  for (let i = 0; i + 1 < pairs.length; i += 2) out += `${pairs[i]}: ${pairs[i + 1]}\r\n`;
  return `${out}\r\n`;
}

/** Resolves when both connections are closed. Never rejects. */
export function relayUpgrade(opts: UpgradeRelayOptions): Promise<UpgradeResult> {
  const { client, upstream } = opts;
  return new Promise((resolve) => {
    const flags = new FlagSet();
    let status = 0;
    let answered = false;
    let timer: NodeJS.Timeout | undefined;
    let clientClosed = client.destroyed;
    let upstreamClosed = upstream.destroyed;
    const maybeDone = (): void => {
      if (!clientClosed || !upstreamClosed) return;
      clearTimeout(timer);
      resolve({ status, flags });
    };
    client.on("error", noop);
    upstream.on("error", noop);

    const req = http.request({
      createConnection: () => upstream,
      method: opts.request.method,
      path: opts.request.path,
      headers: opts.request.rawHeaders,
      setHost: false,
      insecureHTTPParser: false,
      maxHeaderSize: opts.maxHeaderSize,
    });

    const refuse = (httpStatus: number, text: string, flag: string): void => {
      answered = true;
      status = httpStatus;
      flags.add(flag);
      req.destroy();
      upstream.destroy();
      endWith(client, rawLocalReply(httpStatus, text, flag));
    };

    client.once("close", () => {
      clientClosed = true;
      if (!answered) {
        answered = true;
        flags.add(Flag.DownstreamConnectionTermination);
        req.destroy();
        upstream.destroy();
      }
      maybeDone();
    });
    upstream.once("close", () => {
      upstreamClosed = true;
      maybeDone();
    });

    req.on("error", () => {
      if (answered) {
        client.destroy();
        return;
      }
      refuse(503, "upstream reset before response headers", Flag.UpstreamConnectionTermination);
    });

    req.on("upgrade", (res: http.IncomingMessage, socket: Duplex, upHead: Buffer) => {
      if (answered) {
        socket.destroy();
        return;
      }
      answered = true;
      clearTimeout(timer);
      status = res.statusCode ?? 101;
      client.write(head(`HTTP/1.1 ${status} ${res.statusMessage ?? "Switching Protocols"}`, res.rawHeaders));
      if (upHead.length > 0) client.write(upHead);
      // Bytes the client sent early are held until the upgrade is accepted: sent before, they would
      // reach an app that refused the upgrade as a second, unauthorized request.
      if (opts.clientHead.length > 0) socket.write(opts.clientHead);
      tunnel(client, socket, opts.idleTimeoutMs);
    });

    req.on("response", (res: http.IncomingMessage) => {
      if (answered) {
        res.destroy();
        return;
      }
      answered = true;
      clearTimeout(timer);
      status = res.statusCode ?? 502;
      // Refused upgrade: one response, framed by Content-Length or by closing, then the connection ends.
      const pairs = filterRaw(res.rawHeaders, (name) => HOP_BY_HOP.has(name));
      pairs.push("connection", "close");
      client.write(head(`HTTP/1.1 ${status} ${res.statusMessage ?? ""}`, pairs));
      res.on("error", noop);
      res.once("close", () => {
        if (!res.complete) client.destroy();
        upstream.destroy();
      });
      res.once("end", () => endWith(client, ""));
      res.pipe(client, { end: false });
    });

    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        if (!answered) refuse(504, "upstream request timeout", Flag.UpstreamRequestTimeout);
      }, opts.timeoutMs);
    }
    req.end();
  });
}

/**
 * Two sockets piped both ways. Half-close is honoured (allowHalfOpen): an end
 * in one direction is forwarded as an end, the other keeps flowing; a socket
 * closes once both its directions are done. An error or abrupt close tears
 * down both.
 */
export function tunnel(a: Duplex, b: Duplex, idleTimeoutMs: number): void {
  for (const s of [a, b]) {
    (s as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
    s.on("error", () => {
      a.destroy();
      b.destroy();
    });
    const settable = s as Duplex & { setTimeout?: (ms: number, cb: () => void) => void };
    settable.setTimeout?.(idleTimeoutMs, () => {
      a.destroy();
      b.destroy();
    });
  }
  a.once("close", () => {
    if (!a.readableEnded) b.destroy();
  });
  b.once("close", () => {
    if (!b.readableEnded) a.destroy();
  });
  a.pipe(b);
  b.pipe(a);
}
