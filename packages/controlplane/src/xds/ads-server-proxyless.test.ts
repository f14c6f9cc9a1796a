/**
 * Proxyless servers on a real control plane's ADS port (startServer with
 * `xdsListen`), spoken to by a plain grpc-js ADS client: the server
 * Listener is answered for the node's own registered port only, passes
 * grpc-js-xds's validation, follows the Intention live; and the node's
 * `xds` check is passing while its stream is open and critical once it
 * ends (stream-health.ts). The real XdsServer is covered by
 * e2e/xds-server.test.ts.
 */
import { SERVER_LISTENER_TEMPLATE } from "@weft/api";
import { afterEach, describe, expect, it } from "vitest";
import type { RunningServer } from "../server.js";
import { NODE_CERT_PROVIDER_KEY } from "./ads-server.js";
import { type Any, decodeContext, decodeListenerAny, newMetadata } from "./grpc-xds-check.suite.js";
import { LISTENER_TYPE } from "./resources.js";
import { type AdsResponse, openAds, startXdsTestServer } from "./xds-test-server.suite.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const PORT = 7101;
const serverName = (port: number) => SERVER_LISTENER_TEMPLATE.replace("%s", `127.0.0.1:${port}`);

const setup = () =>
  startXdsTestServer(cleanups, [
    {
      id: "srv-1",
      service: "api",
      address: "127.0.0.1",
      port: PORT,
      tags: ["proxyless"],
      checks: [{ id: "xds", ttl: "30s" }],
      proxy: { protocol: "grpc" },
    },
  ]);
const open = (srv: RunningServer) => openAds(srv, cleanups);

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
    const r1 = s.responses[0] as AdsResponse;
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
