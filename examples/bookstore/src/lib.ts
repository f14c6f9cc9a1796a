/**
 * What every bookstore service shares: where `weft up` says to listen (PORT)
 * and where its upstreams are (WEFT_UPSTREAM_<SERVICE>: the app's own
 * sidecar on loopback, which carries the call over mTLS to a healthy
 * instance), logging, JSON over HTTP, and a clean exit on SIGTERM.
 *
 * Nothing here knows about the mesh: the apps call plain http://127.0.0.1
 * addresses, as any app would.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

/** `frontend-1`: which replica this is (set by weft up; "local" when run by hand). */
export const INSTANCE = process.env.WEFT_WORKLOAD
  ? `${process.env.WEFT_WORKLOAD}-${process.env.WEFT_REPLICA ?? "1"}`
  : "local";

export function log(message: string): void {
  process.stdout.write(`${new Date().toISOString()} ${INSTANCE} ${message}\n`);
}

/** The port to listen on: PORT, from weft up. */
export function port(): number {
  const p = Number(process.env.PORT);
  if (!Number.isInteger(p) || p < 0 || p > 65535) {
    throw new Error(
      `PORT is not set to a port number (got ${JSON.stringify(process.env.PORT)}); run me with weft up`,
    );
  }
  return p;
}

/** The address of an upstream service, from WEFT_UPSTREAM_<SERVICE> (an http:// URL on loopback). */
export function upstream(service: string): URL {
  const name = `WEFT_UPSTREAM_${service.toUpperCase().replace(/-/g, "_")}`;
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: declare ${service} in this Workload's upstreams`);
  return new URL(v);
}

export interface JsonAnswer<T> {
  status: number;
  body: T | undefined;
  text: string;
  headers: Headers;
}

/** GET a JSON document; never throws for an HTTP status, only for a network failure or timeout. */
export async function getJson<T>(url: URL | string, timeoutMs = 2_000): Promise<JsonAnswer<T>> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let body: T | undefined;
  try {
    body = JSON.parse(text) as T;
  } catch {
    body = undefined;
  }
  return { status: res.status, body, text, headers: res.headers };
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = `${JSON.stringify(value)}\n`;
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

export function errorText(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    return cause instanceof Error ? `${e.message}: ${cause.message}` : e.message;
  }
  return String(e);
}

/** Calls `fn` on SIGTERM/SIGINT, then exits (at once on a second signal, or after 3 s). */
export function onShutdown(fn: () => void | Promise<void>): void {
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    log(`${sig}: stopping`);
    setTimeout(() => process.exit(0), 3_000).unref();
    Promise.resolve()
      .then(fn)
      .finally(() => process.exit(0));
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

/** An HTTP server on 127.0.0.1:PORT; a handler that throws answers 500. */
export function serveHttp(
  what: string,
  handler: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>,
): Server {
  const server = createServer((req, res) => {
    Promise.resolve()
      .then(() => handler(req, res))
      .catch((e: unknown) => {
        log(`${req.method} ${req.url} failed: ${errorText(e)}`);
        if (!res.headersSent) sendJson(res, 500, { error: errorText(e) });
        else res.destroy();
      });
  });
  server.listen(port(), "127.0.0.1", () => {
    const a = server.address();
    log(`${what} listening on 127.0.0.1:${typeof a === "object" && a ? a.port : "?"}`);
  });
  onShutdown(
    () =>
      new Promise<void>((done) => {
        server.close(() => done());
        server.closeIdleConnections();
      }),
  );
  return server;
}
