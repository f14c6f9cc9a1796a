/**
 * The ADS protocol rules of one stream, without sockets: what is sent for
 * each request and snapshot, ACK and NACK by error_detail, stale nonces,
 * wildcard and named subscriptions, resend on a new stream, make-before-
 * break, and backpressure (latest wins).
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { ProxySnapshot } from "@weft/api";
import { describe, expect, it } from "vitest";
import { AdsStream, type DiscoveryRequest, type DiscoveryResponse } from "./ads-stream.js";
import { NackLog } from "./nack-log.js";
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from "./resources.js";

const BASE = JSON.parse(
  readFileSync(
    fileURLToPath(new URL("./testdata/golden/grpc-echo-features.snapshot.json", import.meta.url)),
    "utf8",
  ),
) as ProxySnapshot;

/** A simple snapshot: listener echo -> cluster `target` (default echo); cluster echo has `ports`. */
function snap(ports: number[], target = "echo"): ProxySnapshot {
  const echo = { ...BASE.clusters.echo!, failover: undefined, outlierDetection: undefined } as NonNullable<
    ProxySnapshot["clusters"]["echo"]
  >;
  delete echo.failover;
  delete echo.outlierDetection;
  echo.endpoints = ports.map((p) => ({
    id: `e${p}`,
    address: "127.0.0.1",
    port: p,
    weight: 1,
    health: "passing",
  }));
  const clusters: ProxySnapshot["clusters"] = { echo };
  if (target !== "echo") clusters[target] = { ...echo, name: target, service: target };
  return {
    ...BASE,
    upstreams: [
      {
        service: "echo",
        localPort: 1,
        protocol: "grpc",
        cluster: target,
      },
    ],
    clusters,
  };
}

function harness(o: { blockAfter?: number } = {}) {
  const sent: DiscoveryResponse[] = [];
  const nacks = new NackLog();
  const s = new AdsStream({
    nodeId: "n1",
    nacks,
    now: () => 42,
    send: (r) => {
      sent.push(r);
      return o.blockAfter === undefined || sent.length < o.blockAfter;
    },
  });
  const req = (type: string, names: string[], last?: DiscoveryResponse, error?: string): void => {
    const r: DiscoveryRequest = { type_url: type, resource_names: names, node: { id: "n1" } };
    if (last) {
      r.response_nonce = last.nonce;
      r.version_info = last.version_info;
    }
    if (error !== undefined) r.error_detail = { code: 3, message: error };
    s.onRequest(r);
  };
  const lastOf = (type: string) => sent.filter((r) => r.type_url === type).at(-1);
  const names = (r: DiscoveryResponse | undefined) =>
    (r?.resources ?? []).map((x) => (x.name ?? x.cluster_name) as string);
  return { s, sent, nacks, req, lastOf, names };
}

describe("AdsStream", () => {
  it("answers each first request with the subscribed resources, one nonce per response", () => {
    const h = harness();
    h.s.onSnapshot(snap([7001]));
    expect(h.sent).toHaveLength(0); // nothing subscribed yet
    h.req(LISTENER_TYPE, ["echo"]);
    h.req(CLUSTER_TYPE, []); // wildcard
    h.req(ROUTE_TYPE, ["echo"]);
    h.req(ENDPOINT_TYPE, ["echo"]);
    expect(h.sent.map((r) => r.type_url)).toEqual([LISTENER_TYPE, CLUSTER_TYPE, ROUTE_TYPE, ENDPOINT_TYPE]);
    expect(new Set(h.sent.map((r) => r.nonce)).size).toBe(4);
    expect(h.names(h.lastOf(CLUSTER_TYPE))).toEqual(["echo"]);
    expect(h.names(h.lastOf(LISTENER_TYPE))).toEqual(["echo"]);
  });

  it("sends only the names asked for, and an unknown name as nothing", () => {
    const h = harness();
    h.s.onSnapshot(snap([7001]));
    h.req(LISTENER_TYPE, ["nope"]);
    expect(h.lastOf(LISTENER_TYPE)?.resources).toEqual([]);
  });

  it("sends nothing again on an ACK, and a new version when the snapshot changes", () => {
    const h = harness();
    h.s.onSnapshot(snap([7001]));
    h.req(ENDPOINT_TYPE, ["echo"]);
    const first = h.lastOf(ENDPOINT_TYPE)!;
    h.req(ENDPOINT_TYPE, ["echo"], first); // ACK
    expect(h.sent).toHaveLength(1);
    expect(h.s.stats.acks).toBe(1);
    h.s.onSnapshot(snap([7001])); // same content
    expect(h.sent).toHaveLength(1);
    h.s.onSnapshot(snap([7001, 7002]));
    const second = h.lastOf(ENDPOINT_TYPE)!;
    expect(h.sent).toHaveLength(2);
    expect(second.version_info).not.toBe(first.version_info);
    expect(second.nonce).not.toBe(first.nonce);
  });

  it("tells a NACK by error_detail, records the client's message, and does not resend the refused version", () => {
    const h = harness();
    h.s.onSnapshot(snap([7001]));
    h.req(ENDPOINT_TYPE, ["echo"]);
    const refused = h.lastOf(ENDPOINT_TYPE)!;
    // The NACK carries the client's previous version ("" here), and the nonce of what it refuses.
    h.s.onRequest({
      type_url: ENDPOINT_TYPE,
      resource_names: ["echo"],
      response_nonce: refused.nonce,
      version_info: "",
      error_detail: { code: 3, message: "bad endpoint" },
    });
    expect(h.sent).toHaveLength(1);
    expect(h.s.stats.nacks).toBe(1);
    // A NACK is not also an ACK: neither counted nor taken as the accepted version.
    expect(h.s.stats.acks).toBe(0);
    expect(h.s.acked()).toEqual({});
    expect(h.nacks.list("n1")).toEqual([
      {
        nodeId: "n1",
        typeUrl: ENDPOINT_TYPE,
        version: refused.version_info,
        nonce: refused.nonce,
        acceptedVersion: "",
        message: "bad endpoint",
        at: 42,
        count: 1,
      },
    ]);
    // Re-building the same content offers nothing; a change offers a new version.
    h.s.onSnapshot(snap([7001]));
    expect(h.sent).toHaveLength(1);
    h.s.onSnapshot(snap([7003]));
    expect(h.sent).toHaveLength(2);
  });

  it("ignores a request answering a nonce that a newer response replaced", () => {
    const h = harness();
    h.s.onSnapshot(snap([7001]));
    h.req(ENDPOINT_TYPE, ["echo"]);
    const old = h.lastOf(ENDPOINT_TYPE)!;
    h.s.onSnapshot(snap([7002]));
    expect(h.sent).toHaveLength(2);
    h.req(ENDPOINT_TYPE, ["echo", "other"], old, "late NACK of an old version");
    expect(h.s.stats.stale).toBe(1);
    expect(h.nacks.list()).toEqual([]);
    expect(h.sent).toHaveLength(2); // the names change in a stale request is ignored too
  });

  it("answers a subscription change at once, with the same version when only names changed", () => {
    const h = harness();
    h.s.onSnapshot(snap([7001]));
    h.req(CLUSTER_TYPE, ["echo"]);
    const a = h.lastOf(CLUSTER_TYPE)!;
    h.req(CLUSTER_TYPE, ["echo", "x"], a);
    expect(h.sent).toHaveLength(2);
    expect(h.lastOf(CLUSTER_TYPE)!.version_info).toBe(a.version_info);
  });

  it("resends everything on a new stream whatever version the client says it has", () => {
    const h1 = harness();
    h1.s.onSnapshot(snap([7001]));
    h1.req(CLUSTER_TYPE, []);
    const had = h1.lastOf(CLUSTER_TYPE)!;
    const h2 = harness();
    h2.s.onSnapshot(snap([7001]));
    h2.s.onRequest({ type_url: CLUSTER_TYPE, resource_names: [], version_info: had.version_info });
    expect(h2.sent).toHaveLength(1);
    expect(h2.sent[0]!.version_info).toBe(had.version_info); // versions are digests: stable across streams
  });

  it("keeps a dropped cluster until the client has answered the routes that stopped naming it", () => {
    const h = harness();
    h.s.onSnapshot(snap([7001], "old")); // the listener goes to "old"
    h.req(CLUSTER_TYPE, []);
    h.req(ROUTE_TYPE, ["echo"]);
    h.req(CLUSTER_TYPE, [], h.lastOf(CLUSTER_TYPE));
    h.req(ROUTE_TYPE, ["echo"], h.lastOf(ROUTE_TYPE));
    const before = h.sent.length;
    h.s.onSnapshot(snap([7001], "fresh")); // "old" is gone, the route now names "fresh"
    const update = h.sent.slice(before);
    expect(update.map((r) => r.type_url)).toEqual([CLUSTER_TYPE, ROUTE_TYPE]); // clusters first
    expect(h.names(update[0])).toEqual(["echo", "fresh", "old"]); // "old" stays while routes may name it
    h.req(CLUSTER_TYPE, [], update[0]);
    expect(h.sent).toHaveLength(before + 2);
    h.req(ROUTE_TYPE, ["echo"], update[1]); // ACK of the new routes
    expect(h.sent).toHaveLength(before + 3);
    expect(h.names(h.lastOf(CLUSTER_TYPE))).toEqual(["echo", "fresh"]);
  });

  it("keeps the dropped cluster while the client refuses the routes that stopped naming it", () => {
    const h = harness();
    h.s.onSnapshot(snap([7001], "old"));
    h.req(CLUSTER_TYPE, []);
    h.req(ROUTE_TYPE, ["echo"]);
    h.req(CLUSTER_TYPE, [], h.lastOf(CLUSTER_TYPE));
    h.req(ROUTE_TYPE, ["echo"], h.lastOf(ROUTE_TYPE));
    h.s.onSnapshot(snap([7001], "fresh"));
    h.req(ROUTE_TYPE, ["echo"], h.lastOf(ROUTE_TYPE), "refused");
    expect(h.names(h.lastOf(CLUSTER_TYPE))).toEqual(["echo", "fresh", "old"]);
    h.s.onSnapshot(snap([7001], "fresher")); // a new Route update: ACKed this time
    h.req(ROUTE_TYPE, ["echo"], h.lastOf(ROUTE_TYPE));
    expect(h.names(h.lastOf(CLUSTER_TYPE))).toEqual(["echo", "fresher"]);
  });

  it("holds responses while the transport is backed up and then sends only the latest", () => {
    const h = harness({ blockAfter: 1 });
    h.s.onSnapshot(snap([7001]));
    h.req(ENDPOINT_TYPE, ["echo"]); // sent, and the transport says it is full
    h.req(CLUSTER_TYPE, []);
    h.s.onSnapshot(snap([7002]));
    h.s.onSnapshot(snap([7003]));
    expect(h.sent).toHaveLength(1);
    h.s.drained();
    const after = h.sent.slice(1);
    expect(after.map((r) => r.type_url)).toEqual([CLUSTER_TYPE]); // blocked again after one
    h.s.drained();
    const eds = h.lastOf(ENDPOINT_TYPE)!;
    expect(JSON.stringify(eds.resources)).toMatch(/7003/);
    expect(JSON.stringify(eds.resources)).not.toMatch(/7002/);
    expect(h.sent).toHaveLength(3);
  });
});

describe("NackLog", () => {
  it("counts a repeated refusal of one version once, and bounds nodes and records", () => {
    const log = new NackLog({ perNode: 2, maxNodes: 2 });
    const r = { typeUrl: ROUTE_TYPE, nonce: "1", acceptedVersion: "", message: "no", at: 1 };
    log.record({ ...r, nodeId: "a", version: "v1" });
    log.record({ ...r, nodeId: "a", version: "v1" });
    expect(log.list("a")).toHaveLength(1);
    expect(log.list("a")[0]!.count).toBe(2);
    log.record({ ...r, nodeId: "a", version: "v2" });
    log.record({ ...r, nodeId: "a", version: "v3" });
    expect(log.list("a").map((x) => x.version)).toEqual(["v2", "v3"]);
    log.record({ ...r, nodeId: "b", version: "v1" });
    log.record({ ...r, nodeId: "c", version: "v1" });
    expect(log.list("a")).toEqual([]); // the least recently NACKing node went
    expect(log.list().map((x) => x.nodeId)).toEqual(["b", "c"]);
    expect(log.total).toBe(6);
  });
});
