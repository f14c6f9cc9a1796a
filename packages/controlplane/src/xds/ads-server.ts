/**
 * The ADS server: `envoy.service.discovery.v3.AggregatedDiscoveryService/
 * StreamAggregatedResources` (state of the world) on its own gRPC port.
 *
 * Data flow per stream: first DiscoveryRequest -> node.id (the proxyless
 * instance's catalog id) -> authenticate (token) and authorize (write on the
 * instance's service, as a sidecar's stream) -> `ProxyStreams.open`: the
 * same watch, dependencies and coalescing as the sidecars' NDJSON stream,
 * so a proxyless client sees exactly its snapshot (what its service may
 * reach) -> each snapshot -> AdsStream (translate, versions, nonces,
 * ACK/NACK) -> responses.
 *
 * The token: `authorization: Bearer SECRET` call metadata (Envoy's
 * grpc_service initial_metadata), or, because grpc-js-xds has no call
 * credentials in its bootstrap, the node metadata field `weft_token`
 * (`weft bootstrap grpc` writes it; the bootstrap file is mode 0600).
 */
import * as grpc from "@grpc/grpc-js";
import type { ProxySnapshot, ProxyStreamMessage } from "@weft/api";
import { NODE_CERT_PROVIDER_KEY } from "@weft/api/client";
import {
  type Clock,
  type Disposable,
  describeError,
  isWeftError,
  tracer,
  type WeftError,
  weftError,
} from "@weft/core";
import type { Logger } from "pino";
import type { Identity } from "../acl/acl.js";
import { AdsStream, type DiscoveryRequest, type DiscoveryResponse } from "./ads-stream.js";
import { addLrsService, type LoadSink } from "./lrs-server.js";
import { NackLog } from "./nack-log.js";
import { authenticateNode, FIRST_REQUEST_TIMEOUT_MS, NODE_TOKEN_KEY, nodeMeta } from "./node-auth.js";
import { adsService } from "./protos.js";
import {
  type HealthCatalog,
  StreamHealth,
  type StreamLease,
  serverListenerVerdict,
} from "./stream-health.js";

const trace = tracer("xds");

export { FIRST_REQUEST_TIMEOUT_MS, NODE_CERT_PROVIDER_KEY, NODE_TOKEN_KEY };
export const DEFAULT_MAX_XDS_STREAMS = 10_000;
/** Largest DiscoveryRequest accepted (a NACK's message is the big part). */
export const MAX_XDS_REQUEST_BYTES = 1024 * 1024;

export interface XdsServerOptions {
  /** `host:port`, parsed by the caller. */
  host: string;
  port: number;
  proxies: { open(instanceId: string, sink: ProxySink): Disposable };
  /** `port` and `checks` drive server Listeners and the `xds` check; `heartbeat` reports it (stream-health.ts). */
  catalog: {
    getInstance(
      id: string,
    ): { service: string; port?: number; checks?: readonly { id: string; ttlMs: number }[] } | undefined;
    heartbeat?: HealthCatalog["heartbeat"];
  };
  /** Timers of the `xds` health reports. */
  clock?: Clock;
  acl: { resolve(secret: string): Identity | undefined };
  /** Anonymous streams act as operator (loopback dev mode only, as the HTTP API). */
  dev?: boolean;
  logger?: Logger;
  maxStreams?: number;
  nacks?: NackLog;
  /** Where proxyless clients' load reports go (LRS on this port, lrs-server.ts); absent: no LRS service. */
  golden?: LoadSink;
}

interface ProxySink {
  write(msg: ProxyStreamMessage): boolean;
  onDrain(fn: () => void): void;
  end(): void;
}

export interface XdsStreamInfo {
  nodeId: string;
  service: string;
  responses: number;
  acks: number;
  nacks: number;
  stale: number;
  /** The version the node last ACKed, per type URL it ACKed on this stream. */
  acked?: Record<string, string>;
}

export interface XdsServer {
  port: number;
  /** What xDS clients refused (per node), for `weft explain` and the UI. */
  readonly nacks: NackLog;
  /** The connected xDS clients. */
  streams(): XdsStreamInfo[];
  close(): Promise<void>;
}

type Call = grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>;

function isLoopbackHost(h: string): boolean {
  return h === "localhost" || h === "::1" || /^127\./.test(h);
}

/** A registered port makes the node an XdsServer candidate (server Listeners for that port only). */
function serverPortOf(inst: { port?: number }): { serverPort?: number } {
  return inst.port !== undefined && inst.port > 0 ? { serverPort: inst.port } : {};
}

export async function startXdsServer(o: XdsServerOptions): Promise<XdsServer> {
  const nacks = o.nacks ?? new NackLog(o.logger ? { logger: o.logger } : {});
  const maxStreams = o.maxStreams ?? DEFAULT_MAX_XDS_STREAMS;
  const live = new Map<Call, { info: XdsStreamInfo; stream: AdsStream }>();
  const server = new grpc.Server({
    "grpc.max_receive_message_length": MAX_XDS_REQUEST_BYTES,
    "grpc.max_concurrent_streams": 100,
    "grpc.keepalive_time_ms": 60_000,
  });

  const fail = (call: Call, e: WeftError): void => {
    trace("stream refused", { code: e.code, detail: e.message });
    call.emit("error", { code: e.grpc, details: e.message });
  };

  const catalog = o.catalog;
  const health = catalog.heartbeat
    ? new StreamHealth({
        catalog: { getInstance: (id) => catalog.getInstance(id), heartbeat: catalog.heartbeat.bind(catalog) },
        ...(o.clock ? { clock: o.clock } : {}),
        ...(o.logger ? { logger: o.logger } : {}),
      })
    : undefined;

  const handle = (call: Call): void => {
    let watch: Disposable | undefined;
    let healthLease: StreamLease | undefined;
    let stream: AdsStream | undefined;
    let closed = false;
    const drainFns: (() => void)[] = [];
    const firstTimer = setTimeout(() => {
      fail(call, weftError("WEFT_ERR_UNAUTHENTICATED", { detail: "no DiscoveryRequest with a node id" }));
    }, FIRST_REQUEST_TIMEOUT_MS);
    firstTimer.unref();
    const cleanup = (): void => {
      if (closed) return;
      closed = true;
      clearTimeout(firstTimer);
      live.delete(call);
      watch?.dispose();
      healthLease?.dispose();
    };
    call.on("cancelled", cleanup);
    call.on("close", cleanup);
    call.on("finish", cleanup);
    call.on("error", cleanup);
    call.on("drain", () => {
      stream?.drained();
      for (const f of drainFns) f();
    });
    call.on("end", () => {
      cleanup();
      if (!call.writableEnded) call.end();
    });
    call.on("data", (req: DiscoveryRequest) => {
      if (closed) return;
      if (stream) {
        stream.onRequest(req);
        return;
      }
      clearTimeout(firstTimer);
      const nodeId = req.node?.id ?? "";
      try {
        // The same check as every stream on this port (node-auth.ts; LRS too).
        const inst = authenticateNode(o, call.metadata, req.node, "DiscoveryRequest");
        if (live.size >= maxStreams) {
          throw weftError("WEFT_ERR_UNAVAILABLE", {
            detail: `too many xDS streams (${maxStreams}); retry later`,
          });
        }
        const s = new AdsStream({
          nodeId,
          nacks,
          send: (r) => call.write(r),
          translate: { certificateProvider: nodeMeta(req.node, NODE_CERT_PROVIDER_KEY) },
          ...serverPortOf(inst.instance),
          // A server that refused its Listener does not serve: its check says so (stream-health.ts).
          onServerListener: (accepted, message) =>
            healthLease?.set(...serverListenerVerdict(accepted, message)),
        });
        stream = s;
        const info: XdsStreamInfo = { nodeId, service: inst.service, ...s.stats };
        live.set(call, { info, stream: s });
        s.onRequest(req);
        watch = o.proxies.open(nodeId, {
          write: (msg) => {
            if (msg.type === "snapshot") s.onSnapshot(msg.snapshot as ProxySnapshot);
            else if (msg.type === "close") {
              fail(call, weftError("WEFT_ERR_UNAVAILABLE", { detail: msg.reason }));
            }
            // The stream keeps only the latest snapshot: never backed up from ProxyStreams' side.
            return true;
          },
          onDrain: (fn) => drainFns.push(fn),
          end: () => {
            if (!closed && !call.writableEnded) {
              fail(
                call,
                weftError("WEFT_ERR_UNAVAILABLE", { detail: "xDS stream closed by the control plane" }),
              );
            }
          },
        });
        healthLease = health?.open(nodeId);
        o.logger?.info({ node: nodeId, service: inst.service }, "xDS client connected");
      } catch (err) {
        const e = isWeftError(err)
          ? err
          : weftError("WEFT_ERR_UNAVAILABLE", { detail: describeError(err) }, { cause: err });
        o.logger?.warn({ node: nodeId, code: e.code, error: e.message }, "xDS stream refused");
        cleanup();
        fail(call, e);
      }
    });
  };

  server.addService(adsService().service, { StreamAggregatedResources: handle });
  const lrs = o.golden ? addLrsService(server, { ...o, golden: o.golden }) : undefined;
  const hostPort = `${o.host.includes(":") ? `[${o.host}]` : o.host}:${o.port}`;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(hostPort, grpc.ServerCredentials.createInsecure(), (err, p) => {
      if (err) {
        reject(
          weftError(
            "WEFT_ERR_UNAVAILABLE",
            { detail: `cannot listen on ${hostPort} (xDS): ${describeError(err)}` },
            { cause: err },
          ),
        );
      } else resolve(p);
    });
  });
  o.logger?.info({ addr: `${o.host}:${port}` }, "xDS (ADS) listening");
  if (!isLoopbackHost(o.host)) {
    // Plaintext for now: tokens in node metadata cross the network in clear (see the report of issue #11).
    o.logger?.warn({ addr: `${o.host}:${port}` }, "xDS listener is plaintext on a non-loopback address");
  }

  let closing: Promise<void> | undefined;
  return {
    port,
    nacks,
    streams: () =>
      [...live.values()].map(({ info, stream }) => ({
        ...info,
        ...stream.stats,
        nodeId: info.nodeId,
        acked: stream.acked(),
      })),
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        health?.stop();
        lrs?.close();
        for (const call of [...live.keys()]) {
          call.emit("error", { code: grpc.status.UNAVAILABLE, details: "control plane shutting down" });
        }
        const cut = setTimeout(() => server.forceShutdown(), 3_000);
        cut.unref();
        server.tryShutdown(() => {
          clearTimeout(cut);
          resolve();
        });
      });
      return closing;
    },
  };
}
