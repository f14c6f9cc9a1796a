import type { ClusterConfig, ProxySnapshot, UpstreamListener } from "@weft/api/snapshot";
import { VirtualClock } from "@weft/testkit";
import { describe, expect, it } from "vitest";
import type { RequestHead } from "../http/headers.js";
import type { ForwardDecision, RouteDecision } from "../http/types.js";
import { ClusterSet } from "./clusters.js";
import { compileListenerRoutes } from "./listener-routes.js";

function cluster(name: string, endpoints: number, extra: Partial<ClusterConfig> = {}): ClusterConfig {
  const [service = name, subset] = name.split(".");
  return {
    name,
    service,
    ...(subset !== undefined ? { subset } : {}),
    protocol: "http",
    spiffeId: `spiffe://weft.local/ns/default/svc/${service}`,
    lb: { policy: "round_robin" },
    connectTimeoutMs: 1000,
    idleTimeoutMs: 60_000,
    circuitBreaker: { maxConnections: 10, maxPendingRequests: 10, maxRequests: 10, maxRetries: 10 },
    endpoints: Array.from({ length: endpoints }, (_, i) => ({
      id: `${name}-${i}`,
      address: "127.0.0.1",
      port: 20_000 + i,
      weight: 1,
      health: "passing" as const,
    })),
    ...extra,
  };
}

function setup(listener: UpstreamListener, clusters: ClusterConfig[], random: () => number = () => 0.5) {
  const set = new ClusterSet(new VirtualClock());
  const snap = { clusters: Object.fromEntries(clusters.map((c) => [c.name, c])) } as unknown as ProxySnapshot;
  set.apply(snap);
  return { set, routes: compileListenerRoutes(listener, set, new VirtualClock(), random) };
}

const head = (path: string, headers: Record<string, string> = {}, method = "GET"): RequestHead => ({
  method,
  path,
  authority: "api:9101",
  headers,
});

function fwd(d: RouteDecision): ForwardDecision {
  if (d.kind !== "forward") throw new Error(`expected forward, got ${JSON.stringify(d)}`);
  return d;
}

const base: UpstreamListener = { service: "api", localPort: 9101, protocol: "http", cluster: "api" };

describe("compileListenerRoutes", () => {
  it("without routes: the listener's cluster, or a split draw", () => {
    const { routes } = setup(base, [cluster("api", 1), cluster("api.v2", 1)]);
    expect(fwd(routes.decide(head("/x"), {})).cluster.name).toBe("api");
    const split = setup(
      {
        ...base,
        splits: [
          { cluster: "api", weight: 10 },
          { cluster: "api.v2", weight: 90 },
        ],
      },
      [cluster("api", 1), cluster("api.v2", 1)],
    );
    expect(fwd(split.routes.decide(head("/x"), {})).cluster.name).toBe("api.v2");
    expect(split.routes.defaultCluster()?.name).toBe("api.v2");
  });

  it("matches routes in order on the canonical path, with rewrites and header changes", () => {
    const { routes } = setup(
      {
        ...base,
        routes: [
          {
            name: "canary",
            match: { pathPrefix: "/api/", headers: [{ name: "x-canary", exact: "1", invert: false }] },
            forward: {
              cluster: "api.v2",
              prefixRewrite: "/v2/",
              hostRewrite: "api.internal",
              timeoutMs: 1500,
              requestHeaders: { set: { "x-route": "canary" } },
              responseHeaders: { remove: ["server"] },
            },
          },
          { match: { pathExact: "/old" }, redirect: { path: "/new", statusCode: 301 } },
          { match: { pathPrefix: "/admin" }, directResponse: { status: 403, body: "no" } },
        ],
      },
      [cluster("api", 1), cluster("api.v2", 1)],
    );
    const d = fwd(routes.decide(head("/api//books/../b?x=1", { "x-canary": "1" }), { "x-canary": "1" }));
    expect(d).toMatchObject({
      route: "canary",
      path: "/v2/b?x=1",
      authority: "api.internal",
      requestTimeoutMs: 1500,
      requestHeaders: [{ set: { "x-route": "canary" } }],
      responseHeaders: [{ remove: ["server"] }],
    });
    expect(d.cluster.name).toBe("api.v2");
    expect(fwd(routes.decide(head("/api/b"), {})).cluster.name).toBe("api");
    expect(routes.decide(head("/old?q=1"), {})).toEqual({
      kind: "reply",
      status: 301,
      headers: { location: "http://api:9101/new?q=1", "content-length": "0" },
      body: "",
      route: "route[1]",
    });
    expect(routes.decide(head("/admin/x"), {})).toMatchObject({ kind: "reply", status: 403, body: "no" });
    expect(routes.decide(head("/a/%2F"), {})).toMatchObject({ kind: "refuse", status: 400 });
  });

  it("draws faults and mirrors by their percentages", () => {
    const listener: UpstreamListener = {
      ...base,
      routes: [
        {
          match: {},
          forward: {
            cluster: "api",
            fault: { delay: { percent: 50, durationMs: 100 }, abort: { percent: 20, httpStatus: 503 } },
            mirror: { cluster: "shadow", percent: 30 },
          },
        },
      ],
    };
    const low = setup(listener, [cluster("api", 1), cluster("shadow", 1)], () => 0.1);
    expect(fwd(low.routes.decide(head("/"), {}))).toMatchObject({ delayMs: 100, abort: { httpStatus: 503 } });
    expect(fwd(low.routes.decide(head("/"), {})).mirror?.name).toBe("shadow");
    const high = setup(listener, [cluster("api", 1), cluster("shadow", 1)], () => 0.6);
    const d = fwd(high.routes.decide(head("/"), {}));
    expect(d.delayMs).toBeUndefined();
    expect(d.abort).toBeUndefined();
    expect(d.mirror).toBeUndefined();
  });

  it("fails over while the primary has no endpoint, in the listed order, and returns", () => {
    const clusters = [
      cluster("api.v1", 0, { failover: ["api.v2", "api.v1@dc2"] }),
      cluster("api.v2", 0),
      cluster("api.v1@dc2", 1),
    ];
    const { set, routes } = setup({ ...base, cluster: "api.v1" }, clusters);
    expect(fwd(routes.decide(head("/"), {})).cluster.name).toBe("api.v1@dc2");
    expect(fwd(routes.decide(head("/"), {})).fallbacks).toBeUndefined();
    set.apply({
      clusters: Object.fromEntries(
        [
          cluster("api.v1", 0, { failover: ["api.v2", "api.v1@dc2"] }),
          cluster("api.v2", 2),
          cluster("api.v1@dc2", 1),
        ].map((c) => [c.name, c]),
      ),
    } as unknown as ProxySnapshot);
    const d = fwd(routes.decide(head("/"), {}));
    expect(d.cluster.name).toBe("api.v2");
    // Should every api.v2 endpoint refuse the request unsent, the next failover cluster takes it.
    expect(d.fallbacks?.map((c) => c.name)).toEqual(["api.v1@dc2"]);
    set.apply({
      clusters: Object.fromEntries(
        [cluster("api.v1", 1, { failover: ["api.v2"] }), cluster("api.v2", 2)].map((c) => [c.name, c]),
      ),
    } as unknown as ProxySnapshot);
    expect(fwd(routes.decide(head("/"), {})).cluster.name).toBe("api.v1");
    expect(fwd(routes.decide(head("/"), {})).fallbacks?.map((c) => c.name)).toEqual(["api.v2"]);
    expect(routes.defaultCluster()?.name).toBe("api.v1");
  });

  it("refuses with NR when the listener's cluster is gone", () => {
    const { routes } = setup(base, []);
    expect(routes.decide(head("/"), {})).toMatchObject({ kind: "refuse", status: 503, flags: "NR" });
  });
});

describe("ring-hash keys and the source address", () => {
  /** A connection whose address counts its reads (each is a getpeername(2) call on a real socket). */
  const counted = (address: string) => {
    let reads = 0;
    return {
      get remoteAddress() {
        reads++;
        return address;
      },
      reads: () => reads,
    };
  };

  it("the address is read only for a sourceIp hash, or a ring hash with no hashOn", () => {
    const lbs: { lb: ClusterConfig["lb"]; key: string | undefined; reads: number }[] = [
      { lb: { policy: "round_robin" }, key: undefined, reads: 0 },
      { lb: { policy: "ring_hash", hashOn: [{ header: "x-user" }] }, key: "u1", reads: 0 },
      { lb: { policy: "ring_hash", hashOn: [{ sourceIp: true }] }, key: "10.0.0.7", reads: 1 },
      { lb: { policy: "ring_hash" }, key: "10.0.0.7", reads: 1 },
    ];
    for (const c of lbs) {
      const { routes } = setup(base, [cluster("api", 2, { lb: c.lb })]);
      const live = fwd(routes.decide(head("/x"), {})).cluster;
      const remote = counted("10.0.0.7");
      expect(live.hashKey?.({ "x-user": "u1" }, remote)).toBe(c.key);
      expect(remote.reads()).toBe(c.reads);
    }
  });
});
