/**
 * Proxyless instances in `GET /v1/explain` and `GET /v1/xds/nodes`, over
 * real loopback HTTP against startServer with its ADS listener: `web` has a
 * sidecar instance and a proxyless one (registered as `weft bootstrap grpc`
 * does) calling `api`. A raw grpc-js ADS stream speaks for the proxyless
 * node: it ACKs a Cluster version, then refuses the next one (a NACK with
 * its own message). Explain and the nodes list must say who is connected,
 * what it ACKed and what it refused, in plain words; the ACL hides another
 * service's NACKs; a server without xDS answers an empty list (no 404).
 */
import * as grpc from "@grpc/grpc-js";
import { WeftClient } from "@weft/api/client";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningServer, startServer } from "../server.js";
import type { DiscoveryRequest } from "../xds/ads-stream.js";
import { adsService } from "../xds/protos.js";
import { CLUSTER_TYPE } from "../xds/resources.js";

const silent = pino({ level: "silent" });
const NODE = "web-proxyless-x";

// biome-ignore lint/suspicious/noExplicitAny: JSON bodies are probed field by field in assertions.
type Json = any;

interface Response {
  version_info: string;
  nonce: string;
  type_url: string;
}

let srv: RunningServer;
const closers: (() => unknown)[] = [];

async function call(path: string, token?: string, base = srv.url): Promise<{ status: number; body: Json }> {
  const res = await fetch(base + path, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function post(path: string, body: unknown): Promise<void> {
  const res = await fetch(srv.url + path, {
    method: path.startsWith("/v1/catalog") ? "PUT" : "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status, await res.text()).toBeLessThan(300);
}

const explainUrl = `/v1/explain?${new URLSearchParams({ from: "web", to: "api" })}`;

/** An ADS stream of the proxyless node (dev mode on loopback: no token needed). */
function openAds() {
  const { Client } = adsService();
  const c = new Client(
    `127.0.0.1:${srv.xds?.port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as grpc.Client & {
    StreamAggregatedResources(): grpc.ClientDuplexStream<DiscoveryRequest, Response>;
  };
  const stream = c.StreamAggregatedResources();
  const responses: Response[] = [];
  stream.on("data", (r: Response) => responses.push(r));
  stream.on("error", () => {});
  const close = () => {
    stream.cancel();
    c.close();
  };
  closers.push(close);
  const next = async (n: number): Promise<Response> => {
    await expect.poll(() => responses.length, { timeout: 5_000 }).toBeGreaterThanOrEqual(n);
    return responses[n - 1] as Response;
  };
  const cds = (extra: Partial<DiscoveryRequest> = {}) =>
    stream.write({ node: { id: NODE }, type_url: CLUSTER_TYPE, resource_names: [], ...extra });
  return { cds, next, close };
}

beforeAll(async () => {
  srv = await startServer({
    listen: "127.0.0.1:0",
    storeSpec: "memory",
    dev: true,
    xdsListen: "127.0.0.1:0",
    logger: silent,
  });
  const grpcInstance = (id: string, service: string, port: number, extra: Record<string, unknown> = {}) => ({
    id,
    service,
    address: "127.0.0.1",
    port,
    proxy: { protocol: "grpc", upstreams: [] },
    ...extra,
  });
  await post("/v1/catalog/instances", grpcInstance("api-1", "api", 21001));
  await post(
    "/v1/catalog/instances",
    grpcInstance("web-1", "web", 21002, {
      proxy: { protocol: "grpc", upstreams: [{ service: "api", localPort: 9001 }] },
    }),
  );
  // As `weft bootstrap grpc --service web --upstream api` registers it.
  await post(
    "/v1/catalog/instances",
    grpcInstance(NODE, "web", 21003, {
      tags: ["proxyless"],
      meta: { proxyless: "true" },
      proxy: { protocol: "grpc", upstreams: [{ service: "api", localPort: 1 }] },
    }),
  );
});
afterAll(async () => {
  for (const c of closers.splice(0)) c();
  await srv.close();
});

describe("proxyless instances and their xDS state", () => {
  it("explain names the proxyless instance, not connected, before it opens a stream", async () => {
    expect(await call("/v1/xds/nodes")).toEqual({ status: 200, body: { enabled: true, nodes: [] } });
    const r = await call(explainUrl);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.proxyless).toEqual([
      {
        service: "web",
        role: "source",
        xdsEnabled: true,
        visible: true,
        instances: [{ id: NODE, status: "passing", connected: false, acked: {}, nacks: [] }],
      },
    ]);
    expect(r.body.notes.proxyless).toContain('the caller "web" has 1 proxyless gRPC instance');
    expect(r.body.notes.proxyless).toContain("none connected");
    // Backward compatible: the fields an older client reads are all still there.
    expect(Object.keys(r.body)).toEqual(
      expect.arrayContaining(["from", "to", "decision", "listener", "clusters", "notes"]),
    );
  });

  it("shows the node connected with its ACKed version, then its NACK in plain words", async () => {
    const ads = openAds();
    ads.cds();
    const v1 = await ads.next(1);
    ads.cds({ version_info: v1.version_info, response_nonce: v1.nonce });
    const client = new WeftClient({ addr: srv.url });
    await expect
      .poll(async () => (await client.xdsNodes({ service: "web" })).nodes, { timeout: 5_000 })
      .toMatchObject([
        {
          nodeId: NODE,
          service: "web",
          connected: true,
          stream: { responses: 1, acks: 1, nacks: 0 },
          acked: { Cluster: v1.version_info },
          nacks: [],
        },
      ]);

    // A cluster change (connect timeout) is a new Cluster version; the client refuses it.
    await post("/v1/config/apply", { resources: [{ kind: "Resolver", name: "api", connectTimeout: "2s" }] });
    const v2 = await ads.next(2);
    expect(v2.version_info).not.toBe(v1.version_info);
    ads.cds({
      version_info: v1.version_info,
      response_nonce: v2.nonce,
      error_detail: { code: 3, message: "cluster api: connect_timeout out of range" },
    });
    await expect
      .poll(async () => (await client.xdsNodes()).nodes[0]?.nacks ?? [], { timeout: 5_000 })
      .toMatchObject([
        {
          type: "Cluster",
          typeUrl: CLUSTER_TYPE,
          version: v2.version_info,
          acceptedVersion: v1.version_info,
          message: "cluster api: connect_timeout out of range",
          count: 1,
        },
      ]);

    const r = await call(explainUrl);
    expect(r.status).toBe(200);
    const p = r.body.proxyless[0];
    expect(p.instances[0]).toMatchObject({ id: NODE, connected: true, acked: { Cluster: v1.version_info } });
    expect(p.instances[0].nacks).toHaveLength(1);
    expect(r.body.notes.proxyless).toContain(`${NODE} connected`);
    expect(r.body.notes.proxyless).toContain(
      `node ${NODE} refused Cluster version ${v2.version_info}: cluster api: connect_timeout out of range; it keeps version ${v1.version_info}`,
    );

    // After the node goes away its NACKs stay visible.
    ads.close();
    await expect
      .poll(async () => (await client.xdsNodes()).nodes, { timeout: 5_000 })
      .toMatchObject([{ nodeId: NODE, service: "web", connected: false, stream: null, acked: {} }]);
    expect((await client.xdsNodes()).nodes[0]?.nacks).toHaveLength(1);
    const after = await call(explainUrl);
    expect(after.body.notes.proxyless).toContain("none connected");
    expect(after.body.notes.proxyless).toContain(`node ${NODE} refused Cluster version ${v2.version_info}`);
  });

  it("shows a node's NACKs only to who may read its service", async () => {
    const admin = new WeftClient({ addr: srv.url });
    const apiReader = await admin.createToken({ policies: ["service:api:read"] });
    const webReader = await admin.createToken({ policies: ["service:web:read"] });
    expect((await call("/v1/xds/nodes", apiReader.secretId)).body).toEqual({ enabled: true, nodes: [] });
    const denied = await call("/v1/xds/nodes?service=web", apiReader.secretId);
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe("WEFT_ERR_PERMISSION_DENIED");
    const mine = await call("/v1/xds/nodes?service=web", webReader.secretId);
    expect(mine.body.nodes.map((n: Json) => n.nodeId)).toEqual([NODE]);

    // Explain is allowed by read on `to`; the caller's proxyless state needs read on `from`.
    const r = await call(explainUrl, apiReader.secretId);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.proxyless[0]).toMatchObject({ service: "web", visible: false });
    expect(r.body.proxyless[0].instances[0].nacks).toEqual([]);
    expect(JSON.stringify(r.body)).not.toContain("connect_timeout out of range");
    expect(r.body.notes.proxyless).toContain('needs read permission on "web"');
  });

  it("refuses a bad query with 400", async () => {
    const bad = await call("/v1/xds/nodes?service=Not_A_Name");
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("WEFT_ERR_BAD_QUERY");
    const unknown = await call("/v1/xds/nodes?node=x");
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toContain("node");
  });

  it("answers an empty list, not a 404, when the server runs no xDS; explain says so", async () => {
    const plain = await startServer({
      listen: "127.0.0.1:0",
      storeSpec: "memory",
      dev: true,
      logger: silent,
    });
    try {
      expect(await call("/v1/xds/nodes", undefined, plain.url)).toEqual({
        status: 200,
        body: { enabled: false, nodes: [] },
      });
      const reg = await fetch(`${plain.url}/v1/catalog/instances`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          id: NODE,
          service: "web",
          address: "127.0.0.1",
          port: 21003,
          tags: ["proxyless"],
          proxy: { protocol: "grpc", upstreams: [{ service: "api", localPort: 1 }] },
        }),
      });
      expect(reg.status).toBeLessThan(300);
      const r = await call(explainUrl, undefined, plain.url);
      expect(r.body.proxyless).toMatchObject([{ service: "web", xdsEnabled: false }]);
      expect(r.body.notes.proxyless).toContain("serves no xDS");
    } finally {
      await plain.close();
    }
  });

  it("has no proxyless part when neither side has a proxyless instance", async () => {
    const r = await call(`/v1/explain?${new URLSearchParams({ from: "api", to: "web" })}`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    // The destination web has one: only `web` as destination is listed.
    expect(r.body.proxyless.map((p: Json) => `${p.service}:${p.role}`)).toEqual(["web:destination"]);
    const none = await call(`/v1/explain?${new URLSearchParams({ from: "api", to: "api" })}`);
    expect(none.body.proxyless).toEqual([]);
    expect(none.body.notes.proxyless).toBeUndefined();
  });
});
