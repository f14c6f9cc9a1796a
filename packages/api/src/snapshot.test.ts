/**
 * checkSnapshot: the one check both sides run (the control plane before
 * sending, the proxy before applying). Table of broken snapshots, each
 * refused with a message naming the field.
 */
import { describe, expect, it } from "vitest";
import { checkSnapshot, type EndpointConfig, type ProxySnapshot, type UpstreamListener } from "./snapshot.js";

function good(): ProxySnapshot {
  const cluster = (name: string, subset?: string) => ({
    name,
    service: "api",
    ...(subset ? { subset } : {}),
    protocol: "http" as const,
    spiffeId: "spiffe://t/ns/default/svc/api",
    lb: { policy: "round_robin" as const },
    connectTimeoutMs: 5000,
    idleTimeoutMs: 60_000,
    circuitBreaker: { maxConnections: 1, maxPendingRequests: 1, maxRequests: 1, maxRetries: 0 },
    endpoints: [
      { id: `${name}-1`, address: "127.0.0.1", port: 20000, weight: 1, health: "passing" as const },
    ],
  });
  return {
    format: 1,
    version: "v",
    proxy: {
      service: "web",
      instanceId: "web-1",
      datacenter: "dc1",
      spiffeId: "spiffe://t/ns/default/svc/web",
    },
    mesh: { trustDomain: "t", defaultPolicy: "deny" },
    inbound: {
      protocol: "http",
      authz: {
        defaultAction: "deny",
        intention: true,
        sources: [
          { name: "lb", action: "allow" },
          { name: "*", permissions: [{ action: "allow", http: { pathPrefix: "/", methods: ["GET"] } }] },
        ],
      },
    },
    upstreams: [
      {
        service: "api",
        localPort: 9101,
        protocol: "http",
        cluster: "api.v1",
        splits: [
          { cluster: "api.v1", weight: 90 },
          { cluster: "api.v2", weight: 10 },
        ],
      },
    ],
    clusters: { "api.v1": cluster("api.v1", "v1"), "api.v2": cluster("api.v2", "v2") },
  };
}

type Mutate = (s: ProxySnapshot & Record<string, unknown>) => void;

describe("checkSnapshot", () => {
  it("accepts a well-formed snapshot", () => {
    expect(checkSnapshot(good())).toEqual({ ok: true, snapshot: good() });
  });

  it.each<[string, Mutate, RegExp]>([
    ["another format", (s) => Object.assign(s, { format: 2 }), /^format/],
    [
      "a listener pointing nowhere",
      (s) => Object.assign(s.upstreams[0] as object, { cluster: "nope" }),
      /upstreams\[0\]\.cluster/,
    ],
    [
      "a split target pointing nowhere",
      (s) => Object.assign(s.upstreams[0]?.splits?.[1] as object, { cluster: "x" }),
      /splits\[1\]\.cluster/,
    ],
    [
      "split weights not summing to 100",
      (s) => Object.assign(s.upstreams[0]?.splits?.[1] as object, { weight: 20 }),
      /sum to 110/,
    ],
    [
      "a negative split weight",
      (s) => Object.assign(s.upstreams[0]?.splits?.[0] as object, { weight: -1 }),
      /weight/,
    ],
    [
      "two listeners on one port",
      (s) => s.upstreams.push({ ...(s.upstreams[0] as UpstreamListener), service: "db" }),
      /used by another upstream/,
    ],
    [
      "a cluster keyed under another name",
      (s) => Object.assign(s.clusters["api.v2"] as object, { name: "api.v1" }),
      /must equal its key/,
    ],
    [
      "duplicate endpoint ids",
      (s) =>
        s.clusters["api.v1"]?.endpoints.push({ ...(s.clusters["api.v1"]?.endpoints[0] as EndpointConfig) }),
      /duplicate endpoint/,
    ],
    [
      "a critical endpoint",
      (s) => Object.assign(s.clusters["api.v1"]?.endpoints[0] as object, { health: "critical" }),
      /health/,
    ],
    [
      "a port out of range",
      (s) => Object.assign(s.clusters["api.v1"]?.endpoints[0] as object, { port: 70000 }),
      /port/,
    ],
    [
      "an unknown lb policy",
      (s) => Object.assign(s.clusters["api.v1"]?.lb as object, { policy: "fastest" }),
      /lb\.policy/,
    ],
    [
      "a source with both action and permissions",
      (s) => Object.assign(s.inbound.authz.sources[0] as object, { permissions: [] }),
      /exactly one of action, permissions/,
    ],
    [
      "a regex that does not compile",
      (s) => Object.assign(s.inbound.authz.sources[1]?.permissions?.[0]?.http as object, { pathRegex: "(" }),
      /pathRegex/,
    ],
    [
      "a lowercase method",
      (s) =>
        Object.assign(s.inbound.authz.sources[1]?.permissions?.[0]?.http as object, { methods: ["get"] }),
      /methods\[0\]/,
    ],
    ["an empty version", (s) => Object.assign(s, { version: "" }), /^version/],
    ["a non-object", (s) => Object.assign(s, { clusters: [] }), /^clusters: expected an object/],
  ])("refuses %s", (_what, mutate, message) => {
    const s = good() as ProxySnapshot & Record<string, unknown>;
    mutate(s);
    const r = checkSnapshot(s);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(message);
  });

  it("never throws on garbage", () => {
    for (const v of [null, 1, "x", [], { format: 1 }, { ...good(), upstreams: [null] }]) {
      expect(checkSnapshot(v).ok).toBe(false);
    }
  });
});

describe("checkSnapshot: inbound.rateLimit", () => {
  const withLimit = (rateLimit: unknown): unknown => {
    const s = good();
    return { ...s, inbound: { ...s.inbound, rateLimit } };
  };

  it.each<[string, unknown]>([
    ["a service-wide bucket", { requestsPerSecond: 10, burst: 10 }],
    ["a fractional rate", { requestsPerSecond: 0.5, burst: 1 }],
    ["routes only", { routes: [{ pathPrefix: "/slow-lane", requestsPerSecond: 1, burst: 2 }] }],
    [
      "both, with every path kind",
      {
        requestsPerSecond: 100,
        burst: 200,
        routes: [
          { pathExact: "/a", requestsPerSecond: 1, burst: 1 },
          { pathPrefix: "/b", requestsPerSecond: 2, burst: 2 },
          { pathRegex: "/c/[0-9]+", requestsPerSecond: 3, burst: 3 },
        ],
      },
    ],
  ])("accepts %s", (_what, rateLimit) => {
    expect(checkSnapshot(withLimit(rateLimit)).ok).toBe(true);
  });

  it.each<[string, unknown, RegExp]>([
    ["a non-object", 5, /^inbound\.rateLimit: expected an object/],
    ["neither bucket nor routes", {}, /needs requestsPerSecond or routes/],
    ["a rate without a burst", { requestsPerSecond: 10 }, /both or neither/],
    ["a zero rate", { requestsPerSecond: 0, burst: 1 }, /rateLimit\.requestsPerSecond/],
    ["an infinite rate", { requestsPerSecond: Number.POSITIVE_INFINITY, burst: 1 }, /requestsPerSecond/],
    ["a fractional burst", { requestsPerSecond: 1, burst: 1.5 }, /rateLimit\.burst/],
    ["a zero burst", { requestsPerSecond: 1, burst: 0 }, /rateLimit\.burst/],
    ["routes not an array", { routes: {} }, /rateLimit\.routes: expected an array/],
    [
      "too many routes",
      { routes: Array.from({ length: 65 }, () => ({ pathPrefix: "/", requestsPerSecond: 1, burst: 1 })) },
      /more than 64/,
    ],
    [
      "a route with two path kinds",
      { routes: [{ pathPrefix: "/a", pathExact: "/a", requestsPerSecond: 1, burst: 1 }] },
      /routes\[0\]: needs exactly one of pathExact, pathPrefix, pathRegex/,
    ],
    [
      "a route with no path",
      { routes: [{ requestsPerSecond: 1, burst: 1 }] },
      /routes\[0\]: needs exactly one/,
    ],
    [
      "a route regex that does not compile",
      { routes: [{ pathRegex: "(", requestsPerSecond: 1, burst: 1 }] },
      /routes\[0\]\.pathRegex/,
    ],
    [
      "a route without a burst",
      { routes: [{ pathPrefix: "/a", requestsPerSecond: 1 }] },
      /routes\[0\]\.burst/,
    ],
  ])("refuses %s", (_what, rateLimit, message) => {
    const r = checkSnapshot(withLimit(rateLimit));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(message);
  });
});

describe("checkSnapshot: clusters.*.outlierDetection", () => {
  const OD = {
    consecutive5xx: 3,
    consecutiveGatewayErrors: 5,
    intervalMs: 10_000,
    baseEjectionTimeMs: 2_000,
    maxEjectionTimeMs: 300_000,
    maxEjectionPercent: 50,
  };
  const withOutlier = (od: unknown): unknown => {
    const s = structuredClone(good()) as unknown as { clusters: Record<string, Record<string, unknown>> };
    const first = Object.values(s.clusters)[0] as Record<string, unknown>;
    first.outlierDetection = od;
    return s;
  };

  it("accepts a cluster without it, and a well-formed one", () => {
    expect(checkSnapshot(good()).ok).toBe(true);
    expect(checkSnapshot(withOutlier(OD)).ok).toBe(true);
    expect(checkSnapshot(withOutlier({ ...OD, maxEjectionPercent: 0 })).ok).toBe(true);
  });

  it.each<[string, unknown, RegExp]>([
    ["not an object", 5, /outlierDetection: expected an object/],
    ["consecutive5xx 0", { ...OD, consecutive5xx: 0 }, /outlierDetection\.consecutive5xx/],
    ["gateway errors missing", { ...OD, consecutiveGatewayErrors: undefined }, /consecutiveGatewayErrors/],
    ["interval 0", { ...OD, intervalMs: 0 }, /outlierDetection\.intervalMs/],
    ["base not an integer", { ...OD, baseEjectionTimeMs: 1.5 }, /baseEjectionTimeMs/],
    ["max below base", { ...OD, maxEjectionTimeMs: 1_000 }, /maxEjectionTimeMs: must not be shorter/],
    ["percent above 100", { ...OD, maxEjectionPercent: 101 }, /maxEjectionPercent/],
    ["percent a string", { ...OD, maxEjectionPercent: "50" }, /maxEjectionPercent/],
  ])("refuses %s", (_, od, message) => {
    const r = checkSnapshot(withOutlier(od));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(message);
  });
});
