/**
 * An ingress gateway that reads its Gateway resource from the control plane
 * (`weft gateway --name edge`, no -f) follows later changes while it runs:
 * a new route to a new service is served without a restart (the gateway
 * registers the new upstream, so its snapshot carries the service), a rate
 * limit added later applies, and a change that needs a restart (a listener's
 * port) leaves the running listener as it was.
 */
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import {
  applyResources,
  meshCleanup,
  type Spawned,
  spawnUntil,
  startApp,
  startProxy,
  waitEndpoints,
  waitFor,
} from "./helpers/mesh.js";
import { startWeftServer, WEFT_BIN, type WeftServer } from "./helpers/weft.js";

let cp: WeftServer;
let gw: Spawned;
let port: number;
let adminPort: number;

const gateway = (routes: unknown[], extra: Record<string, unknown> = {}) => ({
  kind: "Gateway",
  name: "edge",
  type: "ingress",
  listeners: [{ port, address: "127.0.0.1", routes, ...extra }],
});

beforeAll(async () => {
  cp = await startWeftServer({ store: "memory", dev: true });
  port = await freePort();
  await applyResources(cp.addr, [
    { kind: "ServiceDefaults", name: "web", protocol: "http" },
    { kind: "ServiceDefaults", name: "api", protocol: "http" },
    { kind: "Intention", name: "web", sources: [{ name: "edge", action: "allow" }] },
    { kind: "Intention", name: "api", sources: [{ name: "edge", action: "allow" }] },
    gateway([{ host: "*", pathPrefix: "/", service: "web" }]),
  ]);
  for (const name of ["web", "api"]) {
    const app = await startApp("http-app.mjs", { env: { NAME: name, REPLICA: "0" } });
    await startProxy({
      service: name,
      appPort: app.port,
      protocol: "http",
      health: { http: "/healthz" },
      server: cp.addr,
    });
  }
  gw = await spawnUntil([WEFT_BIN, "gateway", "--name", "edge", "--server", cp.addr], {
    ready: /weft gateway ready name=edge type=ingress listeners=(\S+) admin=(\d+)/,
    what: "weft gateway --name edge",
    timeoutMs: 30_000,
  });
  adminPort = Number(gw.ready[2]);
  await waitEndpoints(adminPort, "web", 1);
}, 60_000);

afterAll(async () => {
  await meshCleanup();
});

const get = (path: string) => http(`http://127.0.0.1:${port}`, path, { timeoutMs: 10_000 });

describe("a gateway following its resource", () => {
  it("serves the stored config, then a new route to a new service without a restart", async () => {
    expect((await get("/inspect")).body.service).toBe("web");
    // No api route yet: web's app answers the path it does not know.
    expect((await get("/api/inspect")).status).toBe(404);
    await applyResources(cp.addr, [
      gateway([
        { host: "*", pathPrefix: "/api/", service: "api", rewrite: { prefix: "/" } },
        { host: "*", pathPrefix: "/", service: "web" },
      ]),
    ]);
    const r = await waitFor(
      async () => {
        const res = await get("/api/inspect");
        return res.status === 200 && res.body.service === "api" ? res : undefined;
      },
      15_000,
      { intervalMs: 200, what: "the new route served" },
    );
    expect(r.body.url).toBe("/inspect");
    expect((await get("/inspect")).body.service).toBe("web");
  });

  it("applies a rate limit added later", async () => {
    await applyResources(cp.addr, [
      gateway([
        { host: "*", pathPrefix: "/", service: "web", rateLimit: { requestsPerSecond: 0.01, burst: 1 } },
      ]),
    ]);
    await waitFor(async () => (await get("/inspect")).status === 429, 15_000, {
      intervalMs: 200,
      what: "the new rate limit applied",
    });
  });

  it("keeps a listener whose port changed as it was (a restart applies it), and serves on", async () => {
    const other = await freePort();
    await applyResources(cp.addr, [
      {
        ...gateway([{ host: "*", pathPrefix: "/", service: "web" }]),
        listeners: [
          { port: other, address: "127.0.0.1", routes: [{ host: "*", pathPrefix: "/", service: "web" }] },
        ],
      },
    ]);
    await waitFor(() => /a restart applies them/.test(gw.stderr()), 15_000, { what: "the restart warning" });
    // Still the old listener with its old routes (the rate limit of the previous version).
    expect((await get("/inspect")).status).toBe(429);
    expect(gw.proc.exitCode).toBeNull();
  });
});
