import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Attributes, Span } from "@opentelemetry/api";
import { checkSnapshot } from "@weft/api/snapshot";
import { afterEach, describe, expect, it } from "vitest";
import type { HeaderMap } from "../http/types.js";
import type { SinkOptions, SpanSink } from "./otlp-sink.js";
import { parseTraceparent, type TraceContext } from "./trace-context.js";
import { pathOnly, SHUTDOWN_WAIT_MS, Tracing } from "./tracer.js";

// biome-ignore lint/suspicious/noExplicitAny: OTLP JSON, checked field by field
type Json = any;

const T = "4bf92f3577b34da6a3ce929d0e0e4736";
const S = "00f067aa0ba902b7";

interface Recorded {
  name: string;
  kind: string;
  parent: TraceContext | undefined;
  attrs: Attributes;
  ended: boolean;
  status?: number;
  spanId: string;
  traceId: string;
}

/** A sink that records spans instead of exporting them. */
function recorder(): { sink: SpanSink; spans: Recorded[]; loads: SinkOptions[]; shutdowns: number } {
  const spans: Recorded[] = [];
  const state = { spans, loads: [] as SinkOptions[], shutdowns: 0, sink: undefined as unknown as SpanSink };
  let n = 0;
  state.sink = {
    start(name, kind, parent, attrs) {
      n++;
      const r: Recorded = {
        name,
        kind,
        parent,
        attrs: { ...attrs },
        ended: false,
        traceId: parent?.traceId ?? "f".repeat(32),
        spanId: n.toString(16).padStart(16, "a"),
      };
      spans.push(r);
      const span = {
        spanContext: () => ({ traceId: r.traceId, spanId: r.spanId, traceFlags: 1 }),
        setAttributes: (a: Attributes) => {
          Object.assign(r.attrs, a);
          return span;
        },
        setStatus: (s: { code: number }) => {
          r.status = s.code;
          return span;
        },
        updateName: (nm: string) => {
          r.name = nm;
          return span;
        },
        end: () => {
          r.ended = true;
        },
      };
      return span as unknown as Span;
    },
    async shutdown() {
      state.shutdowns++;
    },
  };
  return state;
}

function tracing(rec: ReturnType<typeof recorder>, random = () => 0.5): Tracing {
  return new Tracing({
    service: "web",
    instanceId: "web-1",
    random,
    loadSink: async (o) => {
      rec.loads.push(o);
      return rec.sink;
    },
  });
}

const cfg = (sampling = 1) => ({ endpoint: "http://127.0.0.1:4318/v1/traces", sampling });

describe("Tracing", () => {
  it("does nothing, and touches no header, when not configured", () => {
    const rec = recorder();
    const t = tracing(rec);
    const headers: HeaderMap = { traceparent: `00-${T}-${S}-01` };
    expect(t.start("client", headers, { method: "GET", path: "/" })).toBeUndefined();
    expect(headers).toEqual({ traceparent: `00-${T}-${S}-01` });
    expect(rec.loads).toEqual([]);
  });

  it("continues the caller's trace: a child span whose context goes on in the headers", async () => {
    const rec = recorder();
    const t = tracing(rec);
    t.configure(cfg());
    await t.ready();
    const headers: HeaderMap = { traceparent: `00-${T}-${S}-01`, tracestate: "k=v" };
    const span = t.start("client", headers, { method: "POST", path: "/orders?token=SECRET" });
    expect(span?.traceId).toBe(T);
    const sent = parseTraceparent(headers.traceparent as string);
    expect(sent?.traceId).toBe(T);
    expect(sent?.spanId).toBe(rec.spans[0]?.spanId);
    expect(sent?.spanId).not.toBe(S);
    expect(headers.tracestate).toBe("k=v");
    expect(rec.spans[0]?.parent).toEqual({ traceId: T, spanId: S, sampled: true, traceState: "k=v" });
    expect(rec.spans[0]?.attrs["url.path"]).toBe("/orders");
    span?.end({ status: 503, flags: "UF", peerService: "api", route: 'route[0] "r"', cluster: "api" });
    span?.end({ status: 200, flags: "-" }); // idempotent
    expect(rec.spans[0]).toMatchObject({
      ended: true,
      status: 2,
      name: 'POST route[0] "r"',
      attrs: {
        "http.response.status_code": 503,
        "weft.response_flags": "UF",
        "peer.service": "api",
        "weft.upstream.cluster": "api",
      },
    });
  });

  it("honours an incoming 'not sampled': new span id propagated, nothing recorded", async () => {
    const rec = recorder();
    const t = tracing(rec, () => 0);
    t.configure(cfg(1));
    await t.ready();
    const headers: HeaderMap = { traceparent: `00-${T}-${S}-00` };
    const span = t.start("server", headers, { method: "GET", path: "/" });
    span?.end({ status: 200, flags: "-" });
    expect(rec.spans).toEqual([]);
    const sent = parseTraceparent(headers.traceparent as string);
    expect(sent).toMatchObject({ traceId: T, sampled: false });
    expect(sent?.spanId).not.toBe(S);
  });

  it("starts a new trace for a request without trace headers, sampled by the configured rate", async () => {
    const rec = recorder();
    let r = 0.3;
    const t = tracing(rec, () => r);
    t.configure(cfg(0.25));
    await t.ready();
    const unsampled: HeaderMap = {};
    t.start("client", unsampled, { method: "GET", path: "/" });
    expect(parseTraceparent(unsampled.traceparent as string)?.sampled).toBe(false);
    expect(rec.spans).toHaveLength(0);
    r = 0.1;
    const sampled: HeaderMap = {};
    t.start("client", sampled, { method: "GET", path: "/" });
    expect(parseTraceparent(sampled.traceparent as string)?.sampled).toBe(true);
    expect(rec.spans).toHaveLength(1);
    expect(rec.spans[0]?.parent).toBeUndefined();
  });

  it("answers B3 with B3 and honours a B3 sampling decision without ids", async () => {
    const rec = recorder();
    const t = tracing(rec, () => 0);
    t.configure(cfg(1));
    await t.ready();
    const headers: HeaderMap = { b3: "0" };
    t.start("client", headers, { method: "GET", path: "/" });
    expect(rec.spans).toHaveLength(0);
    expect(typeof headers.b3).toBe("string");
    expect((headers.b3 as string).endsWith("-0")).toBe(true);
    expect(parseTraceparent(headers.traceparent as string)?.sampled).toBe(false);
  });

  it("loads one sink per endpoint, replaces it on a new endpoint and stops it when tracing is removed", async () => {
    const rec = recorder();
    const t = tracing(rec);
    t.configure(cfg(1));
    t.configure(cfg(0.5)); // same endpoint: no reload
    await t.ready();
    expect(rec.loads.map((l) => l.endpoint)).toEqual(["http://127.0.0.1:4318/v1/traces"]);
    expect(rec.loads[0]).toMatchObject({ service: "web", instanceId: "web-1" });
    t.configure({ endpoint: "http://127.0.0.1:9/v1/traces", sampling: 1 });
    await t.ready();
    expect(rec.shutdowns).toBe(1);
    t.configure(undefined);
    expect(t.enabled).toBe(false);
    expect(rec.shutdowns).toBe(2);
    expect(t.start("client", {}, { method: "GET", path: "/" })).toBeUndefined();
  });

  it("keeps traffic going when the exporter cannot be loaded: context propagated, no span", async () => {
    const warnings: string[] = [];
    const t = new Tracing({
      service: "web",
      instanceId: "web-1",
      logger: { info: () => {}, warn: (_o, m) => warnings.push(m) },
      loadSink: async () => {
        throw new Error("no SDK");
      },
    });
    t.configure(cfg(1));
    await t.ready();
    const headers: HeaderMap = {};
    const span = t.start("client", headers, { method: "GET", path: "/" });
    expect(span?.sampled).toBe(true);
    expect(parseTraceparent(headers.traceparent as string)?.traceId).toBe(span?.traceId);
    expect(warnings).toEqual(["tracing: could not load the OTLP exporter"]);
  });

  it("does not wait long for a collector that never answers when stopping", async () => {
    const rec = recorder();
    rec.sink.shutdown = () => new Promise<void>(() => {});
    const t = tracing(rec);
    t.configure(cfg(1));
    await t.ready();
    const started = Date.now();
    await t.shutdown();
    expect(Date.now() - started).toBeLessThan(SHUTDOWN_WAIT_MS + 1_000);
  });

  it("strips query and fragment from paths", () => {
    expect(pathOnly("/a/b?x=1#f")).toBe("/a/b");
    expect(pathOnly("/a#f")).toBe("/a");
    expect(pathOnly("/plain")).toBe("/plain");
  });
});

describe("Tracing with the OpenTelemetry SDK (OTLP/HTTP JSON)", () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
  });

  it("exports client and server spans with their parents to the configured endpoint", async () => {
    const bodies: unknown[] = [];
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        if (req.url === "/v1/traces") bodies.push(JSON.parse(Buffer.concat(chunks).toString("utf8")));
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((r) => server?.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as AddressInfo).port;
    const t = new Tracing({ service: "web", instanceId: "web-1", scheduledDelayMs: 50 });
    t.configure({ endpoint: `http://127.0.0.1:${port}/v1/traces`, sampling: 1 });
    await t.ready();
    const h: HeaderMap = { traceparent: `00-${T}-${S}-01` };
    const client = t.start("client", h, { method: "GET", path: "/x?secret=1" });
    const server2 = t.start("server", h, { method: "GET", path: "/x" });
    server2?.end({ status: 200, flags: "-", peerService: "web" });
    client?.end({ status: 200, flags: "-", peerService: "api", cluster: "api" });
    await t.shutdown();
    const spans = (bodies as Json[]).flatMap((b) =>
      (b.resourceSpans as Json[]).flatMap((rs) =>
        (rs.scopeSpans as Json[]).flatMap((ss) =>
          (ss.spans as Json[]).map((s) => ({ ...s, resource: rs.resource })),
        ),
      ),
    );
    expect(spans).toHaveLength(2);
    const c = spans.find((s: { kind: number }) => s.kind === 3); // CLIENT
    const sv = spans.find((s: { kind: number }) => s.kind === 2); // SERVER
    expect(c.traceId).toBe(T);
    expect(c.parentSpanId).toBe(S);
    expect(sv.traceId).toBe(T);
    expect(sv.parentSpanId).toBe(c.spanId);
    const attr = (s: { attributes: { key: string; value: Record<string, unknown> }[] }, k: string) =>
      s.attributes.find((a) => a.key === k)?.value;
    expect(attr(c, "url.path")).toEqual({ stringValue: "/x" });
    expect(attr(c, "peer.service")).toEqual({ stringValue: "api" });
    expect(c.resource.attributes).toContainEqual({ key: "service.name", value: { stringValue: "web" } });
    expect(JSON.stringify(bodies)).not.toContain("secret");
  });
});

describe("checkSnapshot: tracing and accessLog", () => {
  const base = {
    format: 1,
    version: "v1",
    proxy: {
      service: "web",
      instanceId: "web-1",
      datacenter: "dc1",
      spiffeId: "spiffe://weft.local/ns/default/svc/web",
    },
    mesh: { trustDomain: "weft.local", defaultPolicy: "deny" },
    inbound: { protocol: "http", authz: { defaultAction: "deny", intention: false, sources: [] } },
    upstreams: [],
    clusters: {},
  };

  it.each([
    [{ tracing: { endpoint: "http://127.0.0.1:4318/v1/traces", sampling: 0.5 } }, true],
    [{ tracing: { endpoint: "ftp://x/v1/traces", sampling: 0.5 } }, false],
    [{ tracing: { endpoint: "not a url", sampling: 0.5 } }, false],
    [{ tracing: { endpoint: "http://x/v1/traces", sampling: 1.5 } }, false],
    [{ tracing: { endpoint: "http://x/v1/traces" } }, false],
    [{ accessLog: { enabled: false, sampling: 1 } }, true],
    [{ accessLog: { enabled: "yes", sampling: 1 } }, false],
    [{ accessLog: { enabled: true, sampling: -0.1 } }, false],
  ])("%j valid: %s", (extra, ok) => {
    expect(checkSnapshot({ ...base, ...extra }).ok).toBe(ok);
  });
});
