/**
 * The sidecar when things go away, with real processes:
 * - the control plane (on a data dir) is killed with SIGKILL for 30 s while
 *   `web` calls `api` at 20 requests/s: the sidecars keep serving on their
 *   last good config (no failed request), reconnect once it is back on the
 *   same address, and a change made afterwards (a deny intention) reaches
 *   them;
 * - a sidecar gets SIGTERM during a slow request: the request completes, new
 *   connections are refused meanwhile, and the process exits 0 afterwards.
 */
import net from "node:net";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import {
  adminJson,
  applyResources,
  type ControlPlane,
  type Exit,
  meshCleanup,
  type SidecarProc,
  startApp,
  startControlPlane,
  startProxy,
  waitEndpoints,
  waitFor,
} from "./helpers/mesh.js";

const OUTAGE_MS = 30_000;
const RATE_PER_S = 20;

let cp: ControlPlane;

beforeAll(async () => {
  cp = await startControlPlane({ dev: true });
}, 30_000);

afterAll(meshCleanup);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function connected(p: SidecarProc): Promise<boolean> {
  return (await adminJson(p.adminPort, "/config")).controlPlane?.connected === true;
}

interface Outcome {
  at: number;
  status: number;
  error?: string;
}

/** Starts a request every 1000/rate ms (each with a 5 s timeout) until stopped; keeps every outcome. */
function paceRequests(port: number, rate: number): { results: Outcome[]; stop(): Promise<void> } {
  const results: Outcome[] = [];
  const inFlight = new Set<Promise<void>>();
  const timer = setInterval(() => {
    if (inFlight.size >= 50) {
      results.push({ at: Date.now(), status: 0, error: "client: 50 requests already in flight" });
      return;
    }
    const at = Date.now();
    const p = http(`http://127.0.0.1:${port}`, "/whoami", { timeoutMs: 5_000 }).then(
      (r) => {
        results.push(r.status === 200 ? { at, status: 200 } : { at, status: r.status, error: r.text.trim() });
      },
      (e: Error) => {
        results.push({ at, status: 0, error: e.message });
      },
    );
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  }, 1000 / rate);
  return {
    results,
    async stop() {
      clearInterval(timer);
      await Promise.all([...inFlight]);
    },
  };
}

describe("control plane outage", () => {
  it("30 s without the control plane under load: no failed request, the proxies reconnect, later config applies", async () => {
    const apiLocal = await freePort();
    await applyResources(cp.addr, [
      { kind: "Intention", name: "api", sources: [{ name: "web", action: "allow" }] },
    ]);
    const [apiApp, webApp] = await Promise.all([
      startApp("http-app.mjs", { env: { NAME: "api", REPLICA: "a" } }),
      startApp("http-app.mjs", { env: { NAME: "web", REPLICA: "w" } }),
    ]);
    const [api, web] = await Promise.all([
      startProxy({
        service: "api",
        appPort: apiApp.port,
        protocol: "http",
        health: { http: "/healthz" },
        server: cp.addr,
      }),
      startProxy({
        service: "web",
        appPort: webApp.port,
        protocol: "http",
        health: { http: "/healthz" },
        upstreams: { api: apiLocal },
        server: cp.addr,
      }),
    ]);
    await waitEndpoints(web.adminPort, "api", 1);
    await waitFor(
      async () => (await http(`http://127.0.0.1:${apiLocal}`, "/whoami")).status === 200,
      10_000,
      {
        what: "web -> api allowed",
      },
    );

    const loop = paceRequests(apiLocal, RATE_PER_S);
    await sleep(3_000);
    const downAt = Date.now();
    await cp.kill9();
    // Both sidecars see their config stream break (and keep serving).
    await waitFor(async () => !(await connected(web)) && !(await connected(api)), 20_000, {
      what: "the sidecars notice the control plane is gone",
    });
    await sleep(Math.max(0, downAt + OUTAGE_MS - Date.now()));
    const upAt = Date.now();
    cp = await startControlPlane({ port: cp.port, dataDir: cp.dataDir, dev: true, expectToken: false });
    await waitFor(async () => (await connected(web)) && (await connected(api)), 30_000, {
      what: "both sidecars reconnect",
      intervalMs: 100,
    });
    const reconnectedAt = Date.now();
    await sleep(3_000);
    await loop.stop();

    const all = loop.results;
    const during = all.filter((r) => r.at >= downAt && r.at < upAt);
    const failed = all.filter((r) => r.status !== 200);
    console.log(
      `control plane down ${((upAt - downAt) / 1000).toFixed(0)} s under load: ` +
        `${during.filter((r) => r.status !== 200).length} failed of ${during.length} requests`,
    );
    console.log(
      `whole loop (before, during, after the restart): ${failed.length} failed of ${all.length} requests; ` +
        `sidecars reconnected ${reconnectedAt - upAt} ms after the restart` +
        (failed.length > 0
          ? `; first failures: ${JSON.stringify(failed.slice(0, 3).map((f) => ({ t: f.at - downAt, s: f.status, e: f.error })))}`
          : ""),
    );
    expect(during.length).toBeGreaterThan((OUTAGE_MS / 1000) * RATE_PER_S * 0.8);
    expect(failed).toEqual([]);

    // A change made after the restart reaches the sidecars.
    const applyAt = Date.now();
    await applyResources(cp.addr, [
      { kind: "Intention", name: "api", sources: [{ name: "web", action: "deny" }] },
    ]);
    const denied = await waitFor(
      async () => {
        const r = await http(`http://127.0.0.1:${apiLocal}`, "/whoami", { timeoutMs: 5_000 });
        return r.status === 403 ? r : undefined;
      },
      15_000,
      { intervalMs: 20, what: "403 after the deny intention" },
    );
    console.log(
      `deny intention after the restart -> first 403: ${Date.now() - applyAt} ms (${denied.text.trim()})`,
    );
    expect(denied.text).toContain('"web"');
  }, 150_000);
});

/** A `dest` app and sidecar, and a `src` sidecar with an upstream to it, allowed by an intention. */
async function startPair(dest: string, src: string, destArgs: string[] = []) {
  const local = await freePort();
  await applyResources(cp.addr, [
    { kind: "Intention", name: dest, sources: [{ name: src, action: "allow" }] },
  ]);
  const [destApp, srcApp] = await Promise.all([
    startApp("http-app.mjs", { env: { NAME: dest, REPLICA: "s" } }),
    startApp("http-app.mjs", { env: { NAME: src, REPLICA: "c" } }),
  ]);
  const [destProxy, srcProxy] = await Promise.all([
    startProxy({
      service: dest,
      appPort: destApp.port,
      protocol: "http",
      health: { http: "/healthz" },
      args: destArgs,
      server: cp.addr,
    }),
    startProxy({
      service: src,
      appPort: srcApp.port,
      protocol: "http",
      upstreams: { [dest]: local },
      server: cp.addr,
    }),
  ]);
  await waitEndpoints(srcProxy.adminPort, dest, 1);
  await waitFor(async () => (await http(`http://127.0.0.1:${local}`, "/whoami")).status === 200, 10_000, {
    what: `${src} -> ${dest} allowed`,
  });
  return { local, dest: destProxy, src: srcProxy };
}

/** Tracks when a process exits. */
function exitWatch(p: SidecarProc): { exited: Promise<Exit>; at: () => number } {
  let at = 0;
  const exited = p.exited().then((e) => {
    at = Date.now();
    return e;
  });
  return { exited, at: () => at };
}

describe("graceful stop", () => {
  it("SIGTERM during a slow request: it completes, new connections are refused, then exit 0 and the instance is gone", async () => {
    const { local, dest: slow, src: client } = await startPair("slow", "client");
    const sentAt = Date.now();
    let respondedAt = 0;
    const inFlight = http(`http://127.0.0.1:${local}`, "/slow/1500", { timeoutMs: 10_000 }).then((r) => {
      respondedAt = Date.now();
      return r;
    });
    await sleep(300);
    const termAt = Date.now();
    slow.proc.kill("SIGTERM");
    const exit = exitWatch(slow);
    // The inbound listener stops accepting while the slow request is still being answered. The
    // probes that still connect end with a reset: a FIN before the TLS handshake is the next test.
    await waitFor(
      () =>
        new Promise<boolean>((resolve) => {
          const s = net.connect({ host: "127.0.0.1", port: slow.inboundPort });
          s.once("connect", () => {
            s.resetAndDestroy();
            resolve(false);
          });
          s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED"));
        }),
      5_000,
      { intervalMs: 20, what: "new connections refused" },
    );
    const refusedAt = Date.now();
    const r = await inFlight;
    const code = await exit.exited;
    const catalog = await http(cp.url, `/v1/catalog/instances/${slow.instanceId}`);
    let clientEndpoints = -1;
    await waitEndpoints(client.adminPort, "slow", 0, 3_000).catch(async () => {
      clientEndpoints = (await adminJson(client.adminPort, "/config")).snapshot.clusters.slow.endpoints
        .length;
    });
    console.log(
      `SIGTERM ${termAt - sentAt} ms into a 1500 ms request: new connections refused after ${refusedAt - termAt} ms, ` +
        `response ${r.status} after ${respondedAt - sentAt} ms, exit ${code.code ?? code.signal} ${exit.at() - termAt} ms ` +
        `after SIGTERM; afterwards the catalog answers ${catalog.status} for the instance` +
        (clientEndpoints > 0
          ? ` and the client still has ${clientEndpoints} endpoint(s) for slow 3 s later`
          : ""),
    );
    expect(r.status, r.text).toBe(200);
    expect(r.body).toMatchObject({ slept: 1500, replica: "s" });
    expect(refusedAt).toBeLessThan(respondedAt);
    expect(code).toEqual({ code: 0, signal: null });
    // It did not exit before the app had answered (the app answers 1500 ms after the request arrived).
    expect(exit.at() - sentAt).toBeGreaterThanOrEqual(1_450);
    // It deregistered on the way out, and stayed deregistered: peers no longer pick it.
    expect(catalog.status, catalog.text).toBe(404);
    expect(clientEndpoints).toBe(-1);
  }, 60_000);

  it("a TCP connection closed before its TLS handshake does not hold up the drain", async () => {
    // The drain waits for requests in flight; a socket that never completed a handshake has none.
    // A long drain timeout, so waiting for it cannot be mistaken for a drain that finished.
    const { dest } = await startPair("idle", "prober", ["--drain-timeout", "30s"]);
    // What a TCP port check does: connect, then close (FIN) without a byte.
    await new Promise<void>((resolve, reject) => {
      const s = net.connect({ host: "127.0.0.1", port: dest.inboundPort });
      s.once("connect", () => s.end(() => resolve()));
      s.once("error", reject);
    });
    await sleep(100);
    const termAt = Date.now();
    dest.proc.kill("SIGTERM");
    const exit = exitWatch(dest);
    const code = await exit.exited;
    const refusals = dest.stderr().match(/"detail":"[^"]*","remote"[^}]*"msg":"mTLS peer refused"/g) ?? [];
    console.log(
      `idle sidecar after a connect-and-close probe: exit ${code.code ?? code.signal} ${exit.at() - termAt} ms after SIGTERM ` +
        `(--drain-timeout 30s); its log: ${JSON.stringify(refusals.slice(-1))}`,
    );
    expect(code).toEqual({ code: 0, signal: null });
    expect(exit.at() - termAt).toBeLessThan(5_000);
  }, 60_000);
});
