/**
 * Proxyless servers on a real control plane's ADS port (startServer with
 * `xdsListen`), spoken to by a plain grpc-js ADS client: the server
 * Listener is answered for the node's own registered port only, passes
 * grpc-js-xds's validation, follows the Intention live; and the node's
 * `xds` check is passing while its stream is open and critical once it
 * ends (stream-health.ts). The real XdsServer is covered by
 * e2e/xds-server.test.ts.
 */
import * as grpc from "@grpc/grpc-js";
import { WeftClient } from "@weft/api/client";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { type RunningServer, startServer } from "../server.js";
import { NODE_CERT_PROVIDER_KEY } from "./ads-server.js";
import type { DiscoveryRequest } from "./ads-stream.js";
import { type Any, decodeContext, decodeListenerAny, newMetadata } from "./grpc-xds-check.suite.js";
import { adsService } from "./protos.js";
import { LISTENER_TYPE } from "./resources.js";
import { SERVER_LISTENER_TEMPLATE } from "./translate-server.js";

const logger = pino({ level: "silent" });
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const PORT = 7101;
const serverName = (port: number) => SERVER_LISTENER_TEMPLATE.replace("%s", `127.0.0.1:${port}`);

interface Response {
  version_info: string;
  nonce: string;
  type_url: string;
  resources?: { type_url: string; value: Buffer }[];
}

async function setup(): Promise<{ srv: RunningServer; api: WeftClient }> {
  const srv = await startServer({
    listen: "127.0.0.1:0",
    storeSpec: "memory",
    xdsListen: "127.0.0.1:0",
    logger,
  });
  cleanups.push(() => srv.close());
  const api = new WeftClient({ addr: srv.url, token: srv.bootstrapToken as string });
  await api.registerInstance({
    id: "srv-1",
    service: "api",
    address: "127.0.0.1",
    port: PORT,
    tags: ["proxyless"],
    checks: [{ id: "xds", ttl: "30s" }],
    proxy: { protocol: "grpc" },
  });
  return { srv, api };
}

function open(srv: RunningServer) {
  const { Client } = adsService();
  const c = new Client(
    `127.0.0.1:${srv.xds!.port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as grpc.Client & {
    StreamAggregatedResources(m: grpc.Metadata): grpc.ClientDuplexStream<DiscoveryRequest, Response>;
  };
  cleanups.push(() => c.close());
  const call = c.StreamAggregatedResources(new grpc.Metadata());
  const responses: Response[] = [];
  const waiters: (() => void)[] = [];
  call.on("data", (r: Response) => {
    responses.push(r);
    for (const w of waiters.splice(0)) w();
  });
  call.on("error", () => {});
  cleanups.push(() => call.cancel());
  const next = (n: number) =>
    new Promise<Response>((resolve) => {
      const check = () =>
        responses.length >= n ? resolve(responses[n - 1] as Response) : waiters.push(check);
      check();
    });
  return { call, next, responses };
}

const node = (token: string, provider?: string) => ({
  id: "srv-1",
  metadata: {
    fields: {
      weft_token: { stringValue: token },
      ...(provider ? { [NODE_CERT_PROVIDER_KEY]: { stringValue: provider } } : {}),
    },
  },
});

async function waitFor(cond: () => Promise<boolean>, what: string): Promise<void> {
  const until = Date.now() + 10_000;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const call = (name: string) => ({
  headers: (() => {
    const md = newMetadata();
    md.set(":method", "POST");
    return md;
  })(),
  urlPath: "/weft.e2e.Echo/Unary",
  tls: true,
  peerCertificate: { subjectaltname: `URI:spiffe://weft.local/ns/default/svc/${name}`, subject: {} },
});

describe("ADS for proxyless servers", () => {
  it("answers a server Listener for the node's own port only, valid for grpc-js-xds, and follows the Intention", async () => {
    const { srv, api } = await setup();
    await api.applyConfig([{ kind: "Intention", name: "api", sources: [{ name: "web", action: "allow" }] }]);
    const s = open(srv);
    s.call.write({
      node: node(srv.bootstrapToken as string, "weft"),
      type_url: LISTENER_TYPE,
      resource_names: [serverName(PORT), serverName(PORT + 1), "echo"],
    });
    const r = await s.next(1);
    expect(r.resources).toHaveLength(1);
    const d = decodeListenerAny(r.resources?.[0] as Any, decodeContext(["weft"]));
    expect(d.error).toBeUndefined();
    expect(d.name).toBe(serverName(PORT));
    expect(d.rbac?.apply(call("web"))).toBe(true);
    expect(d.rbac?.apply(call("batch"))).toBe(false);

    // The Intention changes: a new Listener on the same stream, with the new decision.
    s.call.write({
      node: { id: "srv-1" },
      type_url: LISTENER_TYPE,
      resource_names: [serverName(PORT), serverName(PORT + 1), "echo"],
      response_nonce: r.nonce,
      version_info: r.version_info,
    });
    await api.applyConfig([
      {
        kind: "Intention",
        name: "api",
        sources: [
          { name: "web", action: "deny" },
          { name: "batch", action: "allow" },
        ],
      },
    ]);
    const r2 = await s.next(2);
    expect(r2.version_info).not.toBe(r.version_info);
    const d2 = decodeListenerAny(r2.resources?.[0] as Any, decodeContext(["weft"]));
    expect(d2.rbac?.apply(call("web"))).toBe(false);
    expect(d2.rbac?.apply(call("batch"))).toBe(true);
  });

  it("answers nothing for another port's server Listener name", async () => {
    const { srv } = await setup();
    const s = open(srv);
    s.call.write({
      node: node(srv.bootstrapToken as string),
      type_url: LISTENER_TYPE,
      resource_names: [serverName(PORT + 1)],
    });
    const r = await s.next(1);
    expect(r.resources ?? []).toHaveLength(0);
  });

  it("keeps the node's xds check passing while its stream is open, critical once it ends", async () => {
    const { srv, api } = await setup();
    const check = async () => (await api.getInstance("srv-1")).checks.find((c) => c.id === "xds");
    expect(await check()).toMatchObject({ status: "critical" });
    const s = open(srv);
    s.call.write({
      node: node(srv.bootstrapToken as string),
      type_url: LISTENER_TYPE,
      resource_names: [serverName(PORT)],
    });
    await s.next(1);
    await waitFor(async () => (await check())?.status === "passing", "the xds check passing");
    expect((await api.healthService("api")).instances.map((i) => i.id)).toEqual(["srv-1"]);
    // The server refuses its Listener (no RBAC support): not serving, so critical while the stream stays open.
    const r1 = s.responses[0] as Response;
    s.call.write({
      node: { id: "srv-1" },
      type_url: LISTENER_TYPE,
      resource_names: [serverName(PORT)],
      response_nonce: r1.nonce,
      version_info: "",
      error_detail: { code: 3, message: "envoy.filters.http.rbac filter validation failed" },
    });
    await waitFor(
      async () => (await check())?.status === "critical",
      "the xds check critical after the NACK",
    );
    expect((await check())?.output).toMatch(/server Listener was refused: envoy\.filters\.http\.rbac/);
    s.call.cancel();
    await waitFor(async () => (await check())?.output === "xDS stream closed", "the xds check closed");
    expect(await check()).toMatchObject({ status: "critical" });
  });
});
