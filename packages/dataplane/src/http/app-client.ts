import http, { type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import http2, { type ClientHttp2Session } from "node:http2";
import net from "node:net";
import { describeError, tracer } from "@weft/core";
import type { DataplaneLogger } from "../logger.js";
import { AppH1Call, AppH1Pool } from "./app-h1.js";
import { CONNECT_ERRORS, h1CanSend } from "./h1-fast/client.js";
import { openH2Call } from "./h2-call.js";
import { closeSession } from "./h2-peer-pool.js";
import { cleanTrailers, type RequestHead, responseHeaders, toH2RequestHeaders } from "./headers.js";
import type { HttpProtocol, UpstreamCall, UpstreamEvents } from "./types.js";

/**
 * Forwarding to the local app on loopback. HTTP/1.1 apps get the fast
 * client's pool (app-h1.ts: keep-alive, no pipelining, bounded
 * connections), a fraction of the CPU per request of node:http's
 * ClientRequest/IncomingMessage. The few requests it cannot express go
 * through a node:http keep-alive Agent instead (see `h1CanSend`).
 * HTTP/2 and gRPC apps get one h2c session, reopened when it goes away.
 */

const trace = tracer("http");

export interface AppTarget {
  host: string;
  port: number;
  protocol: HttpProtocol;
}

export type AppOpener = (head: RequestHead, endStream: boolean, events: UpstreamEvents) => UpstreamCall;

export interface AppClient {
  /** Ready to open calls, or why not (the app is not accepting connections). */
  prepare(): Promise<{ ok: true; open: AppOpener } | { ok: false; detail: string }>;
  close(): Promise<void>;
  destroy(): void;
}

export function createAppClient(app: AppTarget, logger?: DataplaneLogger): AppClient {
  return app.protocol === "http" ? new H1AppClient(app) : new H2cAppClient(app, logger);
}

function authorityOf(app: AppTarget): string {
  return app.host.includes(":") ? `[${app.host}]:${app.port}` : `${app.host}:${app.port}`;
}

/**
 * Requests the fast client cannot express go through node:http (see
 * `h1CanSend`): a chunked body, where HTTP/1.1 trailers can follow,
 * `Expect`, and asterisk-form `OPTIONS *`.
 */
class H1AppClient implements AppClient {
  readonly #app: AppTarget;
  readonly #pool: AppH1Pool;
  #agent: http.Agent | undefined;
  readonly #opener: AppOpener = (head, endStream, events) =>
    h1CanSend(head, endStream)
      ? new AppH1Call(this.#pool, head, head.authority ?? authorityOf(this.#app), endStream, events)
      : openNodeH1(this.#nodeAgent(), this.#app, head, endStream, events);

  constructor(app: AppTarget) {
    this.#app = app;
    // No timeouts of our own on a request: the caller (peer proxy, retry policy) owns them,
    // and long polls or slow streams must not be cut here.
    this.#pool = new AppH1Pool(app);
  }

  #nodeAgent(): http.Agent {
    this.#agent ??= new http.Agent({
      keepAlive: true,
      scheduling: "lifo",
      maxSockets: 1024,
      maxFreeSockets: 64,
      // Free sockets are dropped before common app keep-alive timeouts (node:http's is 5 s) expire.
      timeout: 4_000,
    });
    return this.#agent;
  }

  /** Always ready (connections are made per request): one settled promise, not one per request. */
  readonly #ready: Promise<{ ok: true; open: AppOpener }> = Promise.resolve({ ok: true, open: this.#opener });

  prepare(): Promise<{ ok: true; open: AppOpener }> {
    return this.#ready;
  }

  close(): Promise<void> {
    // Called once nothing is in flight (the inbound side drains first): nothing to wait for.
    this.destroy();
    return Promise.resolve();
  }

  destroy(): void {
    this.#pool.destroy();
    this.#agent?.destroy();
  }
}

/**
 * One request through node:http (the requests the fast client cannot express, see
 * `needsNodeHttp`): a keep-alive Agent (LIFO, so the freshest socket is
 * reused and stale ones age out).
 */
function openNodeH1(
  agent: http.Agent,
  app: AppTarget,
  head: RequestHead,
  endStream: boolean,
  events: UpstreamEvents,
): UpstreamCall {
  const headers: OutgoingHttpHeaders = { ...head.headers, host: head.authority ?? authorityOf(app) };
  // TE is hop-by-hop in HTTP/1.1 and would have to be nominated in Connection; apps do not need it.
  delete headers.te;
  // Without Content-Length a body must be chunked: node:http would otherwise send it unframed for GET.
  if (!endStream && headers["content-length"] === undefined) headers["transfer-encoding"] = "chunked";

  let over = false;
  let current: http.ClientRequest;
  let response: IncomingMessage | undefined;
  let retried = false;

  const start = (): http.ClientRequest => {
    const req = http.request({
      agent,
      host: app.host,
      port: app.port,
      method: head.method,
      path: head.path,
      headers,
      setHost: false,
      insecureHTTPParser: false,
    });
    req.on("response", (res) => {
      if (over || req !== current) {
        res.resume();
        return;
      }
      response = res;
      res.on("error", () => {});
      res.once("end", () => {
        if (over) return;
        over = true;
        if (res.complete) events.complete(cleanTrailers(res.trailers));
        else events.fail("reset", "app response incomplete");
      });
      res.once("close", () => {
        if (over) return;
        over = true;
        events.fail("reset", "app closed the connection mid-response");
      });
      events.response(
        {
          status: res.statusCode ?? 502,
          headers: responseHeaders(res.headers, { stripInternal: true }),
          endStream: false,
        },
        res,
      );
    });
    req.on("error", (e: NodeJS.ErrnoException) => {
      if (over || req !== current) return;
      if (response !== undefined) {
        over = true;
        events.fail("reset", e.message);
        return;
      }
      // A kept-alive socket the app closed as we reused it: safe to replay a request without a body.
      if (req.reusedSocket && endStream && !retried && e.code === "ECONNRESET") {
        retried = true;
        trace("app keep-alive socket was stale; retrying once", {});
        current = start();
        current.end();
        return;
      }
      over = true;
      events.fail(CONNECT_ERRORS.has(e.code ?? "") ? "connect" : "reset", e.message);
    });
    return req;
  };
  current = start();

  return {
    get requestSink() {
      return endStream ? undefined : current;
    },
    endRequest(trailers) {
      if (over) return;
      // node:http writes trailers only after a chunked body; with Content-Length they cannot be expressed.
      if (trailers !== undefined && !endStream && headers["content-length"] === undefined) {
        current.addTrailers(trailers);
      }
      current.end();
    },
    cancel() {
      over = true;
      current.destroy();
      response?.destroy();
    },
  };
}

const APP_SESSION_OPTIONS: http2.ClientSessionOptions = {
  settings: { enablePush: false, initialWindowSize: 256 * 1024, maxHeaderListSize: 64 * 1024 },
  maxSessionMemory: 32,
  maxHeaderListPairs: 256,
};

class H2cAppClient implements AppClient {
  readonly #app: AppTarget;
  readonly #logger: DataplaneLogger | undefined;
  #session: ClientHttp2Session | undefined;
  #pending: Promise<ClientHttp2Session> | undefined;
  readonly #live = new Set<ClientHttp2Session>();
  #closed = false;

  constructor(app: AppTarget, logger?: DataplaneLogger) {
    this.#app = app;
    this.#logger = logger;
  }

  async prepare(): Promise<{ ok: true; open: AppOpener } | { ok: false; detail: string }> {
    let session: ClientHttp2Session;
    try {
      session = await this.#get();
    } catch (e) {
      return { ok: false, detail: describeError(e) };
    }
    const authority = authorityOf(this.#app);
    return {
      ok: true,
      open: (head, endStream, events) =>
        openH2Call(session, toH2RequestHeaders(head, authority), endStream, events, {
          stripInternalResponse: true,
        }),
    };
  }

  #get(): Promise<ClientHttp2Session> {
    if (this.#closed) return Promise.reject(new Error("app client closed"));
    const s = this.#session;
    if (s !== undefined && !s.closed && !s.destroyed) return Promise.resolve(s);
    if (this.#pending !== undefined) return this.#pending;
    const pending = new Promise<ClientHttp2Session>((resolve, reject) => {
      const session = http2.connect(`http://${authorityOf(this.#app)}`, {
        ...APP_SESSION_OPTIONS,
        createConnection: () => net.connect({ host: this.#app.host, port: this.#app.port }),
      });
      this.#live.add(session);
      const drop = (): void => {
        if (this.#session === session) this.#session = undefined;
      };
      session.once("connect", () => {
        this.#session = session;
        resolve(session);
      });
      session.on("error", (e: Error) => {
        drop();
        reject(e);
        this.#logger?.info({ app: authorityOf(this.#app), error: describeError(e) }, "app h2c session error");
      });
      session.on("goaway", drop);
      session.once("close", () => {
        drop();
        this.#live.delete(session);
        reject(new Error("app h2c session closed"));
      });
    });
    this.#pending = pending;
    const clear = (): void => {
      if (this.#pending === pending) this.#pending = undefined;
    };
    pending.then(clear, clear);
    return pending;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#live].map(closeSession));
  }

  destroy(): void {
    this.#closed = true;
    for (const s of this.#live) s.destroy();
    this.#live.clear();
  }
}
