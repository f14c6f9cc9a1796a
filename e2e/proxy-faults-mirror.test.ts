/**
 * Fault injection and mirroring across real sidecars (issue #7): `web` calls
 * `api` (one http-app.mjs replica) and `rpc` (grpc-app.mjs); a Route for
 * `api` injects aborts and delays or mirrors to `shadow` (one http-app.mjs
 * replica, no upstream of web: only the mirror reaches it). Each test
 * applies its Route with `weft apply`, waits until the web sidecar's
 * snapshot carries it, and counts what the client got, what each app saw
 * (/_log) and what the web sidecar's metrics say.
 */

import { Agent } from "node:http";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type HttpOptions, type HttpResult, http } from "./helpers/http.js";
import {
  APPS_DIR,
  type App,
  allowFrom,
  appLog,
  applyResources,
  applyRoutes,
  concurrently,
  httpOn,
  meshCleanup,
  metricSum,
  proxyMetrics,
  resetAppLog,
  type SidecarProc,
  startApp,
  startClientMesh,
  startProxy,
  waitEndpoints,
  waitFor,
} from "./helpers/mesh.js";
import { startWeftServer, type WeftServer } from "./helpers/weft.js";

const FLAGS = "x-weft-response-flags";

let cp: WeftServer;
let web: SidecarProc;
let api: App;
let shadow: App;
let shadowSidecar: SidecarProc;
const local = { api: 0, rpc: 0 };

beforeAll(async () => {
  cp = await startWeftServer({ store: "memory", dev: true });
  local.api = await freePort();
  local.rpc = await freePort();
  await applyResources(cp.addr, [
    allowFrom("api"),
    allowFrom("shadow"),
    allowFrom("rpc"),
    { kind: "ServiceDefaults", name: "api", protocol: "http" },
    { kind: "ServiceDefaults", name: "shadow", protocol: "http" },
    { kind: "ServiceDefaults", name: "rpc", protocol: "grpc" },
  ]);
  const [rpcApp, shadowApp] = await Promise.all([
    startApp("grpc-app.mjs", { env: { REPLICA: "g" } }),
    startApp("http-app.mjs", { env: { NAME: "shadow", REPLICA: "s" } }),
  ]);
  shadow = shadowApp;
  const [mesh, , shadowProxy] = await Promise.all([
    startClientMesh(cp.addr, [{ service: "api", replica: "a", script: "http-app.mjs" }], local),
    startProxy({
      service: "rpc",
      appPort: rpcApp.port,
      protocol: "grpc",
      health: { grpc: true },
      server: cp.addr,
    }),
    startProxy({
      service: "shadow",
      appPort: shadowApp.port,
      protocol: "http",
      health: { http: "/healthz" },
      server: cp.addr,
    }),
  ]);
  web = mesh.web;
  api = mesh.apps.get("a") as App;
  shadowSidecar = shadowProxy;
  await waitEndpoints(web.adminPort, "rpc", 1);
}, 60_000);

afterAll(async () => {
  agent.destroy();
  await meshCleanup();
});

beforeEach(async () => {
  await Promise.all([api, shadow].map(resetAppLog));
});

const setRoutes = (routes: Record<string, unknown>[]) => applyRoutes(cp.addr, web.adminPort, "api", routes);

/** Keep-alive, 8 sockets: the loops below run 8 requests at a time. */
const agent = new Agent({ keepAlive: true, maxSockets: 8 });

/** One request to `api` through the web sidecar. */
const call = (path: string, opts: HttpOptions = {}): Promise<HttpResult> =>
  httpOn(agent, local.api, path, { timeoutMs: 10_000, ...opts });

function tally<T>(results: T[], key: (r: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) {
    const k = key(r);
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/**
 * The web sidecar's outbound requests to `destination` whose response flags
 * include `flag` (alone or with others: see the DC test below).
 */
async function flagged(flag: string, destination = "api"): Promise<number> {
  return flagCounts(await proxyMetrics(web.adminPort), destination)
    .filter(([flags]) => flags.split(",").includes(flag))
    .reduce((sum, [, n]) => sum + n, 0);
}

/** [response_flags, count] of each weft_proxy_requests_total sample for outbound requests to `destination`. */
function flagCounts(metrics: string, destination: string): [string, number][] {
  const out: [string, number][] = [];
  for (const line of metrics.split("\n")) {
    if (!line.startsWith("weft_proxy_requests_total{")) continue;
    if (!line.includes('direction="outbound"') || !line.includes(`destination_service="${destination}"`))
      continue;
    const flags = /response_flags="([^"]*)"/.exec(line)?.[1] ?? "";
    out.push([flags, Number(line.slice(line.lastIndexOf(" ") + 1))]);
  }
  return out;
}

/** Outbound requests to `destination` the web sidecar has counted, whatever their flags. */
async function outbound(destination = "api"): Promise<number> {
  return metricSum(await proxyMetrics(web.adminPort), "weft_proxy_requests_total", {
    direction: "outbound",
    destination_service: destination,
  });
}

/**
 * Runs `n` requests (`run`) and returns how many of them the web sidecar
 * counted with `flags`, once it has counted all `n`: it records a request
 * just after the response went out, so the client can be a hair ahead.
 */
async function countingFlags<T>(
  flags: string,
  destination: string,
  n: number,
  run: () => Promise<T>,
): Promise<{ result: T; flagged: number }> {
  const [total0, flagged0] = [await outbound(destination), await flagged(flags, destination)];
  const result = await run();
  await waitFor(async () => (await outbound(destination)) - total0 >= n, 5_000, {
    what: `${n} requests to ${destination} counted`,
  });
  return { result, flagged: (await flagged(flags, destination)) - flagged0 };
}

/** Mirror copies by result, as the web sidecar counts them. */
async function mirrored(): Promise<Record<"sent" | "skipped" | "failed", number>> {
  const text = await proxyMetrics(web.adminPort);
  const m = (result: string) => metricSum(text, "weft_proxy_mirrored_requests_total", { result });
  return { sent: m("sent"), skipped: m("skipped"), failed: m("failed") };
}

describe("fault injection: aborts", () => {
  it("abort 100% with 418: every response is 418 with flag FI and the app sees none", async () => {
    await setRoutes([
      {
        name: "abort-all",
        match: { pathPrefix: "/inspect/abort" },
        destination: { fault: { abort: { percent: 100, httpStatus: 418 } } },
      },
    ]);
    const N = 200;
    const { result: r, flagged: fi } = await countingFlags("FI", "api", N, () =>
      concurrently(N, (i) => call(`/inspect/abort/${i}`, i % 2 ? { method: "POST", body: "payload" } : {})),
    );
    const counts = tally(r, (x) => `${x.status} ${x.headers[FLAGS]}`);
    const seen = (await appLog(api)).seen;
    console.log(`abort 100% (418): ${JSON.stringify(counts)}, FI counted ${fi}, app saw ${seen}`);
    expect(counts).toEqual({ "418 FI": N });
    expect(fi).toBe(N);
    expect(seen).toBe(0);
    // Other paths of the service are not aborted.
    expect((await call("/inspect/fine")).status).toBe(200);
    expect((await appLog(api)).seen).toBe(1);
  }, 60_000);

  it("abort 30% over 1,000 requests: 300 ± 60 aborted, the rest reach the app", async () => {
    await setRoutes([
      {
        name: "abort-some",
        match: { pathPrefix: "/inspect" },
        destination: { fault: { abort: { percent: 30, httpStatus: 503 } } },
      },
    ]);
    const N = 1_000;
    const { result: r, flagged: fi } = await countingFlags("FI", "api", N, () =>
      concurrently(N, () => call("/inspect/p")),
    );
    const counts = tally(r, (x) => `${x.status} ${x.headers[FLAGS] ?? "-"}`);
    const aborted = counts["503 FI"] ?? 0;
    const seen = (await appLog(api)).seen;
    console.log(`abort 30%: ${JSON.stringify(counts)}, FI counted ${fi}, app saw ${seen}`);
    expect(aborted).toBeGreaterThanOrEqual(240);
    expect(aborted).toBeLessThanOrEqual(360);
    expect(counts).toEqual({ "503 FI": aborted, "200 -": N - aborted });
    expect(fi).toBe(aborted);
    expect(seen).toBe(N - aborted);
  }, 60_000);
});

describe("fault injection: delays", () => {
  const DELAY_MS = 200;

  /** `n` requests, each with its status and time to the whole response. */
  const timed = (n: number) =>
    concurrently(n, async () => {
      const t0 = performance.now();
      const x = await call("/inspect/d");
      return { status: x.status, ms: performance.now() - t0 };
    });

  it("delay 100% of 200 ms: every response takes ≥ 200 ms and flag DI is counted", async () => {
    await setRoutes([
      {
        name: "delay-all",
        match: { pathPrefix: "/inspect" },
        destination: { fault: { delay: { percent: 100, duration: `${DELAY_MS}ms` } } },
      },
    ]);
    const N = 40;
    const { result: r, flagged: di } = await countingFlags("DI", "api", N, () => timed(N));
    const fastest = Math.min(...r.map((x) => x.ms));
    console.log(
      `delay 100% ${DELAY_MS} ms: statuses ${JSON.stringify(tally(r, (x) => String(x.status)))}, fastest ${fastest.toFixed(0)} ms, DI counted ${di}`,
    );
    expect(tally(r, (x) => String(x.status))).toEqual({ "200": N });
    expect(fastest).toBeGreaterThanOrEqual(DELAY_MS);
    expect(di).toBe(N);
    expect((await appLog(api)).seen).toBe(N);
  }, 60_000);

  it("delay 50% over 200 requests: about half are slow (70..130)", async () => {
    await setRoutes([
      {
        name: "delay-half",
        match: { pathPrefix: "/inspect" },
        destination: { fault: { delay: { percent: 50, duration: `${DELAY_MS}ms` } } },
      },
    ]);
    const N = 200;
    const { result: r, flagged: di } = await countingFlags("DI", "api", N, () => timed(N));
    const slow = r.filter((x) => x.ms >= DELAY_MS).length;
    console.log(`delay 50% ${DELAY_MS} ms over ${N}: ${slow} took ≥ ${DELAY_MS} ms, DI counted ${di}`);
    expect(tally(r, (x) => String(x.status))).toEqual({ "200": N });
    expect(di).toBeGreaterThanOrEqual(70);
    expect(di).toBeLessThanOrEqual(130);
    // Every delayed request was slow (a loaded machine may make a few others slow too).
    expect(slow).toBeGreaterThanOrEqual(di);
    expect(slow).toBeLessThanOrEqual(di + 20);
  }, 60_000);
});

describe("response flags of complete exchanges", () => {
  it("a response the client read whole is never flagged DC", async () => {
    await setRoutes([{ name: "plain", match: { pathPrefix: "/inspect" }, destination: {} }]);
    const N = 300;
    const { result: r, flagged: dc } = await countingFlags("DC", "api", N, () =>
      // A connection per request (http(): no agent), closed by the client right after the response.
      concurrently(N, () => http(`http://127.0.0.1:${local.api}`, "/inspect/whole")),
    );
    console.log(`${N} complete responses, client closing after each: ${dc} counted DC`);
    expect(r.every((x) => x.status === 200 && x.body?.service === "api")).toBe(true);
    expect(dc).toBe(0);
  }, 60_000);
});

describe("fault injection: gRPC", () => {
  // biome-ignore lint/suspicious/noExplicitAny: the generated client is untyped
  let client: any;

  beforeAll(() => {
    const def = loader.loadSync(join(APPS_DIR, "echo.proto"), {
      keepCase: true,
      longs: Number,
      defaults: true,
    });
    // biome-ignore lint/suspicious/noExplicitAny: the package object is untyped
    const pkg = grpc.loadPackageDefinition(def) as any;
    client = new pkg.weft.e2e.Echo(`127.0.0.1:${local.rpc}`, grpc.credentials.createInsecure());
  });

  afterAll(() => client?.close());

  const unary = (method: "Unary" | "Fail"): Promise<{ code: number; replica?: string }> =>
    new Promise((resolve) =>
      client[method](
        { message: "m" },
        new grpc.Metadata(),
        { deadline: Date.now() + 10_000 },
        (err: grpc.ServiceError | null, r: { replica: string } | undefined) =>
          resolve(err ? { code: err.code } : { code: grpc.status.OK, replica: r?.replica }),
      ),
    );

  it("an abort with grpcStatus 14 reaches the client as UNAVAILABLE; other methods reach the app", async () => {
    await applyRoutes(cp.addr, web.adminPort, "rpc", [
      {
        name: "unary-unavailable",
        match: { pathExact: "/weft.e2e.Echo/Unary" },
        destination: { fault: { abort: { percent: 100, grpcStatus: 14 } } },
      },
    ]);
    const N = 50;
    const { result: aborted, flagged: fi } = await countingFlags("FI", "rpc", N, () =>
      concurrently(N, () => unary("Unary")),
    );
    const failing = await concurrently(N, () => unary("Fail"));
    const counts = {
      Unary: tally(aborted, (x) => String(x.code)),
      Fail: tally(failing, (x) => String(x.code)),
    };
    console.log(`gRPC abort 14 on Unary: ${JSON.stringify(counts)}, FI counted ${fi}`);
    expect(counts).toEqual({
      Unary: { [grpc.status.UNAVAILABLE]: N },
      // Fail is not routed: the app's own NOT_FOUND comes back.
      Fail: { [grpc.status.NOT_FOUND]: N },
    });
    expect(fi).toBe(N);
  }, 60_000);
});

describe("mirroring", () => {
  const mirrorTo = (name: string, percent: number) => [
    {
      name,
      match: { pathPrefix: "/inspect" },
      destination: { mirror: { service: "shadow", percent } },
    },
  ];

  it("mirror 100%: api answers all 100, shadow eventually sees all 100 with a -shadow authority", async () => {
    await setRoutes(mirrorTo("mirror-all", 100));
    const before = await mirrored();
    const N = 100;
    const r = await concurrently(N, (i) => call(`/inspect/m/${i}?k=v`, { headers: { host: "api" } }));
    const answered = tally(r, (x) => `${x.status} ${x.body?.service}`);
    const shadowLog = await waitFor(
      async () => {
        const l = await appLog(shadow);
        return l.seen >= N ? l : undefined;
      },
      10_000,
      { what: `${N} copies at shadow`, intervalMs: 50 },
    );
    // The sidecar counts a copy once its response is over: a hair after the shadow app saw it.
    const after = await waitFor(
      async () => {
        const m = await mirrored();
        return m.sent + m.failed + m.skipped - (before.sent + before.failed + before.skipped) >= N
          ? m
          : undefined;
      },
      10_000,
      { what: `${N} copies counted` },
    );
    const apiSeen = (await appLog(api)).seen;
    const hosts = tally(shadowLog.recent, (x) => x.host);
    console.log(
      `mirror 100%: client ${JSON.stringify(answered)}, api saw ${apiSeen}, shadow saw ${shadowLog.seen} ` +
        `(hosts ${JSON.stringify(hosts)}), metric sent +${after.sent - before.sent}`,
    );
    expect(answered).toEqual({ "200 api": N });
    expect(apiSeen).toBe(N);
    expect(shadowLog.seen).toBe(N);
    expect(shadowLog.shadow).toBe(N);
    expect(hosts).toEqual({ "api-shadow": N });
    const urls = new Set(shadowLog.recent.map((x) => x.url));
    expect(urls).toEqual(new Set(Array.from({ length: N }, (_, i) => `/inspect/m/${i}?k=v`)));
    expect(after.sent - before.sent).toBe(N);
  }, 60_000);

  it("mirror 50%: shadow sees 100 ± 30 of 200", async () => {
    await setRoutes(mirrorTo("mirror-half", 50));
    const before = await mirrored();
    const N = 200;
    const r = await concurrently(N, () => call("/inspect/half", { headers: { host: "api" } }));
    // Copies are fire and forget (a GET's copy leaves before the real request
    // does): wait until the counts agree and stay put for half a second.
    let last = "";
    let stableSince = 0;
    const settled = await waitFor(
      async () => {
        const m = await mirrored();
        const seen = (await appLog(shadow)).seen;
        const now = JSON.stringify([m, seen]);
        if (now !== last) [last, stableSince] = [now, Date.now()];
        return seen === m.sent - before.sent && Date.now() - stableSince >= 500 ? { m, seen } : undefined;
      },
      10_000,
      { what: "the mirror counts settled", intervalMs: 100 },
    );
    const after = settled.m;
    const shadowSeen = settled.seen;
    const sent = after.sent - before.sent;
    console.log(
      `mirror 50% over ${N}: client ${JSON.stringify(tally(r, (x) => String(x.status)))}, shadow saw ${shadowSeen}, ` +
        `metric sent +${sent}, failed +${after.failed - before.failed}, skipped +${after.skipped - before.skipped}`,
    );
    expect(tally(r, (x) => String(x.status))).toEqual({ "200": N });
    expect((await appLog(api)).seen).toBe(N);
    expect(shadowSeen).toBeGreaterThanOrEqual(70);
    expect(shadowSeen).toBeLessThanOrEqual(130);
    expect(sent).toBe(shadowSeen);
    expect(after.failed - before.failed + after.skipped - before.skipped).toBe(0);
  }, 60_000);

  it("a mirrored POST carries the same body to shadow", async () => {
    await setRoutes(mirrorTo("mirror-post", 100));
    const N = 30;
    const bodies = Array.from(
      { length: N },
      (_, i) => `{"order":${i},"note":"mirrored ✓ ${"x".repeat(i * 37)}"}`,
    );
    const r = await concurrently(N, (i) =>
      call(`/inspect/orders/${i}`, { method: "POST", body: bodies[i], headers: { host: "api" } }),
    );
    const shadowLog = await waitFor(
      async () => {
        const l = await appLog(shadow);
        return l.seen >= N ? l : undefined;
      },
      10_000,
      { what: `${N} POST copies at shadow` },
    );
    const got = new Map(shadowLog.recent.map((x) => [x.url, `${x.method} ${x.body}`]));
    console.log(
      `mirrored POSTs: client ${JSON.stringify(tally(r, (x) => String(x.status)))}, shadow got ${got.size} distinct`,
    );
    expect(r.every((x, i) => x.status === 200 && x.body.body === bodies[i])).toBe(true);
    expect(shadowLog.seen).toBe(N);
    for (let i = 0; i < N; i++) expect(got.get(`/inspect/orders/${i}`)).toBe(`POST ${bodies[i]}`);
  }, 60_000);

  it("a POST body bigger than the replay buffer (64 KiB) is not mirrored: the copy is skipped", async () => {
    await setRoutes(mirrorTo("mirror-big", 100));
    const before = await mirrored();
    const big = "y".repeat(200 * 1024);
    const N = 8;
    const r = await concurrently(N, (i) =>
      call(`/inspect/big/${i}`, { method: "POST", body: big, headers: { host: "api" } }),
    );
    const after = await waitFor(
      async () => {
        const m = await mirrored();
        return m.skipped - before.skipped >= N ? m : undefined;
      },
      10_000,
      { what: `${N} skipped copies` },
    );
    const shadowSeen = (await appLog(shadow)).seen;
    console.log(
      `mirror of ${N} 200 KiB POSTs: client ${JSON.stringify(tally(r, (x) => `${x.status} ${x.body?.body?.length}`))}, ` +
        `skipped +${after.skipped - before.skipped}, sent +${after.sent - before.sent}, shadow saw ${shadowSeen}`,
    );
    expect(tally(r, (x) => `${x.status} ${x.body?.body?.length}`)).toEqual({ [`200 ${big.length}`]: N });
    expect(after.skipped - before.skipped).toBe(N);
    expect(after.sent - before.sent).toBe(0);
    expect(shadowSeen).toBe(0);
  }, 60_000);

  /** `n` requests to api, half POSTs with a body, all copied to shadow; the copies' results once all are counted. */
  async function underDeadMirror(n: number) {
    const before = await mirrored();
    const r = await concurrently(n, (i) =>
      call(`/inspect/live/${i}`, i % 2 ? { method: "POST", body: `b${i}` } : {}),
    );
    const after = await waitFor(
      async () => {
        const m = await mirrored();
        const counted = m.sent + m.failed + m.skipped - (before.sent + before.failed + before.skipped);
        return counted >= n ? m : undefined;
      },
      15_000,
      { what: `all ${n} mirror copies counted` },
    );
    return {
      answered: tally(r, (x) => `${x.status} ${x.body?.service}`),
      copies: {
        sent: after.sent - before.sent,
        failed: after.failed - before.failed,
        skipped: after.skipped - before.skipped,
      },
    };
  }

  it("a dead mirror does not touch the real responses, and its copies are counted as not sent", async () => {
    await setRoutes(mirrorTo("mirror-dead", 100));
    const N = 100;
    // The shadow app stops; its sidecar stays (and its health check soon fails).
    await shadow.kill9();
    const appDead = await underDeadMirror(N);
    console.log(
      `shadow app dead: client ${JSON.stringify(appDead.answered)}, copies ${JSON.stringify(appDead.copies)}`,
    );
    // The shadow's sidecar is gone too.
    await shadowSidecar.kill9();
    const allDead = await underDeadMirror(N);
    console.log(
      `shadow app and sidecar dead: client ${JSON.stringify(allDead.answered)}, copies ${JSON.stringify(allDead.copies)}`,
    );
    expect(appDead.answered).toEqual({ "200 api": N });
    expect(allDead.answered).toEqual({ "200 api": N });
    expect((await appLog(api)).seen).toBe(2 * N);
    expect(appDead.copies.sent).toBe(0);
    expect(appDead.copies.failed + appDead.copies.skipped).toBe(N);
    expect(allDead.copies.sent).toBe(0);
    expect(allDead.copies.failed + allDead.copies.skipped).toBe(N);
  }, 60_000);
});
