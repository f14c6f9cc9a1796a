/**
 * The OpenTelemetry SDK side of tracing: a tracer provider with a
 * BatchSpanProcessor feeding an OTLP/HTTP exporter (JSON), built on demand.
 * Everything here is loaded with dynamic imports, only when the snapshot
 * configures tracing: an idle sidecar without tracing never loads the SDK.
 *
 * The SDK is used for recording and export only. Sampling and propagation
 * are decided in tracer.ts (an AlwaysOn sampler here: a span is started only
 * for a sampled request), and every span gets its parent explicitly, so no
 * global provider or context manager is registered.
 */

import type { Attributes, Span, SpanKind } from "@opentelemetry/api";
import type { TraceContext } from "./trace-context.js";

/** What tracer.ts needs of the SDK. */
export interface SpanSink {
  /** Starts a span of `kind`, child of `parent` (a remote context) or a new trace's root. */
  start(name: string, kind: "client" | "server", parent: TraceContext | undefined, attrs: Attributes): Span;
  /** Exports what is queued and stops; spans started later are dropped. */
  shutdown(): Promise<void>;
}

export interface SinkOptions {
  endpoint: string;
  service: string;
  instanceId: string;
  /** Batch export delay; default 1 s (short, so a test or a crash loses little). */
  scheduledDelayMs?: number;
}

/** Spans kept waiting for export; beyond this new spans are dropped (bounded memory when the collector is away). */
export const MAX_QUEUED_SPANS = 2048;

export async function loadSpanSink(o: SinkOptions): Promise<SpanSink> {
  const [api, sdk, exporterMod, resources] = await Promise.all([
    import("@opentelemetry/api"),
    import("@opentelemetry/sdk-trace-base"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
  ]);
  const exporter = new exporterMod.OTLPTraceExporter({ url: o.endpoint, timeoutMillis: 10_000 });
  const provider = new sdk.BasicTracerProvider({
    resource: resources.resourceFromAttributes({
      "service.name": o.service,
      "service.instance.id": o.instanceId,
    }),
    sampler: new sdk.AlwaysOnSampler(),
    spanProcessors: [
      new sdk.BatchSpanProcessor(exporter, {
        maxQueueSize: MAX_QUEUED_SPANS,
        maxExportBatchSize: 512,
        scheduledDelayMillis: o.scheduledDelayMs ?? 1000,
      }),
    ],
  });
  const tracer = provider.getTracer("weft-proxy");
  const kinds: Record<"client" | "server", SpanKind> = {
    client: api.SpanKind.CLIENT,
    server: api.SpanKind.SERVER,
  };
  return {
    start(name, kind, parent, attrs) {
      let ctx = api.ROOT_CONTEXT;
      if (parent !== undefined) {
        ctx = api.trace.setSpanContext(ctx, {
          traceId: parent.traceId,
          spanId: parent.spanId,
          traceFlags: parent.sampled ? api.TraceFlags.SAMPLED : api.TraceFlags.NONE,
          isRemote: true,
          ...(parent.traceState !== undefined ? { traceState: api.createTraceState(parent.traceState) } : {}),
        });
      }
      return tracer.startSpan(name, { kind: kinds[kind], attributes: attrs }, ctx);
    },
    shutdown: () => provider.shutdown(),
  };
}
