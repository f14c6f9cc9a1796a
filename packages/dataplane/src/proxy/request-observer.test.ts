import type { ProxySnapshot } from "@weft/api/snapshot";
import { describe, expect, it } from "vitest";
import type { RequestHead } from "../http/headers.js";
import type { DataplaneLogger } from "../logger.js";
import { RequestObservers } from "./request-observer.js";

const WEB = "spiffe://weft.local/ns/default/svc/web";
const API = "spiffe://weft.local/ns/default/svc/api";

function snapshot(extra: Partial<ProxySnapshot> = {}): ProxySnapshot {
  return {
    format: 1,
    version: "v1",
    proxy: { service: "web", instanceId: "web-1", datacenter: "dc1", spiffeId: WEB },
    mesh: { trustDomain: "weft.local", defaultPolicy: "deny" },
    inbound: { protocol: "http", authz: { defaultAction: "deny", intention: false, sources: [] } },
    upstreams: [],
    clusters: {
      api: {
        name: "api",
        service: "api",
        protocol: "http",
        spiffeId: API,
        lb: { policy: "round_robin" },
        connectTimeoutMs: 1000,
        idleTimeoutMs: 1000,
        circuitBreaker: { maxConnections: 1, maxPendingRequests: 1, maxRequests: 1, maxRetries: 1 },
        endpoints: [],
      },
    },
    ...extra,
  };
}

function recorder(): DataplaneLogger & { lines: object[] } {
  const lines: object[] = [];
  return {
    lines,
    info: (o: object) => {
      lines.push(o);
    },
    warn: () => {},
  };
}

const head = (): RequestHead => ({
  method: "GET",
  path: "/v1/items?key=SECRET",
  authority: "api.local",
  headers: {
    authorization: "Bearer SECRET",
    traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  },
});

describe("RequestObservers", () => {
  it("makes no observer and changes no header with neither tracing nor an access-log destination", () => {
    const o = new RequestObservers({ service: "web", instanceId: "web-1", logger: recorder() });
    o.apply(snapshot());
    const h = head();
    const before = structuredClone(h);
    expect(o.outbound("api", h, false)).toBeUndefined();
    expect(o.inbound(h, { service: "api", spiffeId: API }, false)).toBeUndefined();
    expect(h).toEqual(before);
  });

  it("logs an outbound request with identities from the snapshot, no trace id without tracing", () => {
    const sink = recorder();
    const o = new RequestObservers({
      service: "web",
      instanceId: "web-1",
      logger: recorder(),
      accessLog: sink,
    });
    o.apply(snapshot());
    const h = head();
    const obs = o.outbound("api", h, false);
    expect(h.headers.traceparent).toBe(head().headers.traceparent); // tracing off: untouched
    obs?.end({
      upstream: "api",
      status: 200,
      flags: "-",
      durationMs: 1.5,
      endpointId: "api-1",
      cluster: "api",
    });
    expect(sink.lines).toEqual([
      {
        type: "http",
        direction: "outbound",
        source: { service: "web", spiffeId: WEB },
        destination: { service: "api", spiffeId: API },
        method: "GET",
        authority: "api.local",
        path: "/v1/items",
        status: 200,
        flags: "-",
        durationMs: 1.5,
        upstream: "api-1",
        cluster: "api",
      },
    ]);
    expect(JSON.stringify(sink.lines)).not.toContain("SECRET");
  });

  it("logs TCP connections with bytes from the source's point of view, and stops when the snapshot says so", () => {
    const sink = recorder();
    const o = new RequestObservers({
      service: "web",
      instanceId: "web-1",
      logger: recorder(),
      accessLog: sink,
    });
    o.apply(snapshot());
    o.tcp(
      { direction: "outbound", result: "ok", bytesSent: 5, bytesReceived: 7, endpointId: "api-1" },
      "web",
      "api",
    );
    o.tcp({ direction: "inbound", result: "denied", bytesSent: 0, bytesReceived: 0 }, "api", "web");
    expect(sink.lines).toEqual([
      {
        type: "tcp",
        direction: "outbound",
        source: { service: "web", spiffeId: WEB },
        destination: { service: "api" },
        result: "ok",
        bytesIn: 5,
        bytesOut: 7,
        upstream: "api-1",
      },
      {
        type: "tcp",
        direction: "inbound",
        source: { service: "api" },
        destination: { service: "web", spiffeId: WEB },
        result: "denied",
        bytesIn: 0,
        bytesOut: 0,
      },
    ]);
    o.apply(snapshot({ accessLog: { enabled: false, sampling: 1 } }));
    o.tcp({ direction: "outbound", result: "ok", bytesSent: 1, bytesReceived: 1 }, "web", "api");
    expect(o.outbound("api", head(), false)).toBeUndefined();
    expect(sink.lines).toHaveLength(2);
  });

  it("with tracing: the forwarded head carries the sidecar's span, and the access-log line its trace id", async () => {
    const sink = recorder();
    const o = new RequestObservers({
      service: "web",
      instanceId: "web-1",
      logger: recorder(),
      accessLog: sink,
    });
    // An endpoint nothing listens on: the SDK loads, spans are queued; shutdown gives up quickly.
    o.apply(snapshot({ tracing: { endpoint: "http://127.0.0.1:9/v1/traces", sampling: 1 } }));
    await o.tracing.ready();
    const h = head();
    const obs = o.inbound(h, { service: "api", spiffeId: API }, false);
    const sent = h.headers.traceparent as string;
    expect(sent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    expect(sent).not.toBe(head().headers.traceparent);
    obs?.end({ peerService: "api", status: 403, flags: "RBAC", durationMs: 0.2 });
    expect(sink.lines[0]).toMatchObject({
      direction: "inbound",
      source: { service: "api", spiffeId: API },
      status: 403,
      flags: "RBAC",
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    });
    // Upgrades keep their own header fields: no span, the line still written.
    const up = head();
    o.outbound("api", up, true)?.end({ upstream: "api", status: 101, flags: "-", durationMs: 1 });
    expect(up.headers.traceparent).toBe(head().headers.traceparent);
    expect(sink.lines).toHaveLength(2);
    await o.shutdown();
  });
});
