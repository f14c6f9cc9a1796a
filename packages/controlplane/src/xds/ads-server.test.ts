/**
 * The ADS listener of a real control plane (startServer with `xdsListen`),
 * spoken to by a plain grpc-js client of AggregatedDiscoveryService over
 * 127.0.0.1: who is let in (token, node, permission), what a node is sent
 * (its snapshot's resources), NACKs recorded with the client's message, and
 * the stream closed when its instance goes away. The real xDS client is
 * covered by e2e/xds-proxyless.test.ts.
 */
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import type { RunningServer } from "../server.js";
import { NODE_TOKEN_KEY } from "./ads-server.js";
import type { DiscoveryRequest } from "./ads-stream.js";
import { LISTENER_TYPE } from "./resources.js";
import { openAds, startXdsTestServer } from "./xds-test-server.suite.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const setup = () => startXdsTestServer(cleanups);
const open = (srv: RunningServer, md: Record<string, string> = {}) => openAds(srv, cleanups, md);

const lds = (node: Record<string, unknown>, extra: Partial<DiscoveryRequest> = {}): DiscoveryRequest => ({
  node: node as DiscoveryRequest["node"],
  type_url: LISTENER_TYPE,
  resource_names: ["echo"],
  ...extra,
});

describe("xDS server", () => {
  it("refuses a stream without a token, an unknown token, an unknown node, and a token for another service", async () => {
    const { srv, api } = await setup();
    const none = open(srv);
    none.call.write(lds({ id: "client-1" }));
    expect(await none.status).toMatchObject({ code: grpc.status.UNAUTHENTICATED });

    const bad = open(srv, { authorization: "Bearer nope" });
    bad.call.write(lds({ id: "client-1" }));
    expect(await bad.status).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: /unknown token/ });

    const other = await api.createToken({ policies: ["service:web:write"] });
    const denied = open(srv, { authorization: `Bearer ${other.secretId}` });
    denied.call.write(lds({ id: "client-1" }));
    expect(await denied.status).toMatchObject({ code: grpc.status.PERMISSION_DENIED });

    const mine = await api.createToken({ policies: ["service:client:write"] });
    const ghost = open(srv, { authorization: `Bearer ${mine.secretId}` });
    ghost.call.write(lds({ id: "client-9" }));
    expect(await ghost.status).toMatchObject({ code: grpc.status.NOT_FOUND });
    expect(srv.xds!.streams()).toEqual([]);
  });

  it("serves a node its snapshot's listener, records its NACK, and takes the token from node metadata", async () => {
    const { srv, api } = await setup();
    const mine = await api.createToken({ policies: ["service:client:write"] });
    const s = open(srv);
    const node = {
      id: "client-1",
      metadata: { fields: { [NODE_TOKEN_KEY]: { stringValue: mine.secretId } } },
    };
    s.call.write(lds(node));
    const first = await s.next(1);
    expect(first.type_url).toBe(LISTENER_TYPE);
    expect(first.resources).toHaveLength(1);
    expect(first.resources![0]!.type_url).toBe(LISTENER_TYPE);
    expect(srv.xds!.streams()).toMatchObject([{ nodeId: "client-1", service: "client", responses: 1 }]);

    s.call.write(
      lds(node, {
        response_nonce: first.nonce,
        version_info: "",
        error_detail: { code: 3, message: "listener refused for a test" },
      }),
    );
    await expect
      .poll(() => srv.xds!.nacks.list("client-1"))
      .toMatchObject([
        {
          typeUrl: LISTENER_TYPE,
          version: first.version_info,
          message: "listener refused for a test",
          count: 1,
        },
      ]);
    // A new endpoint does not change the listener: nothing is re-sent.
    await api.registerInstance({
      id: "echo-2",
      service: "echo",
      address: "127.0.0.1",
      port: 7003,
      proxy: { protocol: "grpc" },
    });
    expect(s.responses).toHaveLength(1);
  });

  it("closes the stream when the node's instance is deregistered", async () => {
    const { srv, api, token } = await setup();
    const s = open(srv, { authorization: `Bearer ${token}` });
    s.call.write(lds({ id: "client-1" }));
    await s.next(1);
    await api.deregisterInstance("client-1");
    expect(await s.status).toMatchObject({ code: grpc.status.UNAVAILABLE, details: /no longer registered/ });
    await expect.poll(() => srv.xds!.streams()).toEqual([]);
  });
});
