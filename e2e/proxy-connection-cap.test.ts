/**
 * The sidecar's cap on open connections per listener (HARDENING: "a cap on
 * connections"), lowered with WEFT_MAX_CONNECTIONS so that a test can reach
 * it: connections beyond the cap are closed on arrival, counted in
 * weft_proxy_connections_dropped_total, and the connections already open
 * (and, once some close, new ones) are served.
 */
import net from "node:net";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import {
  applyResources,
  meshCleanup,
  metricSum,
  type SidecarProc,
  startApp,
  startProxy,
  waitEndpoints,
} from "./helpers/mesh.js";
import { startWeftServer, type WeftServer } from "./helpers/weft.js";

const CAP = 20;
const EXTRA = 6;

let cp: WeftServer;
let web: SidecarProc;
let api: SidecarProc;
let apiLocal: number;

beforeAll(async () => {
  cp = await startWeftServer({ store: "memory", dev: true });
  apiLocal = await freePort();
  await applyResources(cp.addr, [
    { kind: "Intention", name: "api", sources: [{ name: "web", action: "allow" }] },
  ]);
  const [apiApp, webApp] = await Promise.all([
    startApp("http-app.mjs", { env: { NAME: "api", REPLICA: "a" } }),
    startApp("http-app.mjs", { env: { NAME: "web", REPLICA: "w" } }),
  ]);
  const env = { WEFT_MAX_CONNECTIONS: String(CAP) };
  [api, web] = await Promise.all([
    startProxy({ service: "api", appPort: apiApp.port, protocol: "http", server: cp.addr, env }),
    startProxy({
      service: "web",
      appPort: webApp.port,
      protocol: "http",
      upstreams: { api: apiLocal },
      server: cp.addr,
      env,
    }),
  ]);
  await waitEndpoints(web.adminPort, "api", 1);
}, 60_000);

afterAll(meshCleanup);

/** Opens `n` TCP connections; resolves once each is either still open after `settleMs` or closed. */
async function open(port: number, n: number, settleMs = 1_000) {
  const socks = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<{ sock: net.Socket; closed: boolean }>((resolve) => {
          const sock = net.connect(port, "127.0.0.1");
          const state = { sock, closed: false };
          sock.on("error", () => {});
          sock.once("close", () => {
            state.closed = true;
          });
          sock.once("connect", () => resolve(state));
          sock.once("error", () => resolve({ sock, closed: true }));
        }),
    ),
  );
  await new Promise((r) => setTimeout(r, settleMs));
  return socks;
}

const dropped = async (p: SidecarProc, listener: string): Promise<number> =>
  metricSum(
    (await http(`http://127.0.0.1:${p.adminPort}`, "/metrics")).text,
    "weft_proxy_connections_dropped_total",
    { listener },
  );

describe("connection cap per listener", () => {
  it("outbound: beyond the cap a connection is closed on arrival; those open are served; room comes back", async () => {
    const held = await open(apiLocal, CAP + EXTRA);
    const closed = held.filter((s) => s.closed).length;
    console.log(
      `outbound listener, cap ${CAP}: ${CAP + EXTRA} connections opened, ${closed} closed on arrival`,
    );
    expect(closed).toBe(EXTRA);
    expect(await dropped(web, "outbound")).toBe(EXTRA);
    // A held connection is served.
    const live = held.find((s) => !s.closed)?.sock as net.Socket;
    const answer = await new Promise<string>((resolve) => {
      let got = "";
      live.on("data", (d: Buffer) => {
        got += d.toString("latin1");
        if (got.includes("\r\n\r\n")) resolve(got);
      });
      live.write("GET /whoami HTTP/1.1\r\nhost: api\r\n\r\n");
    });
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    for (const s of held) s.sock.destroy();
    await new Promise((r) => setTimeout(r, 200));
    expect((await http(`http://127.0.0.1:${apiLocal}`, "/whoami", { timeoutMs: 5_000 })).status).toBe(200);
  });

  it("inbound (mTLS): beyond the cap a connection is closed before its handshake", async () => {
    const held = await open(api.inboundPort, CAP + EXTRA);
    const closed = held.filter((s) => s.closed).length;
    console.log(
      `inbound listener, cap ${CAP}: ${CAP + EXTRA} connections opened, ${closed} closed on arrival`,
    );
    // web's sidecar may hold kept-alive connections of its own to this listener: they count too.
    expect(closed).toBeGreaterThanOrEqual(EXTRA);
    expect(held.length - closed).toBeLessThanOrEqual(CAP);
    expect(await dropped(api, "inbound")).toBe(closed);
    for (const s of held) s.sock.destroy();
    await new Promise((r) => setTimeout(r, 200));
    // The mesh still works through the inbound listener once connections close.
    expect((await http(`http://127.0.0.1:${apiLocal}`, "/whoami", { timeoutMs: 5_000 })).status).toBe(200);
  });
});
