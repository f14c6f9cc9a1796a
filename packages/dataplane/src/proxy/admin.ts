/**
 * The admin listener: `/ready` (200 when serving, 503 with the reasons
 * otherwise), `/config` (the snapshot in use and the stream state, no
 * secrets: the private key never leaves the identity object and the
 * certificate is shown by its public facts only), `/metrics` (Prometheus
 * text), `/tap` (a live NDJSON stream of requests, see tap.ts). GET and HEAD only; everything else is 404/405. Bind it to
 * loopback unless a scraper elsewhere needs it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

export interface AdminView {
  /** Reasons the proxy is not ready; empty when it is. */
  notReady(): string[];
  config(): unknown;
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Streams requests as NDJSON (tap.ts); absent = 404. */
  tap?(req: IncomingMessage, res: ServerResponse): void;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, {
    "content-type": type,
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(body),
  });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

export function createAdminServer(view: AdminView): Server {
  const server = createServer({
    maxHeaderSize: 8 * 1024,
    requestTimeout: 10_000,
    headersTimeout: 5_000,
    // Node checks these timeouts every 30 s by default: a slowloris would outlive them.
    connectionsCheckingInterval: 1_000,
  });
  server.maxHeadersCount = 64;
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      send(res, 405, "text/plain", "method not allowed\n");
      return;
    }
    if (path === "/ready") {
      const reasons = view.notReady();
      const body = JSON.stringify(reasons.length === 0 ? { ready: true } : { ready: false, reasons });
      send(res, reasons.length === 0 ? 200 : 503, "application/json", `${body}\n`);
    } else if (path === "/config") {
      send(res, 200, "application/json", `${JSON.stringify(view.config(), null, 2)}\n`);
    } else if (path === "/metrics") {
      view.metrics().then(
        (m) => send(res, 200, m.contentType, m.body),
        () => send(res, 500, "text/plain", "metrics unavailable\n"),
      );
    } else if (path === "/tap" && view.tap) {
      view.tap(req, res);
    } else {
      send(res, 404, "text/plain", "not found: try /ready, /config, /metrics or /tap\n");
    }
  });
  server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    const status =
      err.code === "HPE_HEADER_OVERFLOW"
        ? "431 Request Header Fields Too Large"
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? "408 Request Timeout"
          : "400 Bad Request";
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\n\r\n`);
    else socket.destroy();
  });
  return server;
}
