/**
 * Golden files of the xDS translation, one per feature. Inputs are the
 * snapshot builder's own golden outputs (../snapshot/testdata/golden: routes
 * with every action, splits and subsets, failover, lb, retries, outlier
 * detection) plus cases of this folder (testdata/golden/*.snapshot.json:
 * gRPC fault injection, header routes, ring hash, localities, failover
 * priorities). `UPDATE_GOLDEN=1 npx vitest run packages/controlplane/src/xds`
 * rewrites the *.xds.json files; review the diff before keeping it.
 *
 * Beyond the bytes, every resource is encoded the way the ADS server sends
 * it and decoded and validated by @grpc/grpc-js-xds's own resource types:
 * what the real client would accept, or the error it would NACK with.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { checkSnapshot, type ProxySnapshot } from "@weft/api";
import { describe, expect, it } from "vitest";
import { adsPackageDefinition } from "./protos.js";
import {
  CLUSTER_TYPE,
  ENDPOINT_TYPE,
  LISTENER_TYPE,
  ROUTE_TYPE,
  resourcesOfType,
  XDS_TYPES,
  type XdsResources,
  type XdsTypeUrl,
} from "./resources.js";
import { translateSnapshot } from "./translate.js";

const HERE = fileURLToPath(new URL("./testdata/golden/", import.meta.url));
const SNAPSHOT_GOLDEN = fileURLToPath(new URL("../snapshot/testdata/golden/", import.meta.url));
const UPDATE = process.env.UPDATE_GOLDEN === "1";

const inputs = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith(".snapshot.json"))
    .map((f) => ({ name: f.slice(0, -".snapshot.json".length), path: `${dir}${f}` }));
const CASES = [...inputs(SNAPSHOT_GOLDEN), ...inputs(HERE)].sort((a, b) => a.name.localeCompare(b.name));

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

// ---------------------------------------------------------------- the real client's validation

type Any = { type_url: string; value: Buffer };
type Decoded = { name: string; error?: string };
interface ResourceType {
  decode(ctx: unknown, any: Any): Decoded;
}

const req = createRequire(import.meta.url);
// register() installs the HTTP filters (router, fault) the listener validation looks up.
(req("@grpc/grpc-js-xds") as { register(): void }).register();
const typeModule = (file: string, cls: string): ResourceType =>
  (req(`@grpc/grpc-js-xds/build/src/xds-resource-type/${file}`) as Record<string, { get(): ResourceType }>)[
    cls
  ]!.get();
const CLIENT_TYPES: Record<XdsTypeUrl, ResourceType> = {
  [LISTENER_TYPE]: typeModule("listener-resource-type.js", "ListenerResourceType"),
  [ROUTE_TYPE]: typeModule("route-config-resource-type.js", "RouteConfigurationResourceType"),
  [CLUSTER_TYPE]: typeModule("cluster-resource-type.js", "ClusterResourceType"),
  [ENDPOINT_TYPE]: typeModule("endpoint-resource-type.js", "EndpointResourceType"),
};
const DECODE_CONTEXT = {
  server: { server_uri: "127.0.0.1:1", channel_creds: [{ type: "insecure" }], server_features: [] },
  bootstrap: { certificateProviders: {}, node: { id: "test", locality: {} } },
};

type Method = { responseSerialize(v: unknown): Buffer; responseDeserialize(b: Buffer): unknown };
const ADS = adsPackageDefinition()["envoy.service.discovery.v3.AggregatedDiscoveryService"] as unknown as {
  StreamAggregatedResources: Method;
};

/** A bootstrap with the certificate provider instance the mTLS clusters name. */
const MTLS_CONTEXT = {
  ...DECODE_CONTEXT,
  bootstrap: { ...DECODE_CONTEXT.bootstrap, certificateProviders: { weft: { pluginName: "file_watcher" } } },
};

/** Through the wire as the ADS server sends it, then through grpc-js-xds's decoder and validator. */
function clientVerdicts(r: XdsResources, ctx: unknown = DECODE_CONTEXT): Record<string, string> {
  const out: Record<string, string> = {};
  for (const type of XDS_TYPES) {
    const rs = resourcesOfType(r, type);
    const m = ADS.StreamAggregatedResources;
    const bytes = m.responseSerialize({
      type_url: type,
      version_info: "1",
      resources: rs.map((x) => x.resource),
    });
    const decoded = m.responseDeserialize(bytes) as { resources?: Any[] };
    decoded.resources ??= []; // no defaults: an empty list decodes as absent
    expect(decoded.resources).toHaveLength(rs.length);
    decoded.resources.forEach((any, i) => {
      expect(any.type_url).toBe(type);
      const d = CLIENT_TYPES[type].decode(ctx, any);
      expect(d.name).toBe(rs[i]!.name);
      if (d.error) out[`${type.slice(type.lastIndexOf(".") + 1)}/${d.name}`] = d.error;
    });
  }
  return out;
}

// ---------------------------------------------------------------- golden

describe("translateSnapshot golden files", () => {
  it("covers the features the issue lists", () => {
    expect(CASES.map((c) => c.name)).toEqual(
      expect.arrayContaining([
        "routes-all-actions",
        "split-subsets",
        "resolver-failover-redirect",
        "service-defaults-lb",
        "service-defaults-retries",
        "service-defaults-outlier",
        "grpc-echo-features",
      ]),
    );
  });

  it.each(CASES)("$name", ({ name, path }) => {
    const snapshot = JSON.parse(readFileSync(path, "utf8")) as ProxySnapshot;
    expect(checkSnapshot(snapshot).ok).toBe(true);
    const resources = translateSnapshot(snapshot);
    const text = json(resources);
    const goldenPath = `${HERE}${name}.xds.json`;
    if (UPDATE) writeFileSync(goldenPath, text);
    let golden: string;
    try {
      golden = readFileSync(goldenPath, "utf8");
    } catch {
      throw new Error(`no golden file ${goldenPath}; run UPDATE_GOLDEN=1 and review it`);
    }
    expect(text).toBe(golden);
    // Pure: the same snapshot gives the same resources, and the input is not touched.
    expect(translateSnapshot(snapshot)).toStrictEqual(resources);
    expect(json(snapshot)).toBe(json(JSON.parse(readFileSync(path, "utf8"))));

    const errors = clientVerdicts(resources);
    // Redirects and direct responses are Envoy-only: grpc-js-xds refuses that route configuration, nothing else.
    const envoyOnly = snapshot.upstreams.filter((u) =>
      (u.routes ?? []).some((r) => r.redirect !== undefined || r.directResponse !== undefined),
    );
    expect(Object.keys(errors).sort()).toEqual(
      envoyOnly.map((u) => `RouteConfiguration/${u.service}`).sort(),
    );
    for (const e of Object.values(errors))
      expect(e).toMatch(/unsupported action: (redirect|direct_response)/);
  });
});

describe("translateSnapshot with mTLS (a node with a certificate provider)", () => {
  it("gives every cluster an UpstreamTlsContext accepting only its SPIFFE ID", () => {
    const path = `${HERE}grpc-echo-features.snapshot.json`;
    const snapshot = JSON.parse(readFileSync(path, "utf8")) as ProxySnapshot;
    const resources = translateSnapshot(snapshot, { certificateProvider: "weft" });
    const text = json(resources);
    const goldenPath = `${HERE}grpc-echo-features.mtls.xds.json`;
    if (UPDATE) writeFileSync(goldenPath, text);
    expect(text).toBe(readFileSync(goldenPath, "utf8"));
    // Only the clusters differ from the plaintext translation.
    const plain = translateSnapshot(snapshot);
    expect(resources.listeners).toStrictEqual(plain.listeners);
    expect(resources.clusterLoadAssignments).toStrictEqual(plain.clusterLoadAssignments);
    expect(clientVerdicts(resources, MTLS_CONTEXT)).toEqual({});
    // A client whose bootstrap lacks the provider refuses such clusters: why mTLS is per node.
    const refused = clientVerdicts(resources);
    expect(Object.keys(refused)).toHaveLength(resources.clusters.length);
    expect(Object.values(refused)[0]).toMatch(/Unmatched .*instance_name: weft/);
  });
});

// ---------------------------------------------------------------- properties the goldens rely on

describe("translateSnapshot details", () => {
  const load = (name: string) =>
    JSON.parse(readFileSync(`${HERE}${name}.snapshot.json`, "utf8")) as ProxySnapshot;

  it("puts failover clusters at the next priority, without gaps or repeated addresses", () => {
    const r = translateSnapshot(load("grpc-echo-features"));
    const cla = r.clusterLoadAssignments.find((c) => c.name === "echo")!.resource as unknown as {
      endpoints: {
        priority: number;
        lb_endpoints: { endpoint: { address: { socket_address: unknown } } }[];
      }[];
    };
    expect(cla.endpoints.map((e) => e.priority)).toEqual([0, 0, 1]);
    const addrs = cla.endpoints.flatMap((e) => e.lb_endpoints.map((l) => l.endpoint.address.socket_address));
    expect(addrs).toHaveLength(4); // 10.0.0.1 of echo@dc2 is already at priority 0
  });

  it("leaves tcp listeners and host-name endpoints out, and says so", () => {
    const r = translateSnapshot(load("grpc-echo-features"));
    expect(r.listeners.map((l) => l.name)).toEqual(["echo"]);
    expect(r.notes.join("\n")).toMatch(/"cache" is tcp/);
    expect(r.notes.join("\n")).toMatch(/cache-1.*host name/);
  });

  it("maps an empty primary cluster's failover to priority 0", () => {
    const s = load("grpc-echo-features");
    const echo = s.clusters.echo!;
    const r = translateSnapshot({ ...s, clusters: { ...s.clusters, echo: { ...echo, endpoints: [] } } });
    const cla = r.clusterLoadAssignments.find((c) => c.name === "echo")!.resource as unknown as {
      endpoints: { priority: number }[];
    };
    expect(cla.endpoints.map((e) => e.priority)).toEqual([0]);
    expect(clientVerdicts(r)).toEqual({});
  });
});
