/**
 * A whole mesh hop in one process, on real sockets with real TLS:
 *
 *   client → net server → outbound (h1 / h2c) → Http2PeerPool ══mTLS══▶
 *   createMtlsServer({alpn: h2, http/1.1}) → inbound → app server
 *
 * Tests start the app themselves and get back ports, counters and event logs.
 */
import { once } from "node:events";
import http from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import type { TLSSocket, Server as TlsServer } from "node:tls";
import { createTestRoot, issueTestLeaf, type TestLeaf } from "@weft/testkit";
import type { Breaker } from "../../cluster/breaker.js";
import { clearSvidCache, TrustBundle } from "../../identity/svid.js";
import { createMaterialSource } from "../../transport/material-source.js";
import { createMtlsServer, type MaterialSource } from "../../transport/mtls.js";
import { Http1PeerPool } from "../h1-peer-pool.js";
import { Http2PeerPool } from "../h2-peer-pool.js";
import { createInboundHttp, type InboundHttp } from "../inbound-http.js";
import { createOutboundHttp, type OutboundHttp } from "../outbound-http.js";
import type {
  ForwardDecision,
  HttpLimits,
  HttpProtocol,
  InboundAuthorize,
  InboundRequestEvent,
  OutboundRequestEvent,
  PickedEndpoint,
  RouteDecision,
  UpstreamCluster,
} from "../types.js";

export const TD = "weft.test";
export const spiffe = (service: string): string => `spiffe://${TD}/ns/default/svc/${service}`;

export interface Certs {
  source(service: "web" | "api"): MaterialSource;
}

let certs: Promise<Certs> | undefined;

/** One root, a "web" leaf (the calling proxy) and an "api" leaf (the called one). Made once per file. */
export function testCerts(): Promise<Certs> {
  certs ??= (async () => {
    const root = await createTestRoot({ commonName: "weft http test root" });
    const bundle = TrustBundle.fromPem(TD, [root.certPem]);
    const leaves: Record<string, TestLeaf> = {
      web: await issueTestLeaf(root, { uris: [spiffe("web")] }),
      api: await issueTestLeaf(root, { uris: [spiffe("api")] }),
    };
    return {
      source(service) {
        const l = leaves[service] as TestLeaf;
        return createMaterialSource({ keyPem: l.keyPem, chainPem: l.chainPem, bundle });
      },
    };
  })();
  return certs;
}

export interface LogLine {
  level: "info" | "warn";
  obj: Record<string, unknown>;
  msg: string;
}

export function recorder(lines: LogLine[]) {
  return {
    info: (obj: object, msg: string) =>
      lines.push({ level: "info", obj: obj as Record<string, unknown>, msg }),
    warn: (obj: object, msg: string) =>
      lines.push({ level: "warn", obj: obj as Record<string, unknown>, msg }),
  };
}

export interface Endpoint {
  id: string;
  address: string;
  port: number;
}

export interface ClusterSpec {
  service?: string;
  protocol?: HttpProtocol;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Default: the inbound listener alone. */
  endpoints?: Endpoint[];
  breaker?: Breaker;
}

export interface ChainOptions {
  /** Route decision fields for every request (a route's timeouts, faults...): the outbound side gets a `route` callback. */
  decision?: Omit<Partial<ForwardDecision>, "kind" | "cluster">;
  app: { port: number; protocol: HttpProtocol };
  /** What the app speaks to the outbound listener. Default: app.protocol. */
  outboundProtocol?: HttpProtocol;
  authorize?: InboundAuthorize;
  maxRequestBodyBytes?: number;
  cluster?: ClusterSpec;
  limits?: Partial<HttpLimits>;
  /** undefined cluster (no config yet). */
  noCluster?: boolean;
  /** "h1": plain requests cross on kept-alive HTTP/1.1 connections (as in the sidecar). */
  hop?: "h1";
  /** ALPN of the inbound mTLS listener. Default: h2 and http/1.1 (["h2"]: a peer like a proxyless gRPC server). */
  inboundAlpn?: string[];
}

export interface Chain {
  outboundPort: number;
  inboundPort: number;
  inbound: InboundHttp;
  outbound: OutboundHttp;
  pool: Http2PeerPool;
  h1Pool: Http1PeerPool | undefined;
  /** The inbound side's verified sockets, open ones only. */
  inboundSockets: Set<net.Socket>;
  /** ALPN of every connection the inbound mTLS listener accepted. */
  mtlsConnections: string[];
  /** Connections the app made to the outbound listener. */
  frontConnections(): number;
  /** Handshakes the inbound mTLS listener failed (e.g. no common ALPN protocol). */
  tlsClientErrors(): number;
  outboundEvents: OutboundRequestEvent[];
  inboundEvents: InboundRequestEvent[];
  logs: LogLine[];
  /** Endpoints picked, in order (ids). */
  picks: string[];
  /** done() calls. */
  dones: number;
  /** Replaces the cluster the outbound side sees. */
  setCluster(spec: ClusterSpec | undefined): void;
  close(): Promise<void>;
}

export const allowAll: InboundAuthorize = (req) => ({ allow: true, target: req.rawTarget });

/** Tracks sockets a server accepts so that cleanup can destroy them. */
export function trackSockets(server: net.Server | TlsServer, event = "connection"): Set<net.Socket> {
  const set = new Set<net.Socket>();
  server.on(event, (s: net.Socket) => {
    set.add(s);
    s.once("close", () => set.delete(s));
  });
  return set;
}

export async function listen(
  server: net.Server | TlsServer | http.Server | http2.Http2Server,
): Promise<number> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

export async function startChain(opts: ChainOptions): Promise<Chain> {
  const c = await testCerts();
  const logs: LogLine[] = [];
  const logger = recorder(logs);
  const mtlsConnections: string[] = [];
  const outboundEvents: OutboundRequestEvent[] = [];
  const inboundEvents: InboundRequestEvent[] = [];

  const inbound = createInboundHttp({
    app: { host: "127.0.0.1", port: opts.app.port, protocol: opts.app.protocol },
    authorize: opts.authorize ?? allowAll,
    selfSpiffeId: spiffe("api"),
    ...(opts.maxRequestBodyBytes !== undefined ? { maxRequestBodyBytes: opts.maxRequestBodyBytes } : {}),
    logger,
    onRequest: (e) => inboundEvents.push(e),
    ...(opts.limits ? { limits: opts.limits } : {}),
  });
  const mtls = createMtlsServer({
    source: c.source("api"),
    alpn: opts.inboundAlpn ?? ["h2", "http/1.1"],
    logger,
    onConnection: (socket: TLSSocket, peer) => {
      mtlsConnections.push(String(socket.alpnProtocol));
      inbound.handle(socket, peer);
    },
  });
  const mtlsSockets = trackSockets(mtls, "secureConnection");
  let tlsClientErrors = 0;
  mtls.on("tlsClientError", () => tlsClientErrors++);
  const inboundPort = await listen(mtls);

  const pool = new Http2PeerPool({ source: c.source("web"), logger });
  const h1Pool = opts.hop === "h1" ? new Http1PeerPool({ source: c.source("web") }) : undefined;
  const chain: Partial<Chain> & { dones: number; picks: string[] } = { dones: 0, picks: [] };
  let cluster: UpstreamCluster | undefined;
  const makeCluster = (spec: ClusterSpec): UpstreamCluster => {
    const endpoints = spec.endpoints ?? [{ id: "api-1", address: "127.0.0.1", port: inboundPort }];
    return {
      service: spec.service ?? "api",
      protocol: spec.protocol ?? opts.app.protocol,
      connectTimeoutMs: spec.connectTimeoutMs ?? 2_000,
      ...(spec.requestTimeoutMs !== undefined ? { requestTimeoutMs: spec.requestTimeoutMs } : {}),
      ...(spec.breaker !== undefined ? { breaker: spec.breaker } : {}),
      pick({ exclude }): PickedEndpoint | undefined {
        const ep = endpoints.find((e) => !exclude.has(e.id));
        if (ep === undefined) return undefined;
        chain.picks.push(ep.id);
        return {
          endpoint: ep,
          done: () => {
            chain.dones++;
          },
        };
      },
    };
  };
  cluster = opts.noCluster ? undefined : makeCluster(opts.cluster ?? {});

  const decision = opts.decision;
  const outbound = createOutboundHttp({
    cluster: () => cluster,
    ...(decision
      ? {
          route: (): RouteDecision =>
            cluster
              ? { kind: "forward", cluster, ...decision }
              : { kind: "refuse", status: 503, detail: "no route", flags: "NR" },
        }
      : {}),
    pool,
    ...(h1Pool !== undefined ? { h1Pool } : {}),
    logger,
    onRequest: (e) => outboundEvents.push(e),
    ...(opts.limits ? { limits: opts.limits } : {}),
  });
  const protocol = opts.outboundProtocol ?? opts.app.protocol;
  let frontConnections = 0;
  const front = net.createServer((s) => {
    frontConnections++;
    outbound.handle(s, protocol);
  });
  const frontSockets = trackSockets(front);
  const outboundPort = await listen(front);

  return Object.assign(chain, {
    outboundPort,
    inboundPort,
    inbound,
    outbound,
    pool,
    h1Pool,
    inboundSockets: mtlsSockets,
    mtlsConnections,
    outboundEvents,
    inboundEvents,
    logs,
    frontConnections: () => frontConnections,
    tlsClientErrors: () => tlsClientErrors,
    setCluster(spec: ClusterSpec | undefined) {
      cluster = spec === undefined ? undefined : makeCluster(spec);
    },
    async close() {
      outbound.destroy();
      pool.destroy();
      h1Pool?.destroy();
      inbound.destroy();
      for (const s of frontSockets) s.destroy();
      for (const s of mtlsSockets) s.destroy();
      front.close();
      mtls.close();
      clearSvidCache();
    },
  }) as Chain;
}

// ---------------------------------------------------------------------------
// App servers that record what reached them.

export interface AppRecord {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

export interface HttpApp {
  port: number;
  server: http.Server;
  requests: AppRecord[];
  upgrades: AppRecord[];
  close(): void;
}

export async function startHttpApp(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<HttpApp> {
  const requests: AppRecord[] = [];
  const upgrades: AppRecord[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    handler(req, res);
  });
  server.on("upgrade", (req: http.IncomingMessage) => {
    upgrades.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
  });
  const sockets = trackSockets(server);
  const port = await listen(server);
  return {
    port,
    server,
    requests,
    upgrades,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

export interface H2cApp {
  port: number;
  server: http2.Http2Server;
  streams: http2.IncomingHttpHeaders[];
  close(): void;
}

export async function startH2cApp(
  handler: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
): Promise<H2cApp> {
  const streams: http2.IncomingHttpHeaders[] = [];
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    streams.push(headers);
    stream.on("error", () => {});
    handler(stream, headers);
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("error", () => {});
    s.once("close", () => sessions.delete(s));
  });
  const port = await listen(server);
  return {
    port,
    server,
    streams,
    close() {
      for (const s of sessions) s.destroy();
      server.close();
    },
  };
}

/**
 * An HTTP/1.1 app behind a chain whose sidecars speak HTTP/1.1 to each other
 * (hop "h1", as in the sidecar); both are closed by the test file's `cleanup`.
 */
export async function h1AppChain(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  cleanup: (() => unknown)[],
  opts: Omit<ChainOptions, "app" | "hop"> = {},
): Promise<{ app: HttpApp; chain: Chain }> {
  const app = await startHttpApp(handler);
  cleanup.push(() => app.close());
  const chain = await startChain({ ...opts, app: { port: app.port, protocol: "http" }, hop: "h1" });
  cleanup.push(() => chain.close());
  return { app, chain };
}

/** A port nothing listens on (connection refused). */
export async function deadPort(): Promise<number> {
  const s = net.createServer();
  const port = await listen(s);
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

// ---------------------------------------------------------------------------
// Clients.

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
  body: Buffer;
}

export interface HttpCall {
  method?: string;
  path?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: Buffer | string | NodeJS.ReadableStream;
  agent?: http.Agent | false;
  trailers?: Record<string, string>;
}

export function httpRequest(port: number, call: HttpCall = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1",
      port,
      method: call.method ?? "GET",
      path: call.path ?? "/",
      headers: call.headers ?? {},
      agent: call.agent ?? false,
    });
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("error", reject);
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          trailers: res.trailers,
          body: Buffer.concat(chunks),
        }),
      );
    });
    const body = call.body;
    if (body === undefined || typeof body === "string" || Buffer.isBuffer(body)) {
      if (call.trailers) req.addTrailers(call.trailers);
      req.end(body);
    } else {
      body.pipe(req);
    }
  });
}

/** Writes raw bytes and collects everything until the server closes (or `ms` passes). */
export function rawExchange(
  port: number,
  data: string | Buffer,
  ms = 3_000,
): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1", () => sock.write(data));
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ text: Buffer.concat(chunks).toString("latin1"), closed: false });
    }, ms);
    sock.on("data", (d: Buffer) => chunks.push(d));
    sock.on("error", reject);
    sock.on("close", () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString("latin1"), closed: true });
    });
  });
}

/** Polls `read` until it stops changing (three equal samples), for backpressure checks. */
export async function settled(read: () => number, intervalMs = 100, maxMs = 10_000): Promise<number> {
  let last = -1;
  let same = 0;
  const until = Date.now() + maxMs;
  while (Date.now() < until) {
    const v = read();
    same = v === last ? same + 1 : 0;
    last = v;
    if (same >= 3) return v;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return read();
}
