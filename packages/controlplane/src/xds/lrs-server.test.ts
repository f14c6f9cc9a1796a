/**
 * The LRS service on a real control plane's xDS port (startServer with
 * `xdsListen`), spoken to by a plain grpc-js client of
 * LoadReportingService over 127.0.0.1: who is let in (as ADS: token,
 * node, permission), what a report becomes in /v1/metrics/edges, and how
 * bad input ends a stream with a status and leaves the server serving. The
 * limits (streams, reports per interval) on a bare grpc.Server with
 * `addLrsService`. The real grpc-js-xds client is covered by
 * e2e/xds-metrics.test.ts.
 */
import * as grpc from "@grpc/grpc-js";
import { VirtualClock } from "@weft/testkit";
import { afterEach, describe, expect, it } from "vitest";
import type { Identity } from "../acl/acl.js";
import { GoldenWindow } from "../metrics/golden.js";
import {
  addLrsService,
  type LoadStatsRequest,
  type LoadStatsResponse,
  MAX_REPORTS_PER_INTERVAL,
} from "./lrs-server.js";
import { NODE_TOKEN_KEY } from "./node-auth.js";
import { lrsService } from "./protos.js";
import { startXdsTestServer } from "./xds-test-server.suite.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const setup = () => startXdsTestServer(cleanups);

type LrsCall = grpc.ClientDuplexStream<LoadStatsRequest, LoadStatsResponse>;

/** Opens a StreamLoadStats call; collects responses and the final status. */
function open(port: number, md: Record<string, string> = {}) {
  const { Client } = lrsService();
  const c = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    StreamLoadStats(m: grpc.Metadata): LrsCall;
  };
  cleanups.push(() => c.close());
  const meta = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) meta.set(k, v);
  const call = c.StreamLoadStats(meta);
  const responses: LoadStatsResponse[] = [];
  call.on("data", (r: LoadStatsResponse) => responses.push(r));
  const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  call.on("error", () => {});
  cleanups.push(() => call.cancel());
  return { call, status, responses, client: c };
}

const node = (id: string, token?: string) => ({
  id,
  ...(token !== undefined ? { metadata: { fields: { [NODE_TOKEN_KEY]: { stringValue: token } } } } : {}),
});

const echoStats = (ok: number, failed: number, dropped = 0) => [
  {
    cluster_name: "echo",
    cluster_service_name: "echo",
    upstream_locality_stats: [
      {
        locality: {},
        total_successful_requests: String(ok),
        total_error_requests: String(failed),
        total_issued_requests: String(ok + failed),
        total_requests_in_progress: "0",
      },
    ],
    total_dropped_requests: String(dropped),
    load_report_interval: { seconds: "2", nanos: 0 },
  },
];

describe("LRS server (on the xDS port)", () => {
  it("refuses a stream without a token, an unknown token, an unknown node, no node.id, and a token for another service", async () => {
    const { srv, api } = await setup();
    const port = srv.xds!.port;
    const none = open(port);
    none.call.write({ node: node("client-1"), cluster_stats: [] });
    expect(await none.status).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: /sent no token/ });

    const bad = open(port);
    bad.call.write({ node: node("client-1", "nope"), cluster_stats: [] });
    expect(await bad.status).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: /unknown token/ });

    const other = await api.createToken({ policies: ["service:web:write"] });
    const denied = open(port, { authorization: `Bearer ${other.secretId}` });
    denied.call.write({ node: node("client-1"), cluster_stats: [] });
    expect(await denied.status).toMatchObject({ code: grpc.status.PERMISSION_DENIED });

    const mine = await api.createToken({ policies: ["service:client:write"] });
    const ghost = open(port);
    ghost.call.write({ node: node("client-9", mine.secretId), cluster_stats: [] });
    expect(await ghost.status).toMatchObject({ code: grpc.status.NOT_FOUND, details: /client-9/ });

    const anonymous = open(port, { authorization: `Bearer ${mine.secretId}` });
    anonymous.call.write({ cluster_stats: [] });
    expect(await anonymous.status).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: /node\.id/ });
    expect(none.responses).toEqual([]);
    expect((await api.metricsEdges()).edges).toEqual([]);
  });

  it("answers send_all_clusters every 2 s and turns each report into the edge's deltas, once", async () => {
    const { srv, api } = await setup();
    const mine = await api.createToken({ policies: ["service:client:write"] });
    const s = open(srv.xds!.port);
    // grpc-js-xds's first request: the node, no stats yet.
    s.call.write({ node: node("client-1", mine.secretId), cluster_stats: [] });
    await expect.poll(() => s.responses.length).toBe(1);
    expect(s.responses[0]).toMatchObject({
      send_all_clusters: true,
      load_reporting_interval: { seconds: "2", nanos: 0 },
    });
    s.call.write({ node: null, cluster_stats: echoStats(7, 2, 1) });
    s.call.write({ cluster_stats: echoStats(3, 0) });
    s.call.write({ cluster_stats: [] });
    await expect
      .poll(async () => (await api.metricsEdges()).edges)
      .toEqual([
        expect.objectContaining({
          source: "client",
          destination: "echo",
          requests: 13,
          success: 10,
          latencyMs: { p50: null, p95: null, p99: null },
          proxylessRequests: 13,
        }),
      ]);
    const stat = await api.metricsService("echo");
    expect(stat.service).toMatchObject({ requests: 13, success: 10, proxylessRequests: 13 });
    expect(stat.inbound).toMatchObject([{ source: "client", requests: 13 }]);
    expect(s.responses).toHaveLength(1);
  });

  it("ends a stream on bad input with INVALID_ARGUMENT and keeps serving", async () => {
    const { srv, api } = await setup();
    const mine = await api.createToken({ policies: ["service:client:write"] });
    const port = srv.xds!.port;
    const cases: [unknown, RegExp][] = [
      [[{ cluster_name: "not|ours", upstream_locality_stats: [] }], /not a cluster of this mesh/],
      [Array.from({ length: 513 }, () => ({ cluster_name: "echo" })), /at most 512/],
    ];
    for (const [stats, detail] of cases) {
      const s = open(port);
      s.call.write({ node: node("client-1", mine.secretId), cluster_stats: stats });
      expect(await s.status).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: detail });
    }
    // A later request speaking for another node.
    const swap = open(port);
    swap.call.write({ node: node("client-1", mine.secretId) });
    swap.call.write({ node: node("echo-1"), cluster_stats: echoStats(1, 0) });
    expect(await swap.status).toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: /node\.id changed/,
    });

    // Bytes that are not a LoadStatsRequest: grpc-js refuses them before the handler.
    const { Client } = lrsService();
    const raw = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    cleanups.push(() => raw.close());
    const garbage = raw.makeBidiStreamRequest(
      "/envoy.service.load_stats.v3.LoadReportingService/StreamLoadStats",
      (b: Buffer) => b,
      (b: Buffer) => b,
    );
    const garbageStatus = new Promise<grpc.StatusObject>((resolve) => garbage.on("status", resolve));
    garbage.on("error", () => {});
    garbage.write(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    expect((await garbageStatus).code).not.toBe(grpc.status.OK);

    // A node id that is no instance id (and too big to echo in the status).
    const huge = open(port);
    huge.call.write({ node: { id: "x".repeat(512 * 1024) } });
    expect(await huge.status).toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: /node\.id must be an instance id/,
    });

    // Over the xDS port's message size limit (1 MiB).
    const big = open(port);
    big.call.write({ node: { id: "x".repeat(2 * 1024 * 1024) } });
    expect(await big.status).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });

    // Nothing was counted, and a good stream still works.
    const good = open(port);
    good.call.write({ node: node("client-1", mine.secretId), cluster_stats: echoStats(2, 0) });
    await expect.poll(async () => (await api.metricsEdges()).edges.map((e) => e.requests)).toEqual([2]);
  });

  it("closes the stream when the node's instance is deregistered", async () => {
    const { srv, api, token } = await setup();
    const s = open(srv.xds!.port, { authorization: `Bearer ${token}` });
    s.call.write({ node: node("client-1") });
    await expect.poll(() => s.responses.length).toBe(1);
    await api.deregisterInstance("client-1");
    s.call.write({ cluster_stats: echoStats(1, 0) });
    expect(await s.status).toMatchObject({ code: grpc.status.NOT_FOUND });
    expect((await api.metricsEdges()).edges).toEqual([]);
  });
});

describe("addLrsService limits", () => {
  const operator: Identity = { accessorId: "op", description: "test", policies: ["operator"] };
  async function bare(o: { maxStreams?: number; now?: () => number } = {}) {
    const server = new grpc.Server();
    const golden = new GoldenWindow({ clock: new VirtualClock(10_000) });
    const lrs = addLrsService(server, {
      catalog: { getInstance: (id) => (id === "client-1" ? { service: "client" } : undefined) },
      acl: { resolve: (s) => (s === "good" ? operator : undefined) },
      golden,
      ...o,
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    cleanups.push(() => server.forceShutdown());
    return { port, lrs, golden };
  }

  it("refuses streams beyond maxStreams with UNAVAILABLE and counts the refusals", async () => {
    const { port, lrs } = await bare({ maxStreams: 1 });
    const first = open(port);
    first.call.write({ node: node("client-1", "good") });
    await expect.poll(() => first.responses.length).toBe(1);
    const second = open(port);
    second.call.write({ node: node("client-1", "good") });
    expect(await second.status).toMatchObject({
      code: grpc.status.UNAVAILABLE,
      details: /too many LRS streams/,
    });
    expect(lrs.streams()).toBe(1);
    expect(lrs.stats.refused).toBe(1);
    first.call.end();
    await first.status;
    await expect.poll(() => lrs.streams()).toBe(0);
  });

  it("closes a stream that reports faster than the interval allows", async () => {
    let t = 0;
    const { port, lrs, golden } = await bare({ now: () => t });
    const s = open(port);
    s.call.write({ node: node("client-1", "good"), cluster_stats: echoStats(1, 0) });
    for (let i = 1; i < MAX_REPORTS_PER_INTERVAL; i++) s.call.write({ cluster_stats: echoStats(1, 0) });
    await expect.poll(() => lrs.stats.reports).toBe(MAX_REPORTS_PER_INTERVAL);
    // A new interval: the budget is back.
    t += 2_000;
    s.call.write({ cluster_stats: echoStats(1, 0) });
    await expect.poll(() => lrs.stats.reports).toBe(MAX_REPORTS_PER_INTERVAL + 1);
    for (let i = 0; i < MAX_REPORTS_PER_INTERVAL; i++) s.call.write({ cluster_stats: echoStats(1, 0) });
    expect(await s.status).toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: /load reports in 2000 ms/,
    });
    expect(golden.edges()[0]?.requests).toBe(2 * MAX_REPORTS_PER_INTERVAL);
  });
});
