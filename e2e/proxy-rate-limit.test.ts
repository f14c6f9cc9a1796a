/**
 * Local rate limits at api's inbound listener, with real sidecars:
 * web's app -> web sidecar -> mTLS -> api sidecar (token buckets from
 * ServiceDefaults.rateLimit) -> api's app. Excess gets 429 with
 * `retry-after` and flag RL from api's sidecar, never reaching api's app.
 */
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HttpResult, http } from "./helpers/http.js";
import {
  adminJson,
  applyResources,
  meshCleanup,
  metricSum,
  type SidecarProc,
  startApp,
  startProxy,
  waitFor,
} from "./helpers/mesh.js";
import { startWeftServer, type WeftServer } from "./helpers/weft.js";

let cp: WeftServer;
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
  [api] = await Promise.all([
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
  // Before any limit: web reaches api (and its HTTP/2 session to api's sidecar is open).
  await waitFor(async () => (await get("/whoami")).status === 200, 15_000, { what: "web -> api" });
}, 60_000);

afterAll(meshCleanup);

function get(path: string): Promise<HttpResult> {
  return http(`http://127.0.0.1:${apiLocal}`, path, { timeoutMs: 5_000 });
}

/** Applies api's ServiceDefaults, then waits until api's sidecar uses its rate limit. */
async function limitApi(rateLimit: Record<string, unknown>): Promise<void> {
  await applyResources(cp.addr, [{ kind: "ServiceDefaults", name: "api", rateLimit }]);
  const want = JSON.stringify(rateLimit.routes ?? null);
  await waitFor(
    async () => {
      const rl = (await adminJson(api.adminPort, "/config")).snapshot?.inbound?.rateLimit;
      return rl !== undefined && JSON.stringify(rl.routes ?? null) === want;
    },
    10_000,
    { what: "api's snapshot with the rate limit", intervalMs: 50 },
  );
}

async function rateLimited(route: string): Promise<number> {
  const text = (await http(`http://127.0.0.1:${api.adminPort}`, "/metrics")).text;
  return metricSum(text, "weft_proxy_rate_limited_total", { source_service: "web", route });
}

describe("local rate limits at the inbound listener", () => {
  it("a service limit of 10 rps, burst 10: 30 concurrent requests get 10 × 200 and 20 × 429 with retry-after; after ~1 s requests pass again", async () => {
    await limitApi({ requestsPerSecond: 10, burst: 10 });
    const started = Date.now();
    const burst = await Promise.all(Array.from({ length: 30 }, () => get("/whoami")));
    const elapsed = Date.now() - started;
    const ok = burst.filter((r) => r.status === 200);
    const limited = burst.filter((r) => r.status === 429);
    const retryAfter = limited.map((r) => Number(r.headers["retry-after"]));
    // Every 200 is the app's answer, each with its own request count: the app saw exactly these.
    const appSaw = new Set(ok.filter((r) => r.body?.service === "api").map((r) => r.body.requests)).size;
    console.log(
      `rate limit 10 rps burst 10, 30 concurrent requests in ${elapsed} ms: ${ok.length} x 200, ` +
        `${limited.length} x 429 (retry-after ${[...new Set(retryAfter)].join(",")} s), the app saw ${appSaw}`,
    );
    // The bucket refills one token per 100 ms: a burst that took longer (a loaded machine) may
    // rightly have let that many more through. Under 100 ms it is exactly the burst.
    const refilled = Math.floor(elapsed / 100);
    expect(ok.length).toBeGreaterThanOrEqual(10);
    expect(ok.length).toBeLessThanOrEqual(10 + refilled);
    if (refilled === 0) expect(ok).toHaveLength(10);
    expect(limited).toHaveLength(30 - ok.length);
    expect(appSaw).toBe(ok.length);
    for (const r of limited) {
      expect(Number(r.headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect(r.headers["x-weft-response-flags"]).toBe("RL");
      expect(r.text).toBe("local rate limit exceeded");
    }

    await new Promise((r) => setTimeout(r, 1_100));
    const after: number[] = [];
    for (let i = 0; i < 5; i++) after.push((await get("/whoami")).status);
    console.log(`after 1.1 s, 5 sequential requests: ${after.join(",")}`);
    expect(after).toEqual([200, 200, 200, 200, 200]);
    const counted = await rateLimited("service");
    console.log(`weft_proxy_rate_limited_total{source_service="web",route="service"} ${counted}`);
    expect(counted).toBe(limited.length);
  }, 30_000);

  it("a per-route limit on pathPrefix /slow-lane leaves other paths unlimited", async () => {
    await limitApi({ routes: [{ pathPrefix: "/slow-lane", requestsPerSecond: 1, burst: 2 }] });
    const [slow, other] = await Promise.all([
      Promise.all(Array.from({ length: 10 }, (_, i) => get(`/slow-lane/${i}`))),
      Promise.all(Array.from({ length: 30 }, () => get("/whoami"))),
    ]);
    const slowLimited = slow.filter((r) => r.status === 429).length;
    // The app answers /slow-lane/... with its 404: it was let through.
    const slowThrough = slow.filter(
      (r) => r.status === 404 && r.body?.path?.startsWith("/slow-lane/"),
    ).length;
    const otherOk = other.filter((r) => r.status === 200).length;
    console.log(
      `route limit /slow-lane 1 rps burst 2: 10 concurrent -> ${slowThrough} through, ${slowLimited} x 429; ` +
        `30 concurrent /whoami -> ${otherOk} x 200`,
    );
    expect(slowThrough).toBe(2);
    expect(slowLimited).toBe(8);
    expect(otherOk).toBe(30);
    const counted = await rateLimited("route[0]");
    console.log(`weft_proxy_rate_limited_total{source_service="web",route="route[0]"} ${counted}`);
    expect(counted).toBe(8);
  }, 30_000);
});
