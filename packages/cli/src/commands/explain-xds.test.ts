/**
 * `weft xds`, the proxyless section of `weft explain` and the proxyless
 * note of `weft instances`, in-process against a real control plane with
 * its ADS listener (memory store, dev mode). The NACK is recorded in the
 * server's own NackLog (the ADS path that records it is covered with a raw
 * gRPC stream in controlplane/src/explain/explain-xds.test.ts).
 */
import { tmpdir } from "node:os";
import { WeftClient } from "@weft/api/client";
import { type RunningServer, startServer } from "@weft/controlplane";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "../exit-codes.js";
import { runCaptured } from "../run-captured.suite.js";

const CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
let srv: RunningServer;
let plain: RunningServer;

beforeAll(async () => {
  const logger = pino({ level: "silent" });
  srv = await startServer({
    listen: "127.0.0.1:0",
    storeSpec: "memory",
    dev: true,
    xdsListen: "127.0.0.1:0",
    logger,
  });
  plain = await startServer({ listen: "127.0.0.1:0", storeSpec: "memory", dev: true, logger });
  const client = new WeftClient({ addr: srv.url });
  await client.registerInstance({
    id: "api-1",
    service: "api",
    address: "127.0.0.1",
    port: 1001,
    proxy: { protocol: "grpc" },
  });
  await client.registerInstance({
    id: "web-proxyless-x",
    service: "web",
    address: "127.0.0.1",
    port: 1002,
    tags: ["proxyless"],
    meta: { proxyless: "true" },
    proxy: { protocol: "grpc", upstreams: [{ service: "api", localPort: 1 }] },
  });
  await client.registerInstance({
    id: "web-1",
    service: "web",
    address: "127.0.0.1",
    port: 1003,
    proxy: { protocol: "grpc", upstreams: [{ service: "api", localPort: 9001 }] },
  });
});
afterAll(async () => {
  await srv?.close();
  await plain?.close();
});

const weft = (addr: string, ...args: string[]) => runCaptured([...args, "--addr", addr], tmpdir());

describe("weft xds", () => {
  it("says so when the control plane serves no xDS, and prints the empty answer as JSON", async () => {
    const r = await weft(plain.url, "xds");
    expect(r.code).toBe(EXIT.OK);
    expect(r.out).toBe("");
    expect(r.err).toContain("serves no xDS");
    const j = await weft(plain.url, "xds", "--json");
    expect(JSON.parse(j.out)).toEqual({ enabled: false, nodes: [] });
  });

  it("lists no node before any connects, then a NACKing node with the client's message", async () => {
    const empty = await weft(srv.url, "xds");
    expect(empty.err).toContain("no xDS nodes");
    srv.xds?.nacks.record({
      nodeId: "web-proxyless-x",
      typeUrl: CLUSTER,
      version: "v7",
      nonce: "3",
      acceptedVersion: "v6",
      message: "cluster api: bad lb policy",
      at: Date.parse("2026-01-02T03:04:05Z"),
    });
    const r = await weft(srv.url, "xds", "--service", "web");
    expect(r.code, r.err).toBe(EXIT.OK);
    const lines = r.out.split("\n");
    expect(lines[0]).toMatch(/^NODE\s+SERVICE\s+STREAM\s+RESPONSES\s+ACKS\s+NACKS\s+ACKED$/);
    expect(lines[1]).toMatch(/^web-proxyless-x\s+web\s+not connected\s+-\s+-\s+1\s+-$/);
    expect(r.out).toContain(
      "2026-01-02T03:04:05.000Z  node web-proxyless-x refused Cluster version v7: cluster api: bad lb policy; it keeps version v6",
    );
    const other = await weft(srv.url, "xds", "--service", "api");
    expect(other.err).toContain("no xDS nodes of api");
  });
});

describe("weft explain with a proxyless caller", () => {
  it("shows the proxyless section with the NACK in plain words; --json keeps the old fields", async () => {
    const r = await weft(srv.url, "explain", "--from", "web", "--to", "api");
    expect(r.code, r.err).toBe(EXIT.OK);
    expect(r.out).toContain("proxyless gRPC instances (no sidecar; config over xDS):\n  web (the caller):\n");
    expect(r.out).toMatch(/ {4}web-proxyless-x {2}passing {2}not connected\n/);
    expect(r.out).toContain(
      "NACK 2026-01-02T03:04:05.000Z: node web-proxyless-x refused Cluster version v7: cluster api: bad lb policy; it keeps version v6",
    );
    // Said once, in the section, not again in the notes.
    expect(r.out).not.toMatch(/^ {2}proxyless: /m);
    const j = JSON.parse((await weft(srv.url, "explain", "--from", "web", "--to", "api", "--json")).out);
    expect(j.decision).toBeDefined();
    expect(j.notes.proxyless).toContain("refused Cluster version v7");
    expect(j.proxyless[0].instances[0].nacks[0]).toMatchObject({ type: "Cluster", count: 1 });
  });

  it("has no proxyless section when neither side has proxyless instances", async () => {
    const r = await weft(srv.url, "explain", "--from", "api", "--to", "api");
    expect(r.out).not.toContain("proxyless");
  });
});

describe("weft instances", () => {
  it("names the proxyless instances after the table, on stderr; the columns are unchanged", async () => {
    const r = await weft(srv.url, "instances", "web");
    expect(r.code).toBe(EXIT.OK);
    expect(r.out.split("\n")[0]).toMatch(
      /^ID\s+ADDRESS\s+STATUS\s+CHECKS\s+TAGS\s+DATACENTER\s+CERT EXPIRES$/,
    );
    expect(r.out).toMatch(/web-proxyless-x\s+127\.0\.0\.1:1002\s+passing\s+-\s+proxyless\s/);
    expect(r.err).toBe(
      "proxyless gRPC (no sidecar, config over xDS): web-proxyless-x; their xDS state: weft xds --service web\n",
    );
    const api = await weft(srv.url, "instances", "api");
    expect(api.err).toBe("");
  });
});
