/**
 * The terminating gateway (issue #9): mesh services reach an external HTTP
 * server on loopback (in this test process, counting what it receives)
 * through `weft gateway --name egress`, only when the Intention for the
 * external service allows the caller. Two callers, `web` and `batch`, each
 * a sidecar with `payments` as an upstream; the test calls their loopback
 * upstream ports as their apps would.
 */
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import {
  applyResources,
  meshCleanup,
  type SidecarProc,
  type Spawned,
  spawnUntil,
  startApp,
  startProxy,
  waitEndpoints,
  waitFor,
} from "./helpers/mesh.js";
import { runWeft, startWeftServer, tempDir, WEFT_BIN, type WeftServer } from "./helpers/weft.js";

let cp: WeftServer;
let gw: Spawned;
let external: Server;
let received: string[] = [];
const callers: Record<"web" | "batch", { sidecar: SidecarProc; port: number }> = {} as Record<
  "web" | "batch",
  { sidecar: SidecarProc; port: number }
>;

beforeAll(async () => {
  external = createServer((req, res) => {
    received.push(`${req.method} ${req.url}`);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ external: true, url: req.url }));
  });
  await new Promise<void>((r) => external.listen(0, "127.0.0.1", () => r()));
  const extPort = (external.address() as AddressInfo).port;
  cp = await startWeftServer({ store: "memory", dev: true });
  await applyResources(cp.addr, [
    { kind: "Mesh", name: "mesh", defaultPolicy: "deny" },
    { kind: "ServiceDefaults", name: "payments", protocol: "http" },
  ]);
  const file = join(tempDir("weft-gw-egress-"), "gateway.yaml");
  writeFileSync(
    file,
    `kind: Gateway\nname: egress\ntype: terminating\nservices:\n  - name: payments\n    host: 127.0.0.1\n    port: ${extPort}\n`,
  );
  gw = await spawnUntil([WEFT_BIN, "gateway", "--name", "egress", "-f", file, "--server", cp.addr], {
    ready: /weft gateway ready name=egress type=terminating services=payments:(\d+) admin=(\d+)/,
    what: "weft gateway --name egress",
    timeoutMs: 30_000,
  });
  for (const name of ["web", "batch"] as const) {
    const app = await startApp("http-app.mjs", { env: { NAME: name, REPLICA: "0" } });
    const port = await freePort();
    const sidecar = await startProxy({
      service: name,
      appPort: app.port,
      protocol: "http",
      health: { http: "/healthz" },
      upstreams: { payments: port },
      server: cp.addr,
    });
    callers[name] = { sidecar, port };
    await waitEndpoints(sidecar.adminPort, "payments", 1);
  }
}, 90_000);

afterAll(async () => {
  await meshCleanup();
  await new Promise<void>((r) => external.close(() => r()));
});

const call = (who: "web" | "batch", path: string) =>
  http(`http://127.0.0.1:${callers[who].port}`, path, { timeoutMs: 10_000 });

describe("terminating gateway", () => {
  it("registers the external service behind the gateway in the catalog", async () => {
    const r = await runWeft(["services", "--json", "--addr", cp.addr]);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { name: string }[]).map((s) => s.name)).toContain("payments");
  });

  it("refuses every caller while no Intention allows it (default deny), and nothing reaches the external service", async () => {
    received = [];
    expect((await call("web", "/charge")).status).toBe(403);
    expect((await call("batch", "/charge")).status).toBe(403);
    expect(received).toEqual([]);
  });

  it("lets through exactly the callers the Intention for the external service allows", async () => {
    await applyResources(cp.addr, [
      {
        kind: "Intention",
        name: "payments",
        sources: [
          { name: "web", action: "allow" },
          { name: "*", action: "deny" },
        ],
      },
    ]);
    received = [];
    // The gateway applies the Intention once its snapshot carries it.
    const ok = await waitFor(
      async () => {
        const r = await call("web", "/charge?n=1");
        return r.status === 200 ? r : undefined;
      },
      15_000,
      { intervalMs: 200, what: "web allowed to reach payments" },
    );
    expect(ok.body).toEqual({ external: true, url: "/charge?n=1" });
    received = [];
    const statuses = { web: [] as number[], batch: [] as number[] };
    for (let i = 0; i < 5; i++) {
      statuses.web.push((await call("web", `/charge?i=${i}`)).status);
      statuses.batch.push((await call("batch", `/charge?i=${i}`)).status);
    }
    expect(statuses.web).toEqual([200, 200, 200, 200, 200]);
    expect(statuses.batch).toEqual([403, 403, 403, 403, 403]);
    expect(received).toEqual([0, 1, 2, 3, 4].map((i) => `GET /charge?i=${i}`));
    expect(gw.proc.exitCode).toBeNull();
  });
});
