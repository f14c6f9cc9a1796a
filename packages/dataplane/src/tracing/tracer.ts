/**
 * The sidecar's tracing: per request, read the caller's trace context,
 * decide sampling, make this hop's span (CLIENT on the outbound side,
 * SERVER on the inbound side) a child of it, and write the span's context
 * into the headers that go on, so the next hop continues the same trace.
 *
 * Data flow: snapshot.tracing -> configure() (loads the OTLP sink lazily) ->
 * start() per request (headers rewritten in place) -> RequestSpan.end() with
 * the request's outcome -> BatchSpanProcessor -> OTLP/HTTP collector.
 *
 * Not configured: start() returns undefined at once, no header is touched.
 * Sampling: an incoming decision (W3C flag, B3 sampled) is honoured; a new
 * trace is sampled with probability `sampling`. An unsampled request still
 * gets a fresh span id in its headers (the trace stays connected for hops
 * that do sample), but no span is recorded.
 */

import { randomFillSync } from "node:crypto";
import type { Attributes, Span } from "@opentelemetry/api";
import type { TracingConfig } from "@weft/api/snapshot";
import { describeError } from "@weft/core";
import type { HeaderMap } from "../http/types.js";
import type { DataplaneLogger } from "../logger.js";
import type { SinkOptions, SpanSink } from "./otlp-sink.js";
import { extract, inject, type TraceContext } from "./trace-context.js";

export type SpanKindName = "client" | "server";

/** How a traced request ended, as the span records it. */
export interface SpanOutcome {
  status: number;
  /** Response flags ("-" = none). */
  flags: string;
  /** The service on the other side (the upstream for a client span, the calling service for a server span). */
  peerService?: string;
  route?: string;
  cluster?: string;
  endpointId?: string;
}

export interface RequestSpan {
  /** The trace this request belongs to (also when not sampled): for access logs. */
  readonly traceId: string;
  readonly sampled: boolean;
  /** Records the span (when sampled). Idempotent; never throws. */
  end(o: SpanOutcome): void;
}

export interface RequestInfo {
  method: string;
  /** Path and query as received; the span keeps the path only (a query may hold secrets). */
  path: string;
}

export interface TracingOptions {
  service: string;
  instanceId: string;
  logger?: DataplaneLogger;
  /** The SDK loader (tests pass a recorder); default the OTLP/HTTP sink of otlp-sink.ts, imported lazily. */
  loadSink?: (o: SinkOptions) => Promise<SpanSink>;
  /** Batch export delay of the default sink. */
  scheduledDelayMs?: number;
  /** Randomness for sampling new traces (tests); default Math.random. */
  random?: () => number;
}

/** The most a stop waits for the last spans to be exported. */
export const SHUTDOWN_WAIT_MS = 2_000;

const defaultLoad = async (o: SinkOptions): Promise<SpanSink> =>
  (await import("./otlp-sink.js")).loadSpanSink(o);

/** Random bytes drawn 4 KiB at a time: one system call per ~500 ids instead of one each. */
const POOL = Buffer.alloc(4096);
let poolOffset = POOL.length;

/** Random non-zero hex ids (zero ids are invalid in both W3C and B3). */
function randomId(bytes: number): string {
  for (;;) {
    if (poolOffset + bytes > POOL.length) {
      randomFillSync(POOL);
      poolOffset = 0;
    }
    const id = POOL.toString("hex", poolOffset, poolOffset + bytes);
    poolOffset += bytes;
    if (!/^0+$/.test(id)) return id;
  }
}

export function pathOnly(target: string): string {
  const q = target.search(/[?#]/);
  return q === -1 ? target : target.slice(0, q);
}

export class Tracing {
  private config: TracingConfig | undefined;
  private sink: SpanSink | undefined;
  /** The endpoint of the sink being loaded or in use. */
  private sinkEndpoint: string | undefined;
  private loading: Promise<void> | undefined;
  private readonly random: () => number;

  constructor(private readonly o: TracingOptions) {
    this.random = o.random ?? Math.random;
  }

  get enabled(): boolean {
    return this.config !== undefined;
  }

  /** Applies a snapshot's tracing section; a new endpoint replaces the sink (the old one is flushed). */
  configure(cfg: TracingConfig | undefined): void {
    this.config = cfg;
    const endpoint = cfg?.endpoint;
    if (endpoint === this.sinkEndpoint) return;
    const old = this.sink;
    this.sink = undefined;
    this.sinkEndpoint = endpoint;
    if (old !== undefined) void this.shutdownSink(old);
    if (endpoint === undefined) {
      this.loading = undefined;
      return;
    }
    const load = this.o.loadSink ?? defaultLoad;
    const loading: Promise<void> = load({
      endpoint,
      service: this.o.service,
      instanceId: this.o.instanceId,
      ...(this.o.scheduledDelayMs !== undefined ? { scheduledDelayMs: this.o.scheduledDelayMs } : {}),
    }).then(
      (sink) => {
        // Reconfigured while loading: this sink is no longer wanted.
        if (this.loading !== loading) void this.shutdownSink(sink);
        else this.sink = sink;
      },
      (e: unknown) => {
        this.o.logger?.warn({ endpoint, err: describeError(e) }, "tracing: could not load the OTLP exporter");
      },
    );
    this.loading = loading;
  }

  /** Resolves once the configured exporter is ready (or failed to load): spans started before are not recorded. */
  async ready(): Promise<void> {
    await this.loading;
  }

  /**
   * Starts this hop's span for a request and rewrites `headers` (a copy the
   * caller owns, forwarded next) with its context. Undefined when tracing
   * is not configured. Never throws: a failure leaves the headers as they were.
   */
  start(kind: SpanKindName, headers: HeaderMap, info: RequestInfo): RequestSpan | undefined {
    const cfg = this.config;
    if (cfg === undefined) return undefined;
    try {
      const incoming = extract(headers);
      const parent = incoming.parent;
      const sampled = parent?.sampled ?? incoming.sampled ?? this.random() < cfg.sampling;
      const path = pathOnly(info.path);
      let span: Span | undefined;
      let ctx: TraceContext;
      const sink = this.sink;
      if (sampled && sink !== undefined) {
        span = sink.start(info.method, kind, parent, {
          "http.request.method": info.method,
          "url.path": path,
          "weft.direction": kind === "client" ? "outbound" : "inbound",
        });
        const sc = span.spanContext();
        ctx = { traceId: sc.traceId, spanId: sc.spanId, sampled: true };
      } else {
        ctx = { traceId: parent?.traceId ?? randomId(16), spanId: randomId(8), sampled };
      }
      if (parent?.traceState !== undefined) ctx.traceState = parent.traceState;
      inject(headers, ctx, incoming.b3, parent?.spanId);
      return new HopSpan(ctx.traceId, sampled, span, info.method);
    } catch (e) {
      this.o.logger?.warn({ err: describeError(e) }, "tracing: span not started");
      return undefined;
    }
  }

  /** Flushes queued spans and stops exporting. */
  async shutdown(): Promise<void> {
    await this.loading;
    const sink = this.sink;
    this.sink = undefined;
    this.sinkEndpoint = undefined;
    this.config = undefined;
    this.loading = undefined;
    if (sink !== undefined) await this.shutdownSink(sink);
  }

  /** Bounded: a collector that does not answer must not hold up a sidecar's stop (the exporter waits up to 10 s). */
  private async shutdownSink(sink: SpanSink): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        sink.shutdown(),
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            this.o.logger?.warn({ ms: SHUTDOWN_WAIT_MS }, "tracing: spans not exported before stop");
            resolve();
          }, SHUTDOWN_WAIT_MS);
          timer.unref();
        }),
      ]);
    } catch (e) {
      this.o.logger?.warn({ err: describeError(e) }, "tracing: exporter shutdown failed");
    } finally {
      clearTimeout(timer);
    }
  }
}

class HopSpan implements RequestSpan {
  private ended = false;

  constructor(
    readonly traceId: string,
    readonly sampled: boolean,
    private readonly span: Span | undefined,
    private readonly method: string,
  ) {}

  end(o: SpanOutcome): void {
    if (this.ended) return;
    this.ended = true;
    const span = this.span;
    if (span === undefined) return;
    try {
      const attrs: Attributes = {
        "http.response.status_code": o.status,
        "weft.response_flags": o.flags,
      };
      if (o.peerService) attrs["peer.service"] = o.peerService;
      if (o.route !== undefined) {
        attrs["http.route"] = o.route;
        span.updateName(`${this.method} ${o.route}`);
      }
      if (o.cluster !== undefined) attrs["weft.upstream.cluster"] = o.cluster;
      if (o.endpointId !== undefined) attrs["weft.upstream.instance"] = o.endpointId;
      span.setAttributes(attrs);
      // Status 0: the client went away before a response; 5xx: the request failed (OTel HTTP conventions).
      if (o.status === 0 || o.status >= 500) span.setStatus({ code: 2 /* SpanStatusCode.ERROR */ });
      span.end();
    } catch {
      // Tracing must never break traffic.
    }
  }
}
