/**
 * Server assembly: store -> ACL bootstrap -> catalog (+ health timers),
 * config, blocking queries -> HTTP API on node:http with edge limits.
 *
 * `close()` drains: stop accepting, answer held long-polls with their
 * current state, close idle then remaining connections, stop timers and
 * watches, close the store.
 */
import { chmod, writeFile } from "node:fs/promises";
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from "node:http";
import type { Socket } from "node:net";
import { isIP } from "node:net";
import { join } from "node:path";
import { MESH_NAME, type Mesh, meshSchema } from "@weft/api";
import { type Clock, describeError, systemClock, weftError } from "@weft/core";
import type { Logger } from "pino";
import { AclService } from "./acl/acl.js";
import "./ca/builtin-provider.js";
import { CaService, type CaSettings } from "./ca/ca-service.js";
import { createCaProvider } from "./ca/provider.js";
import { Catalog } from "./catalog/catalog.js";
import { ConfigService, type ResourceModel } from "./config/config.js";
import { apiResourceModel } from "./config/model.js";
import { advertiseUrl, startDuties } from "./ha/duties.js";
import { createLeaderForward } from "./ha/leader-forward.js";
import { createApiHandler } from "./http/api.js";
import { BlockingQueries } from "./http/blocking.js";
import { sendError } from "./http/respond.js";
import { createUiHandler } from "./http/ui-static.js";
import { createLogger } from "./logger.js";
import { GoldenWindow } from "./metrics/golden.js";
import { ProxyStreams } from "./snapshot/proxy-streams.js";
import { openStore } from "./store/open-store.js";
import type { Store } from "./store/store.js";
import { startXdsServer, type XdsServer } from "./xds/ads-server.js";

export interface StartServerOptions {
  /** `host:port`; port may be 0 (an ephemeral port; see the returned `port`). */
  listen: string;
  /** A store to use as is (tests). Takes precedence over `storeSpec`. */
  store?: Store;
  /** "memory", a data directory path or a store URL (see store/open-store.ts). Default: `dataDir`, else "memory". */
  storeSpec?: string;
  /** Data directory: where the store lives and `bootstrap-token` is written (ignored for a memory store). */
  dataDir?: string;
  /** Anonymous requests act as operator. Loopback only. */
  dev?: boolean;
  clock?: Clock;
  /** Server-wide default of `deregisterCriticalAfter` for checks. Default 1m. */
  deregisterCriticalAfterMs?: number;
  logger?: Logger;
  /** Cap on held blocking queries. Default 10,000. */
  maxBlockingQueries?: number;
  /** Config schema model (tests). Default: @weft/api's resource schemas. */
  resourceModel?: ResourceModel;
  /** CA provider by registered name. Default "builtin". */
  caProvider?: string;
  /** How long a retiring CA root outlives its last replaced leaf. Default 5 s. */
  caRetireGraceMs?: number;
  /** How long changes are gathered before proxies' snapshots are rebuilt. Default 10 ms. */
  proxyCoalesceMs?: number;
  /** `host:port` of the xDS (ADS) gRPC listener for proxyless clients and Envoy; none when absent. */
  xdsListen?: string;
  /** The built web UI (packages/web/dist), served publicly at /ui/ (http/ui-static.ts); none when absent. */
  uiDir?: string;
}

export interface RunningServer {
  url: string;
  port: number;
  /** The management token's secret: only on the first start of a store. */
  bootstrapToken?: string;
  store: Store;
  catalog: Catalog;
  ca: CaService;
  proxies: ProxyStreams;
  /** The xDS listener, when `xdsListen` was given. */
  xds?: XdsServer;
  /** Long-polls currently held (for tests and metrics). */
  blockingQueries(): number;
  close(): Promise<void>;
}

/** Edge limits of the API listener (HARDENING: slow and big). */
export const SERVER_LIMITS = {
  maxHeaderSize: 16 * 1024,
  maxHeadersCount: 64,
  headersTimeoutMs: 10_000,
  /** Time to receive a whole request (not to answer it: long-polls are not cut). */
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 16_384,
  /** After this long in close(), remaining connections are cut. */
  drainTimeoutMs: 3_000,
} as const;

/**
 * Test/ops tuning of the listener's timeouts without a code change:
 * `WEFT_API_HEADERS_TIMEOUT_MS` and `WEFT_API_REQUEST_TIMEOUT_MS` (integers,
 * 100..600000) override `headersTimeoutMs` / `requestTimeoutMs`. The e2e
 * hardening test sets them to a few seconds so slowloris and slow-body cases
 * finish quickly; operators may tighten them on an exposed listener. A value
 * that does not parse fails the start (never a silent fallback to no limit).
 * The request timeout is raised to the headers timeout if below it (Node
 * requires headersTimeout <= requestTimeout).
 */
export function listenerTimeouts(env: NodeJS.ProcessEnv = process.env): {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
} {
  const read = (name: string, dflt: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return dflt;
    const n = /^\d{1,6}$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN;
    if (!(n >= 100 && n <= 600_000)) {
      throw weftError("WEFT_ERR_USAGE", {
        detail: `${name}="${raw.slice(0, 20)}": expected 100..600000 (ms)`,
      });
    }
    return n;
  };
  const headersTimeoutMs = read("WEFT_API_HEADERS_TIMEOUT_MS", SERVER_LIMITS.headersTimeoutMs);
  const requestTimeoutMs = Math.max(
    headersTimeoutMs,
    read("WEFT_API_REQUEST_TIMEOUT_MS", SERVER_LIMITS.requestTimeoutMs),
  );
  return { headersTimeoutMs, requestTimeoutMs };
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port > 65535) {
    throw weftError("WEFT_ERR_USAGE", {
      detail: `invalid listen address "${listen}"; expected host:port (e.g. 127.0.0.1:7400, [::1]:7400, port 0 for any)`,
    });
  }
  const host = m[1] ?? (m[2] === undefined || m[2] === "" ? "127.0.0.1" : m[2]);
  return { host, port };
}

export function isLoopback(host: string): boolean {
  if (host === "localhost" || host === "::1") return true;
  return isIP(host) === 4 && host.startsWith("127.");
}

function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

export async function startServer(opts: StartServerOptions): Promise<RunningServer> {
  const log = opts.logger ?? createLogger();
  const clock = opts.clock ?? systemClock;
  const { host, port } = parseListen(opts.listen);
  const timeouts = listenerTimeouts();
  const dev = opts.dev ?? false;
  if (dev && !isLoopback(host)) {
    throw weftError("WEFT_ERR_USAGE", {
      detail: `--dev opens the API without a token and is only allowed on a loopback address (127.0.0.1, ::1, localhost); got "${host}"`,
    });
  }

  const spec = (opts.storeSpec ?? opts.dataDir ?? "memory").trim();
  // A plain path (no "scheme:") is a data dir; "memory" and URLs are not.
  const specIsDir = spec !== "memory" && !/^[a-z][a-z0-9+.-]+:/i.test(spec);
  // `--store memory` has no data dir: the bootstrap token is only returned (printed), never written.
  const dataDir = opts.store ? opts.dataDir : specIsDir ? (opts.dataDir ?? spec) : undefined;
  const store: Store = opts.store ?? (await openStore(spec));

  const owned: { dispose(): unknown }[] = [];
  const cleanup = async () => {
    for (const d of owned.reverse()) await Promise.resolve(d.dispose()).catch(() => {});
    await store.close().catch(() => {});
  };

  let server: Server | undefined;
  try {
    const acl = await AclService.open(store, { logger: log, now: () => clock.now() });
    owned.push(acl);
    const bootstrapToken = await acl.bootstrap();
    if (bootstrapToken !== undefined && dataDir !== undefined) {
      const file = join(dataDir, "bootstrap-token");
      await writeFile(file, `${bootstrapToken}\n`, { mode: 0o600 });
      await chmod(file, 0o600);
      log.info({ file }, "bootstrap management token written (mode 0600)");
    }
    const catalogOpts: Parameters<typeof Catalog.open>[0] = { store, clock, logger: log };
    if (opts.deregisterCriticalAfterMs !== undefined)
      catalogOpts.deregisterCriticalAfterMs = opts.deregisterCriticalAfterMs;
    // Replicas on etcd elect who runs once-only duties (TTL expiry, reaping); embedded stores have one server.
    const duties = startDuties(store, { logger: log });
    if (duties) {
      owned.push(duties.election);
      catalogOpts.leader = duties.gate;
    }
    const catalog = await Catalog.open(catalogOpts);
    owned.push(catalog);
    const config = await ConfigService.open(store, opts.resourceModel ?? apiResourceModel, { logger: log });
    owned.push(config);
    const defaultMesh = meshSchema.parse({ kind: "Mesh", name: MESH_NAME });
    const caSettings = (): CaSettings => {
      const mesh = (config.parsed("Mesh", MESH_NAME) as Mesh | undefined) ?? defaultMesh;
      const c = mesh.certificates;
      return {
        trustDomain: mesh.trustDomain,
        leafTtlMs: c.leafTtl,
        maxLeafTtlMs: c.maxLeafTtl,
        rootTtlMs: c.rootTtl,
      };
    };
    const caOpts: Parameters<typeof CaService.open>[0] = {
      store,
      provider: createCaProvider(opts.caProvider ?? "builtin"),
      settings: caSettings,
      clock,
      logger: log,
    };
    if (opts.caRetireGraceMs !== undefined) caOpts.retireGraceMs = opts.caRetireGraceMs;
    // Only the leader uses the CA key (sign, rotate) and sweeps; followers forward (below).
    if (duties) caOpts.leader = duties.gate;
    const ca = await CaService.open(caOpts);
    owned.push(ca);
    const blockingOpts: { clock: Clock; maxWaiters?: number } = { clock };
    if (opts.maxBlockingQueries !== undefined) blockingOpts.maxWaiters = opts.maxBlockingQueries;
    const blocking = new BlockingQueries(blockingOpts);
    owned.push({ dispose: () => blocking.closeAll() });
    owned.push(
      catalog.onChange((services) => {
        blocking.notify("catalog");
        for (const s of services) blocking.notify(`svc:${s}`);
      }),
    );
    owned.push(
      config.onChange((kinds) => {
        for (const k of kinds) blocking.notify(`config:${k}`);
      }),
    );
    owned.push(
      ca.onChange((groups) => {
        if (groups.has("roots")) blocking.notify("ca:roots");
      }),
    );

    const proxyOpts: ConstructorParameters<typeof ProxyStreams>[0] = { catalog, config, clock, logger: log };
    if (opts.proxyCoalesceMs !== undefined) proxyOpts.coalesceMs = opts.proxyCoalesceMs;
    const proxies = new ProxyStreams(proxyOpts);
    owned.push(proxies);
    // One window for the sidecars' stats reports (HTTP API) and proxyless clients' load reports (LRS).
    const golden = new GoldenWindow({ clock });
    let xds: XdsServer | undefined;
    if (opts.xdsListen !== undefined) {
      const x = parseListen(opts.xdsListen);
      xds = await startXdsServer({
        ...x,
        proxies,
        catalog,
        clock,
        acl,
        dev: dev && isLoopback(x.host),
        logger: log,
        golden,
      });
      owned.push({ dispose: () => xds?.close() });
    }
    const api = createApiHandler({
      store,
      catalog,
      config,
      acl,
      ca,
      proxies,
      blocking,
      dev,
      logger: log,
      clock,
      golden,
      ...(duties ? { leader: () => duties.election.isLeader() } : {}),
      ...(xds ? { xds } : {}),
    });
    // The UI's static files are public and served by every replica (never forwarded).
    const ui = opts.uiDir !== undefined ? createUiHandler(opts.uiDir) : undefined;
    // Leader-only requests reaching a follower go to the leader (set once the URL is known).
    let forward: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
    // In-flight responses, so that a drain can make them close their connection when they answer.
    const active = new Set<ServerResponse>();
    let draining = false;
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      // A request arrived: lift the idle-before-first-request timer set on "connection" below
      // (a long-poll may then be held for minutes; keep-alive idling is Node's keepAliveTimeout).
      if (req.socket.timeout) req.socket.setTimeout(0);
      if (draining) res.shouldKeepAlive = false;
      active.add(res);
      res.on("close", () => active.delete(res));
      // Node's maxHeadersCount silently DROPS the headers past the count (a header the client
      // sent would be ignored, e.g. an Authorization after the 64th): the parser keeps one more
      // than the limit so that a request over it is detected here and refused (HARDENING: too many headers).
      if (req.rawHeaders.length > 2 * SERVER_LIMITS.maxHeadersCount) {
        res.shouldKeepAlive = false;
        sendError(
          res,
          weftError("WEFT_ERR_HEADERS_TOO_LARGE", {
            detail: `more than ${SERVER_LIMITS.maxHeadersCount} headers`,
          }),
          log,
          { connection: "close" },
        );
        return;
      }
      if (ui?.(req, res)) return;
      if (forward?.(req, res)) return;
      api(req, res);
    };
    const srv = createServer(
      {
        maxHeaderSize: SERVER_LIMITS.maxHeaderSize,
        headersTimeout: timeouts.headersTimeoutMs,
        requestTimeout: timeouts.requestTimeoutMs,
        keepAliveTimeout: SERVER_LIMITS.keepAliveTimeoutMs,
        connectionsCheckingInterval: 1_000,
      },
      handler,
    );
    server = srv;
    srv.maxHeadersCount = SERVER_LIMITS.maxHeadersCount + 1; // + 1: see the check in `handler`
    srv.maxConnections = SERVER_LIMITS.maxConnections;
    srv.on("clientError", (err: Error & { code?: string }, socket: Socket) => onClientError(err, socket));
    // Node's headersTimeout only starts with a request's first byte: a connection that never
    // sends one would be held forever (an idle-connection flood). Close it after the headers
    // timeout of silence; `handler` lifts this timer when a request arrives.
    srv.on("connection", (socket: Socket) => socket.setTimeout(timeouts.headersTimeoutMs));

    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        reject(
          weftError(
            "WEFT_ERR_UNAVAILABLE",
            { detail: `cannot listen on ${opts.listen}: ${describeError(err)}` },
            { cause: err },
          ),
        );
      };
      srv.once("error", onError);
      srv.listen(port, host, () => {
        srv.off("error", onError);
        resolve();
      });
    });
    srv.on("error", (err) => log.error({ err }, "HTTP server error"));
    const addr = srv.address();
    const boundPort = typeof addr === "object" && addr ? addr.port : port;
    const url = `http://${urlHost(host)}:${boundPort}`;
    if (dev) {
      log.warn(
        { url },
        "DEV MODE: the API is OPEN - requests without a token act as operator. Never use --dev outside a workstation.",
      );
    }
    log.info({ url, backend: store.backend, dev }, "weft control plane listening");
    if (duties) {
      const self = advertiseUrl(url);
      duties.election.advertise(self);
      forward = createLeaderForward({
        isLeader: () => duties.election.isLeader(),
        leaderUrl: () => duties.election.leaderUrl(),
        selfUrl: self,
        logger: log,
      });
    }

    let closing: Promise<void> | undefined;
    const close = () => {
      closing ??= (async () => {
        const done = new Promise<void>((resolve) => srv.close(() => resolve()));
        draining = true;
        for (const res of active) if (!res.headersSent) res.shouldKeepAlive = false;
        blocking.closeAll();
        proxies.closeAll("control plane shutting down");
        srv.closeIdleConnections();
        // Real time, not `clock`: draining sockets is not part of the virtual-time state machines.
        const cut = setTimeout(() => srv.closeAllConnections(), SERVER_LIMITS.drainTimeoutMs);
        cut.unref();
        await done;
        clearTimeout(cut);
        await cleanup();
        log.info("weft control plane stopped");
      })();
      return closing;
    };
    const running: RunningServer = {
      url,
      port: boundPort,
      store,
      catalog,
      ca,
      proxies,
      blockingQueries: () => blocking.waiting,
      close,
    };
    if (bootstrapToken !== undefined) running.bootstrapToken = bootstrapToken;
    if (xds) running.xds = xds;
    return running;
  } catch (e) {
    server?.close();
    await cleanup();
    throw e;
  }
}

/** How long a connection refused by the parser may linger after its error answer was sent. */
const CLIENT_ERROR_LINGER_MS = 500;

/** Malformed requests rejected by Node's parser get a JSON error too, then the socket closes. */
function onClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === "ECONNRESET" || !socket.writable) {
    socket.destroy();
    return;
  }
  const e =
    err.code === "HPE_HEADER_OVERFLOW"
      ? weftError("WEFT_ERR_HEADERS_TOO_LARGE")
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? weftError("WEFT_ERR_REQUEST_TIMEOUT")
        : weftError("WEFT_ERR_BAD_REQUEST", { detail: err.code ?? "parse error" });
  const body = JSON.stringify(e.toJSON());
  // A response of the request is already on the wire: a second status line would desync the client.
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  // The HTTP server's sockets are half-open: end() alone only sends our FIN, and a client that
  // never closes its side (slowloris) would keep the connection forever. Destroy it once the
  // answer is flushed, after a short grace so the client can read it before a reset.
  socket.once("finish", () => setTimeout(() => socket.destroy(), CLIENT_ERROR_LINGER_MS).unref());
  socket.end(
    `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status]}\r\n` +
      `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
