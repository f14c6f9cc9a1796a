/**
 * The Load Reporting Service: `envoy.service.load_stats.v3.
 * LoadReportingService/StreamLoadStats` on the ADS server's gRPC port, so
 * proxyless gRPC clients feed the golden metrics as sidecars do.
 *
 * Data flow per stream: first LoadStatsRequest -> node -> authenticate as
 * an ADS stream (node-auth.ts: token, registered instance, write on its
 * service) -> one LoadStatsResponse (send_all_clusters, every 2 s) -> each
 * request, the first included -> metrics/load-report.ts (clusters ->
 * outbound edges from the node's service) -> `GoldenWindow.accept` as a
 * `proxyless` reporter (no latency), once per request: the stream's
 * session and a per-stream seq key it.
 *
 * grpc-js-xds opens this stream when a Cluster names `lrs_server: { self }`
 * (translate.ts sets it) and sends the node only in its first request; its
 * counters are reset as each request is written, so a lost stream loses at
 * most one interval of counts and never counts one twice.
 *
 * Bounded: streams (`maxStreams`), the first request's wait
 * (FIRST_REQUEST_TIMEOUT_MS, node-auth.ts), message size (the server's receive limit),
 * clusters and counts per report (LOAD_REPORT_LIMITS), reports per interval
 * (MAX_REPORTS_PER_INTERVAL). Bad input ends the stream with a status;
 * nothing here throws out of a handler.
 */
import { randomBytes } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import type { EdgeStatsDelta } from "@weft/api";
import { describeError, isWeftError, tracer, type WeftError, weftError } from "@weft/core";
import type { Logger } from "pino";
import { loadReportEdges } from "../metrics/load-report.js";
import { authenticateNode, FIRST_REQUEST_TIMEOUT_MS, type NodeAuthDeps, type XdsNode } from "./node-auth.js";
import { lrsService } from "./protos.js";

const trace = tracer("xds");

/** How often clients report: the golden window's resolution (sidecars push every 2 s too). */
export const LOAD_REPORTING_INTERVAL_MS = 2_000;
/** Reports one stream may send per interval before it is closed (a client sends one). */
export const MAX_REPORTS_PER_INTERVAL = 10;
export const DEFAULT_MAX_LRS_STREAMS = 10_000;

export interface LoadStatsRequest {
  node?: XdsNode | null;
  cluster_stats?: unknown;
}

export interface LoadStatsResponse {
  clusters: string[];
  send_all_clusters: boolean;
  load_reporting_interval: { seconds: string; nanos: number };
  report_endpoint_granularity: boolean;
}

/** Where accepted reports go: `GoldenWindow` (its `proxyless` reporter). */
export interface LoadSink {
  accept(
    key: string,
    session: string,
    seq: number,
    edges: readonly EdgeStatsDelta[],
    reporter: "proxyless",
  ): boolean;
  forget(key: string): void;
}

export interface LrsOptions extends NodeAuthDeps {
  golden: LoadSink;
  logger?: Logger | undefined;
  maxStreams?: number;
  /** Default LOAD_REPORTING_INTERVAL_MS. */
  intervalMs?: number;
  /** Default Date.now (the report-rate bound only). */
  now?: () => number;
}

export interface LrsCounters {
  /** Reports added to the window. */
  reports: number;
  /** Streams ended for bad input, a failed check or a limit. */
  refused: number;
}

export interface LrsService {
  /** Open, authenticated streams. */
  streams(): number;
  readonly stats: LrsCounters;
  /** Ends every stream (UNAVAILABLE); the server's shutdown does the rest. */
  close(): void;
}

type Call = grpc.ServerDuplexStream<LoadStatsRequest, LoadStatsResponse>;

/** The golden-window reporter key of a node's LRS streams (apart from a sidecar's reports). */
export const lrsReporterKey = (nodeId: string): string => `lrs:${nodeId}`;

/** Adds StreamLoadStats to `server` (the ADS server, before it binds). */
export function addLrsService(server: grpc.Server, o: LrsOptions): LrsService {
  const maxStreams = o.maxStreams ?? DEFAULT_MAX_LRS_STREAMS;
  const intervalMs = o.intervalMs ?? LOAD_REPORTING_INTERVAL_MS;
  const now = o.now ?? Date.now;
  const live = new Set<Call>();
  const stats: LrsCounters = { reports: 0, refused: 0 };
  const response: LoadStatsResponse = {
    clusters: [],
    send_all_clusters: true,
    load_reporting_interval: {
      seconds: String(Math.floor(intervalMs / 1000)),
      nanos: (intervalMs % 1000) * 1_000_000,
    },
    report_endpoint_granularity: false,
  };

  const handle = (call: Call): void => {
    let nodeId: string | undefined;
    let service = "";
    let closed = false;
    const session = randomBytes(8).toString("hex");
    let seq = 0;
    let periodStart = now();
    let inPeriod = 0;

    const cleanup = (): void => {
      if (closed) return;
      closed = true;
      clearTimeout(firstTimer);
      live.delete(call);
      if (nodeId !== undefined) o.golden.forget(lrsReporterKey(nodeId));
    };
    const fail = (e: WeftError): void => {
      if (closed) return;
      stats.refused += 1;
      trace("LRS stream refused", { node: nodeId, code: e.code, detail: e.message });
      o.logger?.warn({ node: nodeId, code: e.code, error: e.message }, "LRS stream refused");
      cleanup();
      call.emit("error", { code: e.grpc, details: e.message });
    };
    const firstTimer = setTimeout(() => {
      fail(weftError("WEFT_ERR_UNAUTHENTICATED", { detail: "no LoadStatsRequest with a node id" }));
    }, FIRST_REQUEST_TIMEOUT_MS);
    firstTimer.unref();

    call.on("cancelled", cleanup);
    call.on("close", cleanup);
    call.on("finish", cleanup);
    call.on("error", cleanup);
    call.on("end", () => {
      cleanup();
      if (!call.writableEnded) call.end();
    });

    const onReport = (req: LoadStatsRequest): void => {
      if (nodeId === undefined) {
        clearTimeout(firstTimer);
        const auth = authenticateNode(o, call.metadata, req.node, "LoadStatsRequest");
        if (live.size >= maxStreams) {
          throw weftError("WEFT_ERR_UNAVAILABLE", {
            detail: `too many LRS streams (${maxStreams}); retry later`,
          });
        }
        nodeId = auth.nodeId;
        service = auth.service;
        live.add(call);
        call.write(response);
        o.logger?.info({ node: nodeId, service }, "LRS client connected");
      } else {
        // Envoy and gRPC send the node only once; a later one must not speak for someone else.
        const id = req.node?.id;
        if (typeof id === "string" && id !== "" && id !== nodeId) {
          throw weftError("WEFT_ERR_VALIDATION", { detail: `node.id changed on the stream ("${nodeId}")` });
        }
        // The instance may have left (or moved) since the stream was authorized.
        const inst = o.catalog.getInstance(nodeId);
        if (!inst) throw weftError("WEFT_ERR_NOT_FOUND", { what: `instance "${nodeId}" (node.id)` });
        if (inst.service !== service) {
          throw weftError("WEFT_ERR_UNAVAILABLE", {
            detail: `instance "${nodeId}" changed service; reconnect`,
          });
        }
      }
      const t = now();
      if (t - periodStart >= intervalMs) {
        periodStart = t;
        inPeriod = 0;
      }
      inPeriod += 1;
      if (inPeriod > MAX_REPORTS_PER_INTERVAL) {
        throw weftError("WEFT_ERR_VALIDATION", {
          detail: `more than ${MAX_REPORTS_PER_INTERVAL} load reports in ${intervalMs} ms (the interval is ${intervalMs} ms)`,
        });
      }
      const r = loadReportEdges(service, req.cluster_stats);
      if (!r.ok) throw weftError("WEFT_ERR_VALIDATION", { detail: `LoadStatsRequest: ${r.error}` });
      seq += 1;
      if (r.edges.length > 0 && o.golden.accept(lrsReporterKey(nodeId), session, seq, r.edges, "proxyless")) {
        stats.reports += 1;
      }
    };

    call.on("data", (req: LoadStatsRequest) => {
      if (closed) return;
      try {
        onReport(req);
      } catch (err) {
        fail(
          isWeftError(err)
            ? err
            : weftError("WEFT_ERR_UNAVAILABLE", { detail: describeError(err) }, { cause: err }),
        );
      }
    });
  };

  server.addService(lrsService().service, { StreamLoadStats: handle });
  return {
    streams: () => live.size,
    stats,
    close: () => {
      for (const call of [...live]) {
        live.delete(call);
        call.emit("error", { code: 14, details: "control plane shutting down" });
      }
    },
  };
}
