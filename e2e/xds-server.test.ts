/**
 * Proxyless gRPC SERVERS, end to end: two replicas of `echo-px`, each a
 * real @grpc/grpc-js-xds XdsServer (e2e/apps/xds-server-app.mjs, with
 * XdsServerCredentials and GRPC_XDS_EXPERIMENTAL_RBAC=true) bootstrapped by
 * `weft bootstrap grpc --cert-dir`, so their Listener comes from the
 * control plane: mTLS with the mesh identities and the Intention as RBAC.
 *
 *  - a proxyless client the Intention allows is answered by both replicas
 *    over mTLS, the server seeing its SPIFFE ID; one it does not allow gets
 *    PERMISSION_DENIED from the server itself;
 *  - sidecar-fronted callers (`weft proxy` with an upstream) likewise;
 *  - changing the Intention flips the decision live, nothing restarted;
 *  - killing a replica's process makes its instance critical in the catalog
 *    (its `xds` check, reported from its xDS stream) and traffic leaves it.
 */
import type { WeftClient } from "@weft/api/client";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, meshCleanup, startApp, startProxy, waitEndpoints, waitFor } from "./helpers/mesh.js";
import {
  type Batch,
  batchTotal,
  bootstrapGrpc,
  startXdsControlPlane,
  stopXdsClients,
  XdsClient,
  type XdsControlPlane,
} from "./helpers/xds-client.js";

const SERVICE = "echo-px";
const PERMISSION_DENIED = "7";
let x: XdsControlPlane;
let api: WeftClient;
const replicas: App[] = [];
let client: XdsClient;
let clientBootstrap = "";

/** `weft bootstrap grpc --cert-dir`; resolves to the bootstrap file. */
const bootstrap = async (service: string, id: string, upstreams: string[], port: number): Promise<string> =>
  (await bootstrapGrpc(x, { service, id, port, upstreams, certs: true })).file;

const intention = (sources: { name: string; action: "allow" | "deny" }[]) =>
  api.applyConfig([{ kind: "Intention", name: SERVICE, sources }]);

/** The instance's `xds` check; on failure the error carries the server's log (CI once saw a 404 here). */
const xdsCheck = async (id: string) => {
  try {
    return (await api.getInstance(id)).checks.find((c) => c.id === "xds");
  } catch (e) {
    throw new Error(`GET instance ${id}: ${(e as Error).message}\nserver log:\n${x.log().slice(-4000)}`);
  }
};

/** Calls until every one of `n` is answered (by `replicas` when given); resolves to that batch. */
function allAnswered(c: XdsClient, n: number, what: string, replicas?: string[]): Promise<Batch> {
  return waitFor(
    async () => {
      const b = await c.calls(n);
      if (batchTotal(b) !== n) return undefined;
      if (replicas && Object.keys(b.counts).sort().join() !== replicas.join()) return undefined;
      return b;
    },
    30_000,
    { what, intervalMs: 200 },
  );
}

/** Calls until every one of `n` is refused with PERMISSION_DENIED. */
function allDenied(c: XdsClient, n: number, what: string): Promise<Batch> {
  return waitFor(
    async () => {
      const b = await c.calls(n, { deadlineMs: 5000 });
      return b.errors[PERMISSION_DENIED] === n ? b : undefined;
    },
    30_000,
    { what, intervalMs: 200 },
  );
}

beforeAll(async () => {
  x = await startXdsControlPlane();
  api = x.api;
  await intention([
    { name: "client", action: "allow" },
    { name: "caller", action: "allow" },
    { name: "*", action: "deny" },
  ]);
  for (const r of ["1", "2"]) {
    const port = await freePort();
    const file = await bootstrap(SERVICE, `${SERVICE}-${r}`, [], port);
    // Registered critical ("waiting for the xDS stream") until the server's stream opens.
    expect(await xdsCheck(`${SERVICE}-${r}`)).toMatchObject({
      status: "critical",
      output: "waiting for the xDS stream",
    });
    replicas.push(
      await startApp("xds-server-app.mjs", {
        port,
        env: { REPLICA: r, GRPC_XDS_BOOTSTRAP: file, GRPC_XDS_EXPERIMENTAL_RBAC: "true" },
        timeoutMs: 30_000,
      }),
    );
  }
  await waitFor(async () => (await api.healthService(SERVICE)).instances.length === 2, 20_000, {
    what: "both XdsServer replicas passing (their xds checks)",
  });
  clientBootstrap = await bootstrap("client", "client-1", [SERVICE], 50051);
  client = await XdsClient.start(clientBootstrap, { TARGET: SERVICE, XDS_CREDS: "1" });
}, 90_000);

afterAll(async () => {
  stopXdsClients();
  await meshCleanup();
});

describe("proxyless gRPC servers (XdsServer) with mTLS and the Intention as RBAC", () => {
  it("answers an allowed proxyless client from both replicas over mTLS, seeing its SPIFFE ID", async () => {
    const b = await allAnswered(client, 20, "20 calls answered by both replicas", ["1", "2"]);
    console.log(`allowed proxyless client: ${JSON.stringify(b)}`);
    expect(b.messages[0]).toMatch(/^spiffe:\/\/[^/]+\/ns\/default\/svc\/client$/);
    expect(await xdsCheck(`${SERVICE}-1`)).toMatchObject({ status: "passing", output: "xDS stream open" });
  }, 60_000);

  it("refuses a proxyless client the Intention denies with PERMISSION_DENIED", async () => {
    const file = await bootstrap("intruder", "intruder-1", [SERVICE], 50052);
    const intruder = await XdsClient.start(file, { TARGET: SERVICE, XDS_CREDS: "1" });
    const b = await allDenied(intruder, 10, "10 calls of intruder refused by the server's RBAC");
    console.log(`denied proxyless client: ${JSON.stringify(b)}`);
    expect(batchTotal(b)).toBe(0);
    intruder.stop();
  }, 60_000);

  it("serves an allowed sidecar-fronted caller and refuses a denied one", async () => {
    const callers: Record<string, XdsClient> = {};
    for (const service of ["caller", "outsider"]) {
      const app = await startApp("grpc-app.mjs", { env: { REPLICA: service } });
      const localPort = await freePort();
      const sidecar = await startProxy({
        service,
        appPort: app.port,
        protocol: "grpc",
        health: { grpc: true },
        upstreams: { [SERVICE]: localPort },
        server: x.addr,
        token: x.token,
      });
      await waitEndpoints(sidecar.adminPort, SERVICE, 2);
      // The app speaks h2c to its sidecar; the sidecar speaks mTLS to the XdsServers.
      callers[service] = await XdsClient.start(clientBootstrap, {
        TARGET_ADDR: `127.0.0.1:${localPort}`,
      });
    }
    const ok = await allAnswered(callers.caller as XdsClient, 20, "20 calls of caller via its sidecar", [
      "1",
      "2",
    ]);
    console.log(`allowed sidecar caller: ${JSON.stringify(ok)}`);
    expect(ok.messages[0]).toMatch(/^spiffe:\/\/[^/]+\/ns\/default\/svc\/caller$/);
    const no = await allDenied(callers.outsider as XdsClient, 10, "10 calls of outsider refused");
    console.log(`denied sidecar caller: ${JSON.stringify(no)}`);
  }, 90_000);

  it("flips the decision when the Intention changes, without restarting anything", async () => {
    const pids = replicas.map((r) => r.pid);
    await intention([
      { name: "client", action: "deny" },
      { name: "caller", action: "allow" },
      { name: "*", action: "deny" },
    ]);
    await allDenied(client, 10, "client refused after the Intention denies it");
    await intention([
      { name: "client", action: "allow" },
      { name: "caller", action: "allow" },
      { name: "*", action: "deny" },
    ]);
    await allAnswered(client, 20, "client answered again after the Intention allows it", ["1", "2"]);
    expect(replicas.map((r) => r.pid)).toEqual(pids);
    for (const r of replicas) expect(r.proc.exitCode).toBeNull();
  }, 90_000);

  it("fails closed on a server without RBAC support: it refuses the Listener and does not serve", async () => {
    const port = await freePort();
    const file = await bootstrap(SERVICE, `${SERVICE}-norbac`, [], port);
    const started = startApp("xds-server-app.mjs", {
      port,
      env: { REPLICA: "norbac", GRPC_XDS_BOOTSTRAP: file, GRPC_XDS_EXPERIMENTAL_RBAC: "false" },
      timeoutMs: 12_000,
    });
    started.catch(() => {}); // awaited below, once the check was read while the server still runs
    // Its stream is open but it refused the Listener (NACK): critical, so out of the load balancing,
    // with the client's own message (read while the process lives: once it exits, "stream closed").
    const check = await waitFor(
      async () => {
        const c = await xdsCheck(`${SERVICE}-norbac`);
        return c?.status === "critical" && /server Listener was refused/.test(c.output) ? c : undefined;
      },
      10_000,
      { what: "the norbac replica's xds check critical with the NACK" },
    );
    expect(check.output).toMatch(
      /server Listener was refused: .*envoy\.filters\.http\.rbac filter validation failed/,
    );
    expect((await api.healthService(SERVICE)).instances.map((i) => i.id).sort()).toEqual([
      `${SERVICE}-1`,
      `${SERVICE}-2`,
    ]);
    // And it never serves.
    await expect(started).rejects.toThrow(/not ready within/);
    await api.deregisterInstance(`${SERVICE}-norbac`);
  }, 60_000);

  it("marks a killed replica critical from its xDS stream, and traffic leaves it", async () => {
    await (replicas[0] as App).kill9();
    await waitFor(async () => (await xdsCheck(`${SERVICE}-1`))?.status === "critical", 20_000, {
      what: "the killed replica's xds check critical",
    });
    expect(await xdsCheck(`${SERVICE}-1`)).toMatchObject({ output: "xDS stream closed" });
    expect((await api.healthService(SERVICE)).instances.map((i) => i.id)).toEqual([`${SERVICE}-2`]);
    const b = await allAnswered(client, 20, "20 calls answered by the surviving replica only", ["2"]);
    console.log(`after killing replica 1: ${JSON.stringify(b)}`);
  }, 60_000);
});
