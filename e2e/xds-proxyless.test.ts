/**
 * Proxyless gRPC through xDS, end to end: `weft server --xds-listen`, four
 * echo servers (e2e/apps/grpc-app.mjs) registered directly in the catalog
 * with their own plaintext addresses (no sidecar), `weft bootstrap grpc`
 * for the client, and a separate process running the real
 * @grpc/grpc-js-xds client (e2e/apps/xds-client.mjs) on `xds:///echo`.
 *
 * One client lives through the whole file, as a workload would: round robin
 * -> an instance deregistered -> an 80/20 split with a header route -> a
 * fault -> an update the client refuses (NACK) while traffic stays on the
 * last good config -> a good update accepted again. And a client with a
 * wrong token is refused.
 *
 * Then mTLS: an echo service behind a sidecar (`weft proxy`), and proxyless
 * clients bootstrapped with `--cert-dir` (their SPIFFE certificate in
 * files, a file_watcher certificate provider, xDS channel credentials):
 * the allowed one is served with the server's SPIFFE ID checked, one whose
 * identity the Intention does not allow is refused by the sidecar. And the
 * other way: a sidecar-fronted caller reaching a proxyless server that
 * serves mTLS with the certificate `weft bootstrap grpc --cert-dir` wrote.
 */
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { WeftClient } from "@weft/api/client";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, meshCleanup, startApp, startProxy, waitEndpoints, waitFor } from "./helpers/mesh.js";
import { runWeft, tempDir } from "./helpers/weft.js";
import {
  batchFailed,
  batchTotal,
  bootstrapGrpc,
  startXdsControlPlane,
  stopXdsClients,
  XdsClient,
  type XdsControlPlane,
} from "./helpers/xds-client.js";

const VERSIONS: Record<string, string> = { a: "v1", b: "v1", c: "v1", d: "v2" };
let x: XdsControlPlane;
let api: WeftClient;
let client: XdsClient;
let bootstrapFile = "";
const apps: App[] = [];

beforeAll(async () => {
  x = await startXdsControlPlane();
  api = x.api;
  for (const [replica, version] of Object.entries(VERSIONS)) {
    const app = await startApp("grpc-app.mjs", { env: { REPLICA: replica } });
    apps.push(app);
    await api.registerInstance({
      id: `echo-${replica}`,
      service: "echo",
      address: "127.0.0.1",
      port: app.port,
      tags: ["proxyless"],
      meta: { version },
      proxy: { protocol: "grpc" },
    });
  }
  const b = await bootstrapGrpc(x, { service: "client", id: "client-1", port: 50051, upstreams: ["echo"] });
  bootstrapFile = b.file;
  expect(b.stdout).toBe(`export GRPC_XDS_BOOTSTRAP=${bootstrapFile}\n`);
  client = await XdsClient.start(bootstrapFile);
}, 60_000);

afterAll(async () => {
  stopXdsClients();
  await meshCleanup();
});

describe("proxyless gRPC over xDS (@grpc/grpc-js-xds)", () => {
  it("registers the client and writes a 0600 bootstrap naming its node", async () => {
    expect(statSync(bootstrapFile).mode & 0o777).toBe(0o600);
    const doc = JSON.parse(readFileSync(bootstrapFile, "utf8"));
    expect(doc.node.id).toBe("client-1");
    expect(doc.xds_servers[0].server_uri).toBe(`127.0.0.1:${x.xdsPort}`);
    const inst = await api.getInstance("client-1");
    expect(inst.tags).toContain("proxyless");
    expect(inst.proxy?.upstreams.map((u) => u.service)).toEqual(["echo"]);
  });

  it("round-robins across the healthy instances", async () => {
    const b = await client.calls(400);
    console.log(`round robin, 400 calls: ${JSON.stringify(b.counts)}`);
    expect(b.errors).toEqual({});
    expect(Object.keys(b.counts).sort()).toEqual(["a", "b", "c", "d"]);
    for (const n of Object.values(b.counts)) expect(n).toBeGreaterThanOrEqual(80);
  }, 30_000);

  it("moves traffic off a deregistered instance", async () => {
    await api.deregisterInstance("echo-c");
    await waitFor(
      async () => {
        const b = await client.calls(40);
        return b.counts.c === undefined && batchTotal(b) === 40 ? b : undefined;
      },
      15_000,
      { what: "no call reaching the deregistered echo-c" },
    );
    const b = await client.calls(300);
    console.log(`after deregistering echo-c, 300 calls: ${JSON.stringify(b.counts)}`);
    expect(b.errors).toEqual({});
    expect(b.counts.c).toBeUndefined();
    expect(Object.keys(b.counts).sort()).toEqual(["a", "b", "d"]);
  }, 30_000);

  const resolver = {
    kind: "Resolver",
    name: "echo",
    subsets: { v1: { meta: { version: "v1" } }, v2: { meta: { version: "v2" } } },
  };
  const split = {
    kind: "Split",
    name: "echo",
    splits: [
      { weight: 80, subset: "v1" },
      { weight: 20, subset: "v2" },
    ],
  };
  const probeRoute = {
    name: "probe",
    match: { headers: [{ name: "x-probe", exact: "1" }] },
    destination: { subset: "v2" },
  };
  const chaosRoute = {
    name: "chaos",
    match: { pathExact: "/weft.e2e.Echo/Unary", headers: [{ name: "x-chaos", present: true }] },
    destination: { fault: { abort: { percent: 100, grpcStatus: 14 } } },
  };

  it("honours an 80/20 split within a few percent over 1,000 calls, and a header route", async () => {
    await api.applyConfig([resolver, split, { kind: "Route", name: "echo", routes: [probeRoute] }]);
    // Routes and the split travel in one RouteConfiguration: once the header route works, so does the split.
    await waitFor(
      async () => {
        const b = await client.calls(20, { metadata: { "x-probe": "1" } });
        return b.counts.d === 20 ? b : undefined;
      },
      15_000,
      { what: "the header route x-probe: 1 -> v2" },
    );
    const b = await client.calls(1000);
    const v2 = b.counts.d ?? 0;
    console.log(`split 80/20, 1000 calls: ${JSON.stringify(b.counts)} (v2 ${(v2 / 10).toFixed(1)}%)`);
    expect(b.errors).toEqual({});
    expect(batchTotal(b)).toBe(1000);
    expect(Math.abs(v2 - 200)).toBeLessThanOrEqual(50); // 20% ± 5 points (3.9 standard deviations)
  }, 60_000);

  it("injects a fault on the route that configures it, only there", async () => {
    await api.applyConfig([{ kind: "Route", name: "echo", routes: [chaosRoute, probeRoute] }]);
    const faulted = await waitFor(
      async () => {
        const b = await client.calls(20, { metadata: { "x-chaos": "1" } });
        return b.errors["14"] === 20 ? b : undefined;
      },
      15_000,
      { what: "the fault abort (UNAVAILABLE) on x-chaos calls" },
    );
    console.log(`fault: ${JSON.stringify(faulted)}`);
    const ok = await client.calls(50);
    expect(ok.errors).toEqual({});
    expect(batchTotal(ok)).toBe(50);
  }, 30_000);

  it("an update the client refuses is NACKed and recorded; traffic stays on the last good config", async () => {
    // A redirect is valid Envoy config that gRPC cannot apply: grpc-js-xds refuses the whole RouteConfiguration.
    const redirect = {
      name: "moved",
      match: { headers: [{ name: "x-moved", exact: "1" }] },
      redirect: { path: "/elsewhere", statusCode: 301 },
    };
    await api.applyConfig([{ kind: "Route", name: "echo", routes: [redirect, probeRoute] }]);
    const nack = await waitFor(
      async () => /xDS client NACKed an update.*|.*xDS client NACKed an update/.exec(x.log())?.[0],
      15_000,
      { what: "the control plane logging the client's NACK" },
    );
    console.log(`NACK logged: ${nack.slice(0, 400)}`);
    expect(nack).toMatch(/"node":"client-1"/);
    expect(nack).toMatch(/"type":"RDS"/);
    expect(nack).toMatch(/unsupported action: redirect/);
    // ... and shown to operators: `weft xds` and `weft explain` carry the client's own message.
    const xdsOut = await runWeft([
      "xds",
      "--service",
      "client",
      "--json",
      "--addr",
      x.addr,
      "--token",
      x.token,
    ]);
    expect(xdsOut.code, xdsOut.stderr).toBe(0);
    const node = (
      JSON.parse(xdsOut.stdout) as {
        nodes: { nodeId: string; connected: boolean; nacks: { type: string; message: string }[] }[];
      }
    ).nodes.find((n) => n.nodeId === "client-1");
    expect(node?.connected).toBe(true);
    expect(
      node?.nacks.some((n) => n.type === "Route" && /unsupported action: redirect/.test(n.message)),
    ).toBe(true);
    const explained = await runWeft([
      "explain",
      "--from",
      "client",
      "--to",
      "echo",
      "--addr",
      x.addr,
      "--token",
      x.token,
    ]);
    expect(explained.code, explained.stderr).toBe(0);
    expect(explained.stdout).toMatch(/client-1 refused Route version \S+: .*unsupported action: redirect/);
    // The last good config (chaos + probe routes, 80/20 split) still rules.
    const chaos = await client.calls(20, { metadata: { "x-chaos": "1" } });
    expect(chaos.errors["14"]).toBe(20);
    const probe = await client.calls(20, { metadata: { "x-probe": "1" } });
    expect(probe.counts.d).toBe(20);
    const moved = await client.calls(20, { metadata: { "x-moved": "1" } });
    expect(moved.errors).toEqual({});
    expect(batchTotal(moved)).toBe(20);

    // A good update is accepted again: the chaos route is gone.
    await api.applyConfig([{ kind: "Route", name: "echo", routes: [probeRoute] }]);
    await waitFor(
      async () => {
        const b = await client.calls(20, { metadata: { "x-chaos": "1" } });
        return batchTotal(b) === 20 ? b : undefined;
      },
      15_000,
      { what: "the next good RouteConfiguration accepted (no more faults)" },
    );
  }, 60_000);

  it("hashes a header onto one instance with ring_hash", async () => {
    await api.deleteConfig("Route", "echo");
    await api.deleteConfig("Split", "echo");
    await api.applyConfig([
      {
        kind: "ServiceDefaults",
        name: "echo",
        loadBalancer: { policy: "ring_hash", hashOn: [{ header: "x-user" }] },
      },
    ]);
    const replicasOf = async (user: string) => {
      const b = await client.calls(30, { metadata: { "x-user": user } });
      expect(b.errors).toEqual({});
      return Object.keys(b.counts);
    };
    await waitFor(async () => (await replicasOf("alice")).length === 1, 15_000, {
      what: "every x-user: alice call on one instance",
    });
    const picked = new Set<string>();
    for (const user of ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]) {
      const rs = await replicasOf(user);
      expect(rs, `x-user: ${user}`).toHaveLength(1);
      picked.add(rs[0] as string);
    }
    console.log(`ring hash on x-user, 10 users x 30 calls: instances used ${[...picked].sort().join(",")}`);
    expect(picked.size).toBeGreaterThan(1); // different keys spread over the ring
  }, 60_000);

  it("retries UNAVAILABLE as the service's retry policy says", async () => {
    const flaky = await startApp("grpc-flaky-app.mjs", { env: { REPLICA: "f" } });
    await api.registerInstance({
      id: "flaky-1",
      service: "flaky",
      address: "127.0.0.1",
      port: flaky.port,
      proxy: { protocol: "grpc" },
    });
    // The client's registration names its upstreams: re-registered with flaky added, it is sent flaky too.
    const me = await api.getInstance("client-1");
    await api.registerInstance({
      id: me.id,
      service: me.service,
      address: me.address,
      port: me.port,
      tags: me.tags,
      meta: me.meta,
      proxy: {
        protocol: "grpc",
        upstreams: [...(me.proxy?.upstreams ?? []), { service: "flaky", localPort: 2 }],
      },
    });
    const caller = await XdsClient.start(bootstrapFile, { TARGET: "flaky" });
    const before = await waitFor(
      async () => {
        const b = await caller.calls(20);
        return batchTotal(b) + batchFailed(b) === 20 && batchTotal(b) > 0 ? b : undefined;
      },
      15_000,
      { what: "flaky reachable" },
    );
    console.log(`flaky without retries, 20 calls: ${JSON.stringify(before)}`);
    expect(before.errors["14"]).toBeGreaterThan(0);
    await api.applyConfig([
      { kind: "ServiceDefaults", name: "flaky", retries: { numRetries: 2, retryOn: ["unavailable"] } },
    ]);
    const after = await waitFor(
      async () => {
        // One at a time: the app fails every other call it sees, so each call's retry is the one that works.
        const b = await caller.calls(40, { concurrency: 1 });
        return batchTotal(b) === 40 ? b : undefined;
      },
      15_000,
      { what: "every call answered once retries are on" },
    );
    console.log(`flaky with numRetries 2 on unavailable, 40 calls: ${JSON.stringify(after)}`);
    caller.stop();
  }, 60_000);

  it("drops calls beyond the circuit breaker's maxRequests", async () => {
    const slow = await startApp("grpc-slow-app.mjs", { env: { REPLICA: "w", DELAY_MS: "300" } });
    await api.registerInstance({
      id: "slow-1",
      service: "slow",
      address: "127.0.0.1",
      port: slow.port,
      proxy: { protocol: "grpc" },
    });
    const me = await api.getInstance("client-1");
    await api.registerInstance({
      id: me.id,
      service: me.service,
      address: me.address,
      port: me.port,
      tags: me.tags,
      meta: me.meta,
      proxy: {
        protocol: "grpc",
        upstreams: [...(me.proxy?.upstreams ?? []), { service: "slow", localPort: 3 }],
      },
    });
    const caller = await XdsClient.start(bootstrapFile, { TARGET: "slow" });
    const open = await waitFor(
      async () => {
        const b = await caller.calls(8, { concurrency: 8 });
        return batchTotal(b) === 8 ? b : undefined;
      },
      15_000,
      { what: "8 concurrent calls to slow answered (default limits)" },
    );
    console.log(`slow, 8 concurrent calls, default breaker: ${JSON.stringify(open.counts)}`);
    await api.applyConfig([{ kind: "ServiceDefaults", name: "slow", circuitBreaker: { maxRequests: 2 } }]);
    const tripped = await waitFor(
      async () => {
        // Staggered: grpc-js counts a call as started a microtask after its pick, so picks made in
        // one tick all see the same count; calls arriving over time are what a breaker limits.
        const b = await caller.calls(8, { concurrency: 8, staggerMs: 20 });
        return (b.errors["14"] ?? 0) > 0 ? b : undefined;
      },
      15_000,
      { what: "calls beyond maxRequests 2 dropped" },
    );
    console.log(`slow, 8 concurrent calls, maxRequests 2: ${JSON.stringify(tripped)}`);
    expect(batchTotal(tripped)).toBeGreaterThanOrEqual(2);
    expect(batchTotal(tripped)).toBeLessThan(8);
    expect(tripped.details.join("\n")).toMatch(/dropped by load balancing policy/);
    caller.stop();
  }, 60_000);

  it("refuses a client with an unknown token", async () => {
    const doc = JSON.parse(readFileSync(bootstrapFile, "utf8"));
    doc.node.metadata.weft_token = "not-a-token";
    const bad = join(tempDir(), "bad-xds.json");
    writeFileSync(bad, JSON.stringify(doc));
    const intruder = await XdsClient.start(bad);
    const b = await intruder.calls(1, { deadlineMs: 3000 });
    expect(batchTotal(b)).toBe(0);
    await waitFor(
      async () =>
        /WEFT_ERR_UNAUTHENTICATED[^\n]*unknown token|unknown token[^\n]*WEFT_ERR_UNAUTHENTICATED/.test(
          x.log(),
        ) || undefined,
      10_000,
      { what: "the refusal logged" },
    );
    intruder.stop();
  }, 30_000);
});

/** `weft bootstrap grpc --cert-dir` (mTLS); resolves to the bootstrap file. */
async function bootstrapWithCerts(
  service: string,
  id: string,
  upstreams: string[],
  port = 50052,
  extra: string[] = [],
): Promise<string> {
  const { file, certDir } = await bootstrapGrpc(x, { service, id, port, upstreams, certs: true, extra });
  expect(statSync(join(certDir, "key.pem")).mode & 0o777).toBe(0o600);
  return file;
}

describe("proxyless gRPC with mTLS to a sidecar-fronted service", () => {
  beforeAll(async () => {
    await api.applyConfig([
      { kind: "Intention", name: "echo-secure", sources: [{ name: "client", action: "allow" }] },
    ]);
    const app = await startApp("grpc-app.mjs", { env: { REPLICA: "s" } });
    const sidecar = await startProxy({
      service: "echo-secure",
      appPort: app.port,
      protocol: "grpc",
      health: { grpc: true },
      server: x.addr,
      token: x.token,
    });
    await waitFor(async () => (await api.healthService("echo-secure")).instances.length === 1, 20_000, {
      what: "the sidecar-fronted echo-secure passing",
    });
    // An impostor: service echo-fake registered at echo-secure's sidecar, which proves another identity.
    await api.registerInstance({
      id: "echo-fake-1",
      service: "echo-fake",
      address: "127.0.0.1",
      port: sidecar.inboundPort,
      proxy: { protocol: "grpc" },
    });
  }, 60_000);

  it("calls through the sidecar over mTLS, with the server's SPIFFE ID checked", async () => {
    const file = await bootstrapWithCerts("client", "client-2", ["echo-secure", "echo-fake"]);
    const doc = JSON.parse(readFileSync(file, "utf8"));
    expect(doc.certificate_providers.weft.plugin_name).toBe("file_watcher");
    expect(readFileSync(doc.certificate_providers.weft.config.certificate_file, "utf8")).toMatch(
      /BEGIN CERTIFICATE/,
    );
    const secure = await XdsClient.start(file, { TARGET: "echo-secure", XDS_CREDS: "1" });
    const b = await waitFor(
      async () => {
        const r = await secure.calls(20);
        return r.counts.s === 20 ? r : undefined;
      },
      20_000,
      { what: "20 calls answered through the sidecar over mTLS" },
    );
    console.log(`mTLS via sidecar: ${JSON.stringify(b)}`);

    // The same client calling echo-fake reaches a server whose SPIFFE ID is echo-secure's: refused at the handshake.
    const fooled = await XdsClient.start(file, { TARGET: "echo-fake", XDS_CREDS: "1" });
    const f = await fooled.calls(5, { deadlineMs: 5000 });
    console.log(`echo-fake (wrong server identity): ${JSON.stringify(f)}`);
    expect(batchTotal(f)).toBe(0);
    expect(f.details.join("\n")).toMatch(/subject alternative name/i);
  }, 60_000);

  it("is refused by the sidecar when the caller's identity is not allowed", async () => {
    const file = await bootstrapWithCerts("intruder", "intruder-1", ["echo-secure"]);
    const intruder = await XdsClient.start(file, { TARGET: "echo-secure", XDS_CREDS: "1" });
    const b = await intruder.calls(10, { deadlineMs: 5000 });
    console.log(`intruder (no Intention) via sidecar: ${JSON.stringify(b)}`);
    expect(batchTotal(b)).toBe(0);
    expect(Object.keys(b.errors)).toEqual(["7"]); // PERMISSION_DENIED from the sidecar's authorization
  }, 60_000);
});

describe("a sidecar-fronted client calling a proxyless server over mTLS", () => {
  it("reaches the proxyless server with the mesh identities on both ends", async () => {
    const port = await freePort();
    // A plain grpc-js server with its own TLS, not an xDS client: no "xds" check to keep passing
    // (e2e/xds-server.test.ts covers XdsServer, whose stream does).
    const file = await bootstrapWithCerts("px-server", "px-server-1", [], port, ["--no-xds-health"]);
    const certDir = join(file, "..", "certs");
    await startApp("grpc-tls-app.mjs", { port, env: { REPLICA: "px", CERT_DIR: certDir } });
    await api.applyConfig([
      { kind: "Intention", name: "px-server", sources: [{ name: "caller", action: "allow" }] },
    ]);
    const callerApp = await startApp("grpc-app.mjs", { env: { REPLICA: "c" } });
    const localPort = await freePort();
    const sidecar = await startProxy({
      service: "caller",
      appPort: callerApp.port,
      protocol: "grpc",
      health: { grpc: true },
      upstreams: { "px-server": localPort },
      server: x.addr,
      token: x.token,
    });
    await waitEndpoints(sidecar.adminPort, "px-server", 1);
    // The caller's app speaks h2c to its sidecar; the sidecar speaks mTLS to the proxyless server.
    const app = await XdsClient.start(bootstrapFile, { TARGET_ADDR: `127.0.0.1:${localPort}` });
    const b = await waitFor(
      async () => {
        const r = await app.calls(10);
        return r.counts.px === 10 ? r : undefined;
      },
      20_000,
      { what: "10 calls through the caller's sidecar answered by the proxyless server" },
    );
    console.log(`sidecar -> proxyless server over mTLS: ${JSON.stringify(b)}`);
    // The server saw the calling sidecar's SPIFFE ID in its client certificate.
    expect(b.messages[0]).toMatch(/^spiffe:\/\/[^/]+\/ns\/default\/svc\/caller$/);
  }, 60_000);
});
