/**
 * `weft tap`'s source: the admin listener's `GET /tap` streams one NDJSON
 * line per request the sidecar handles (a TapRecord: time, direction,
 * source and destination service, method and path when the events carry
 * them, status, latency, flags, upstream endpoint). Never a body, a header
 * value or a query string.
 *
 * Bounded: at most `maxSubscribers` streams; each may have at most
 * `maxBufferedBytes` waiting in its socket. A reader that falls behind
 * loses records (counted per stream and in total) and, once it catches up,
 * gets a `{"dropped": N}` line saying how many. Records are built only
 * while someone listens, so an untapped sidecar pays one branch per request.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { EdgeDirection, TapRecord } from "@weft/api/client";

export interface TapHubOptions {
  /** Default 8. */
  maxSubscribers?: number;
  /** Per subscriber. Default 64 KiB. */
  maxBufferedBytes?: number;
  /** A newline every this often, so a dead reader is noticed. Default 15 s. */
  keepAliveMs?: number;
}

/** What the tap reads of a request event; method and path only when the event carries them. */
export interface TappedRequest {
  status: number;
  flags: string;
  durationMs: number;
  method?: string;
  path?: string;
  endpointId?: string;
}

interface Subscriber {
  res: ServerResponse;
  dropped: number;
}

const MAX_PATH = 256;

export class TapHub {
  private readonly subs = new Set<Subscriber>();
  private readonly maxSubscribers: number;
  private readonly maxBuffered: number;
  private readonly keepAliveMs: number;
  /** Records not delivered to some subscriber, all time. */
  droppedTotal = 0;

  constructor(o: TapHubOptions = {}) {
    this.maxSubscribers = o.maxSubscribers ?? 8;
    this.maxBuffered = o.maxBufferedBytes ?? 64 * 1024;
    this.keepAliveMs = o.keepAliveMs ?? 15_000;
  }

  get subscribers(): number {
    return this.subs.size;
  }

  /** Publishes one request to every subscriber. Never throws. */
  record(direction: EdgeDirection, source: string, destination: string, e: TappedRequest): void {
    if (this.subs.size === 0) return;
    const rec: TapRecord = {
      time: new Date().toISOString(),
      direction,
      source,
      destination,
      status: e.status,
      latencyMs: Math.round(e.durationMs * 1000) / 1000,
      flags: e.flags === "" ? "-" : e.flags,
    };
    if (e.method !== undefined) rec.method = e.method;
    if (e.path !== undefined) {
      const q = e.path.indexOf("?");
      const p = q < 0 ? e.path : e.path.slice(0, q);
      rec.path = p.length > MAX_PATH ? `${p.slice(0, MAX_PATH)}...` : p;
    }
    if (e.endpointId !== undefined) rec.endpoint = e.endpointId;
    this.publish(`${JSON.stringify(rec)}\n`);
  }

  private publish(line: string): void {
    for (const s of this.subs) {
      const res = s.res;
      if (res.destroyed || res.writableEnded) continue;
      if (res.writableLength > this.maxBuffered) {
        s.dropped += 1;
        this.droppedTotal += 1;
        continue;
      }
      if (s.dropped > 0) {
        res.write(`${JSON.stringify({ dropped: s.dropped })}\n`);
        s.dropped = 0;
      }
      res.write(line);
    }
  }

  /** Serves `GET /tap`: holds the response open and streams records until the reader or the hub closes. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.subs.size >= this.maxSubscribers) {
      const body = `too many tap streams (at most ${this.maxSubscribers})\n`;
      res.writeHead(503, {
        "content-type": "text/plain",
        "content-length": Buffer.byteLength(body),
        "retry-after": "1",
      });
      res.end(body);
      return;
    }
    res.writeHead(200, {
      "content-type": "application/x-ndjson",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    // Headers out now: the reader knows it is connected before the first request passes.
    res.flushHeaders();
    const sub: Subscriber = { res, dropped: 0 };
    this.subs.add(sub);
    const ping = setInterval(() => {
      if (res.writableLength <= this.maxBuffered) res.write("\n");
    }, this.keepAliveMs);
    ping.unref();
    res.on("close", () => {
      clearInterval(ping);
      this.subs.delete(sub);
    });
  }

  /** Ends every stream (the sidecar stops: an open tap must not hold the admin listener open). */
  close(): void {
    for (const s of this.subs) s.res.end();
    this.subs.clear();
  }
}
