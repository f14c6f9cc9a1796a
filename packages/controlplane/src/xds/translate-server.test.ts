/**
 * Golden files of the server-side Listener (translate-server.ts), from the
 * snapshot builder's own golden outputs with Intentions (L7 ordering, a
 * default-allow mesh with a denied source, default deny with no Intention),
 * plaintext and with mTLS. `UPDATE_GOLDEN=1` rewrites the
 * testdata/golden/*.server.xds.json files; review the diff.
 *
 * Beyond the bytes: every Listener goes through the wire and through
 * @grpc/grpc-js-xds's own Listener validation and RBAC filter parser (what
 * an XdsServer would accept), and without the RBAC filter registered the
 * same Listener is refused (fail closed).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { checkSnapshot, type ProxySnapshot, SERVER_LISTENER_TEMPLATE } from "@weft/api";
import { describe, expect, it } from "vitest";
import { decodeContext, decodeServerListener, rbacAvailable } from "./grpc-xds-check.suite.js";
import { parseServerListenerName, serverListener, serverListenersFor } from "./translate-server.js";

const HERE = fileURLToPath(new URL("./testdata/golden/", import.meta.url));
const SNAPSHOT_GOLDEN = fileURLToPath(new URL("../snapshot/testdata/golden/", import.meta.url));
const UPDATE = process.env.UPDATE_GOLDEN === "1";
const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
const load = (name: string) =>
  JSON.parse(readFileSync(`${SNAPSHOT_GOLDEN}${name}.snapshot.json`, "utf8")) as ProxySnapshot;
const NAME = SERVER_LISTENER_TEMPLATE.replace("%s", "127.0.0.1:50051");
const ADDR = { host: "127.0.0.1", port: 50051 };

const CASES = [
  { name: "intention-l7-ordering", provider: undefined },
  { name: "intention-l7-ordering", provider: "weft" },
  { name: "mesh-allow", provider: "weft" },
  { name: "no-upstreams-default-deny", provider: "weft" },
];

describe("serverListener golden files", () => {
  it.each(CASES)("$name (provider $provider)", ({ name, provider }) => {
    const snapshot = load(name);
    expect(checkSnapshot(snapshot).ok).toBe(true);
    const listener = serverListener(NAME, ADDR, snapshot, { certificateProvider: provider });
    const text = json(listener);
    const goldenPath = `${HERE}${name}${provider ? ".mtls" : ""}.server.xds.json`;
    if (UPDATE) writeFileSync(goldenPath, text);
    let golden: string;
    try {
      golden = readFileSync(goldenPath, "utf8");
    } catch {
      throw new Error(`no golden file ${goldenPath}; run UPDATE_GOLDEN=1 and review it`);
    }
    expect(text).toBe(golden);
    expect(serverListener(NAME, ADDR, snapshot, { certificateProvider: provider })).toStrictEqual(listener);

    expect(rbacAvailable()).toBe(true);
    const d = decodeServerListener(listener, decodeContext(provider ? [provider] : []));
    expect(d.error).toBeUndefined();
    expect(d.rbac).toBeDefined();
    const l = d.listener as {
      address: { socket_address: { address: string; port_value: number } };
      filter_chains: { transport_socket: unknown }[];
    };
    // XdsServer serves only when these are exactly what it bound.
    expect(l.address.socket_address).toMatchObject({ address: "127.0.0.1", port_value: 50051 });
    expect(l.filter_chains[0]?.transport_socket !== null).toBe(provider !== undefined);
  });

  it("is refused by a server whose bootstrap lacks the certificate provider", () => {
    const listener = serverListener(NAME, ADDR, load("mesh-allow"), { certificateProvider: "weft" });
    const d = decodeServerListener(listener, decodeContext([]));
    expect(d.error).toMatch(/Unmatched .*instance_name: weft/);
  });

  it("marks the RBAC filter as not optional (a server without RBAC support refuses the Listener)", () => {
    const listener = serverListener(NAME, ADDR, load("mesh-allow"));
    const hcm = (listener.filter_chains as { filters: { typed_config: { http_filters: unknown[] } }[] }[])[0]
      ?.filters[0]?.typed_config as { http_filters: { name: string; is_optional?: boolean }[] };
    expect(hcm.http_filters.map((f) => f.name)).toEqual([
      "envoy.filters.http.rbac",
      "envoy.filters.http.router",
    ]);
    expect(hcm.http_filters[0]?.is_optional).toBeUndefined();
  });
});

describe("server Listener names", () => {
  it.each([
    [NAME, { host: "127.0.0.1", port: 50051 }],
    [SERVER_LISTENER_TEMPLATE.replace("%s", "0.0.0.0:8080"), { host: "0.0.0.0", port: 8080 }],
    [SERVER_LISTENER_TEMPLATE.replace("%s", "[::1]:9"), { host: "::1", port: 9 }],
    ["echo", undefined],
    [SERVER_LISTENER_TEMPLATE.replace("%s", "localhost:80"), undefined],
    [SERVER_LISTENER_TEMPLATE.replace("%s", "127.0.0.1:0"), undefined],
    [SERVER_LISTENER_TEMPLATE.replace("%s", "127.0.0.1:70000"), undefined],
    [SERVER_LISTENER_TEMPLATE.replace("%s", "999.0.0.1:80"), undefined],
    [`${NAME}/x`, undefined],
  ])("%s", (name, want) => {
    expect(parseServerListenerName(name)).toEqual(want);
  });

  it("answers only for the node's own registered port", () => {
    const s = load("mesh-allow");
    const other = SERVER_LISTENER_TEMPLATE.replace("%s", "127.0.0.1:50052");
    const got = serverListenersFor(["echo", other, NAME], s, { port: 50051 });
    expect(got.map((r) => r.name)).toEqual([NAME]);
    expect(serverListenersFor([other], s, { port: 50051 })).toEqual([]);
  });
});
