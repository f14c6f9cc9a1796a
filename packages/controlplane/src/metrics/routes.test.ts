/**
 * The observability routes against a real control plane (memory store,
 * real sockets, ACL on): a sidecar's token reports for its own service only,
 * bodies are checked at the boundary, reads give exact counts, /metrics is
 * Prometheus text.
 */
import {
  bucketIndex,
  type EdgeStatsDelta,
  GOLDEN_BUCKET_COUNT,
  type ProxyStatsReport,
  WeftClient,
} from "@weft/api/client";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningServer, startServer } from "../server.js";

let srv: RunningServer;
let operator: WeftClient;
let apiProxy: WeftClient;
let webProxy: WeftClient;

function edge(
  direction: "inbound" | "outbound",
  source: string,
  destination: string,
  n: number,
  failed = 0,
  ms = 4,
): EdgeStatsDelta {
  const buckets = new Array<number>(GOLDEN_BUCKET_COUNT).fill(0);
  buckets[bucketIndex(ms)] = n;
  return { direction, source, destination, requests: n, success: n - failed, buckets };
}

async function raw(path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set("authorization", `Bearer ${init.token}`);
  return fetch(`${srv.url}${path}`, { ...init, headers });
}

beforeAll(async () => {
  srv = await startServer({ listen: "127.0.0.1:0", storeSpec: "memory", logger: pino({ level: "silent" }) });
  operator = new WeftClient({ addr: srv.url, token: srv.bootstrapToken });
  const apiTok = await operator.createToken({ policies: ["service:api:write"] });
  const webTok = await operator.createToken({ policies: ["service:web:write"] });
  apiProxy = new WeftClient({ addr: srv.url, token: apiTok.secretId });
  webProxy = new WeftClient({ addr: srv.url, token: webTok.secretId });
  await apiProxy.registerInstance({ id: "api-1", service: "api", address: "127.0.0.1", port: 1001 });
  await webProxy.registerInstance({ id: "web-1", service: "web", address: "127.0.0.1", port: 1002 });
});
afterAll(async () => {
  await srv.close();
});

describe("golden metrics API", () => {
  it("counts what sidecars report, once per report, per service and per edge", async () => {
    const r1: ProxyStatsReport = { session: "a1", seq: 1, edges: [edge("inbound", "web", "api", 20, 2)] };
    expect(await apiProxy.pushProxyStats("api-1", r1)).toEqual({ accepted: true, edges: 1 });
    // A resend of the same report (its answer was lost) is not counted again.
    expect(await apiProxy.pushProxyStats("api-1", r1)).toEqual({ accepted: false, edges: 1 });
    await webProxy.pushProxyStats("web-1", {
      session: "w1",
      seq: 1,
      edges: [edge("outbound", "web", "api", 21, 3)],
    });

    const all = await operator.metricsServices();
    expect(all.window.slotSeconds).toBe(5);
    const api = all.services.find((s) => s.service === "api");
    expect(api).toMatchObject({ requests: 20, success: 18, successRate: 0.9 });
    expect(api?.latencyMs.p50).toBeGreaterThan(2.5);
    expect(api?.latencyMs.p99).toBeLessThanOrEqual(5);
    // A registered service without traffic is listed with zeros.
    expect(all.services.find((s) => s.service === "web")).toMatchObject({ requests: 0, successRate: null });

    const one = await operator.metricsService("api");
    expect(one.service.requests).toBe(20);
    expect(one.inbound).toMatchObject([{ source: "web", destination: "api", requests: 21, success: 18 }]);
    expect(one.outbound).toEqual([]);
    const webView = await operator.metricsService("web");
    expect(webView.outbound).toMatchObject([{ destination: "api", requests: 21 }]);

    const edges = await operator.metricsEdges();
    expect(edges.edges).toMatchObject([{ source: "web", destination: "api", requests: 21 }]);
  });

  it("a report may only speak for the reporter's service", async () => {
    const lie = { session: "a1", seq: 9, edges: [edge("inbound", "web", "billing", 5)] };
    await expect(apiProxy.pushProxyStats("api-1", lie)).rejects.toMatchObject({
      code: "WEFT_ERR_VALIDATION",
      message: expect.stringContaining("edges[0].destination"),
    });
    const outLie = { session: "a1", seq: 9, edges: [edge("outbound", "web", "api", 5)] };
    await expect(apiProxy.pushProxyStats("api-1", outLie)).rejects.toMatchObject({
      code: "WEFT_ERR_VALIDATION",
    });
    // Another service's token may not report for api's instance.
    await expect(webProxy.pushProxyStats("api-1", { session: "x", seq: 1, edges: [] })).rejects.toMatchObject(
      { code: "WEFT_ERR_PERMISSION_DENIED" },
    );
    await expect(apiProxy.pushProxyStats("nope", { session: "x", seq: 1, edges: [] })).rejects.toMatchObject({
      code: "WEFT_ERR_NOT_FOUND",
    });
  });

  it("refuses malformed bodies naming the field", async () => {
    const bad = [
      [{ session: "a", seq: 1, edges: [], extra: 1 }, "extra"],
      [{ session: "a b", seq: 1, edges: [] }, "session"],
      [{ session: "a", seq: 0, edges: [] }, "seq"],
      [
        { session: "a", seq: 1, edges: [{ ...edge("inbound", "web", "api", 3), success: 4 }] },
        "edges[0].success",
      ],
      [
        { session: "a", seq: 1, edges: [{ ...edge("inbound", "web", "api", 3), requests: 2 }] },
        "edges[0].buckets",
      ],
      [
        { session: "a", seq: 1, edges: [{ ...edge("inbound", "web", "api", 3), buckets: [3] }] },
        "edges[0].buckets",
      ],
      [{ session: "a", seq: 1, edges: [{ ...edge("inbound", "Web!", "api", 3) }] }, "edges[0].source"],
      [
        { session: "a", seq: 1, edges: [{ ...edge("inbound", "web", "api", 3), requests: -3 }] },
        "edges[0].requests",
      ],
    ] as const;
    for (const [body, field] of bad) {
      const r = await apiProxy.pushProxyStats("api-1", body as unknown as ProxyStatsReport).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(r, JSON.stringify(body)).toMatchObject({ code: "WEFT_ERR_VALIDATION" });
      expect((r as Error).message).toContain(field);
    }
    const tooMany = { session: "a", seq: 1, edges: new Array(513).fill(edge("inbound", "web", "api", 1)) };
    await expect(apiProxy.pushProxyStats("api-1", tooMany)).rejects.toMatchObject({
      code: "WEFT_ERR_VALIDATION",
    });
    // Nothing of the refused reports was counted.
    expect((await operator.metricsService("api")).service.requests).toBe(20);
  });

  it("reads need a token with the right permission; unknown services are 404", async () => {
    expect((await raw("/v1/metrics/services")).status).toBe(401);
    expect((await raw("/v1/metrics/edges")).status).toBe(401);
    const readApi = await operator.createToken({ policies: ["service:api:read"] });
    expect((await raw("/v1/metrics/services/api", { token: readApi.secretId })).status).toBe(200);
    expect((await raw("/v1/metrics/services/web", { token: readApi.secretId })).status).toBe(403);
    await expect(operator.metricsService("ghost")).rejects.toMatchObject({ code: "WEFT_ERR_NOT_FOUND" });
    expect((await raw("/v1/metrics/services/Bad_Name", { token: srv.bootstrapToken })).status).toBe(400);
  });

  it("GET /metrics: Prometheus text with the control plane's gauges and counters", async () => {
    expect((await raw("/metrics")).status).toBe(401);
    const r = await raw("/metrics", { token: srv.bootstrapToken });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await r.text();
    expect(text).toMatch(/^weft_controlplane_instances\{status="passing"\} 2$/m);
    expect(text).toMatch(/^weft_controlplane_services 2$/m);
    expect(text).toMatch(/^weft_controlplane_proxy_streams 0$/m);
    expect(text).toMatch(/^weft_controlplane_stats_reports_total\{result="accepted"\} 2$/m);
    expect(text).toMatch(/^weft_controlplane_stats_reports_total\{result="duplicate"\} 1$/m);
    expect(text).toMatch(/^process_cpu_seconds_total /m);
  });
});
