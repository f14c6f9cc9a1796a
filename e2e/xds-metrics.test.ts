/**
 * Golden metrics from proxyless gRPC clients, end to end: `weft server
 * --xds-listen`, two echo servers (e2e/apps/grpc-app.mjs) registered
 * directly in the catalog (no sidecar, no xDS stream of their own), `weft
 * bootstrap grpc` for the client, and the real @grpc/grpc-js-xds client
 * (e2e/apps/xds-client.mjs) on `xds:///echo`. The control plane's Clusters
 * name `lrs_server: self`, so the client opens LRS on the xDS port and
 * reports its calls every 2 s; /v1/metrics/edges and `weft stat echo
 * --json` must show exactly the calls made (Unary succeeds, Fail answers
 * NOT_FOUND), with rate and success rate and no latency percentiles.
 */
import type { EdgeGolden, WeftClient } from "@weft/api/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, meshCleanup, startApp, waitFor } from "./helpers/mesh.js";
import { runWeft } from "./helpers/weft.js";
import {
  batchFailed,
  batchTotal,
  bootstrapGrpc,
  startXdsControlPlane,
  stopXdsClients,
  XdsClient,
  type XdsControlPlane,
} from "./helpers/xds-client.js";

const apps: App[] = [];
let x: XdsControlPlane;
let api: WeftClient;
let client: XdsClient;

async function edge(): Promise<EdgeGolden | undefined> {
  return (await api.metricsEdges()).edges.find((e) => e.source === "client" && e.destination === "echo");
}

beforeAll(async () => {
  x = await startXdsControlPlane();
  api = x.api;
  for (const replica of ["a", "b"]) {
    const app = await startApp("grpc-app.mjs", { env: { REPLICA: replica } });
    apps.push(app);
    await api.registerInstance({
      id: `echo-${replica}`,
      service: "echo",
      address: "127.0.0.1",
      port: app.port,
      tags: ["proxyless"],
      proxy: { protocol: "grpc" },
    });
  }
  const { file } = await bootstrapGrpc(x, {
    service: "client",
    id: "client-1",
    port: 50051,
    upstreams: ["echo"],
  });
  client = await XdsClient.start(file);
}, 60_000);

afterAll(async () => {
  stopXdsClients();
  await meshCleanup();
});

describe("golden metrics from proxyless gRPC clients (LRS)", () => {
  it("shows exactly the calls a grpc-js-xds client made on the client -> echo edge", async () => {
    // Until the client has its config, calls fail before any balancer pick and are not reported.
    await waitFor(async () => batchTotal(await client.calls(1)) === 1, 20_000, {
      what: "a first call reaching echo",
    });
    // The warm-up calls (reported or still to be) are the baseline: wait until it stops moving
    // (over two report intervals), then everything after it is the test's.
    let baseline: EdgeGolden | undefined;
    await waitFor(
      async () => {
        const before = await edge();
        await new Promise((r) => setTimeout(r, 4_500));
        const after = await edge();
        baseline = after;
        return before !== undefined && after !== undefined && before.requests === after.requests;
      },
      30_000,
      { what: "the warm-up calls all reported" },
    );
    const base = baseline as EdgeGolden;
    expect(base.latencyMs).toEqual({ p50: null, p95: null, p99: null });

    const good = await client.calls(120);
    const bad = await client.calls(30, { method: "Fail" });
    const done = Date.now();
    expect(batchTotal(good)).toBe(120);
    expect(bad.errors).toEqual({ 5: 30 });
    expect(Object.keys(good.counts).sort()).toEqual(["a", "b"]);
    const n = batchTotal(good) + batchFailed(bad);

    // One report period is 2 s: the next report carries every call above (allow a second one for scheduling).
    const seen = await waitFor(
      async () => {
        const e = await edge();
        return e !== undefined && e.requests >= base.requests + n ? e : undefined;
      },
      6_000,
      { what: `${n} more requests on client -> echo` },
    );
    console.log(
      `LRS: ${n} calls (${batchTotal(good)} ok, ${batchFailed(bad)} NOT_FOUND) on client -> echo in /v1/metrics/edges after ${Date.now() - done} ms: ${JSON.stringify(seen)}`,
    );
    expect(seen.requests).toBe(base.requests + n);
    expect(seen.success).toBe(base.success + batchTotal(good));
    expect(seen.proxylessRequests).toBe(seen.requests);
    expect(seen.successRate).toBeCloseTo(seen.success / seen.requests, 9);
    expect(seen.rps).toBeGreaterThan(0);
    expect(seen.latencyMs).toEqual({ p50: null, p95: null, p99: null });

    // No report counts twice: two more intervals later the figures have not moved.
    await new Promise((r) => setTimeout(r, 4_500));
    expect((await edge())?.requests).toBe(seen.requests);

    const stat = await runWeft(["stat", "echo", "--json", "--addr", x.addr, "--token", x.token]);
    expect(stat.code, stat.stderr).toBe(0);
    const body = JSON.parse(stat.stdout);
    // echo has no sidecar: its own figures are its proxyless callers' reports.
    expect(body.service).toMatchObject({
      service: "echo",
      requests: seen.requests,
      success: seen.success,
      proxylessRequests: seen.requests,
      latencyMs: { p50: null, p95: null, p99: null },
    });
    expect(body.inbound).toEqual([expect.objectContaining({ source: "client", requests: seen.requests })]);
    const text = await runWeft(["stat", "echo", "--addr", x.addr, "--token", x.token]);
    expect(text.code, text.stderr).toBe(0);
    // Latency columns show "-", not 0.
    expect(text.stdout).toMatch(
      new RegExp(`\\nclient\\s+echo\\s+\\S+\\s+\\d+\\.\\d\\d%\\s+-\\s+-\\s+-\\s+${seen.requests}\\n`),
    );
  }, 90_000);
});
