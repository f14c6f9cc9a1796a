/**
 * The web UI against a real mesh, driven by Debian's chromium through
 * playwright-core: a control plane with ACL (not --dev) serving the built UI
 * at /ui/, three HTTP services (web, api, books) each with its sidecar, and
 * traffic through the sidecars so the golden metrics are not zero.
 *
 *   web  -> books   allowed (Intention books: web, api)
 *   api  -> books   allowed
 *   web  -> api     denied (no Intention api, mesh default deny) until the
 *                   test creates the Intention in the UI
 *
 * `web` also has a proxyless gRPC instance (`weft bootstrap grpc`, no
 * sidecar) whose xDS node is played by a raw grpc-js ADS stream on the
 * control plane's --xds-listen port: it stays connected and refuses (NACKs)
 * the Cluster update it gets, so the UI must show the "proxyless" badges and
 * the client's NACK message on web's page.
 *
 * Screenshots of the main pages are written to e2e/screenshots/*.png on
 * every run. Skipped, with the reason printed, when chromium or the UI
 * build (packages/web/dist) is missing.
 */
import { existsSync, mkdirSync } from "node:fs";
import { Agent } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";
import { freePort } from "@weft/testkit";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyResources,
  type ControlPlane,
  httpOn,
  meshCleanup,
  type SidecarProc,
  spawnUntil,
  startApp,
  startControlPlane,
  startProxy,
  waitEndpoints,
  waitFor,
} from "./helpers/mesh.js";
import { REPO, runWeft, tempDir, WEFT_BIN } from "./helpers/weft.js";

const CHROMIUM = "/usr/bin/chromium";
const UI_INDEX = join(REPO, "packages/web/dist/index.html");
const SHOTS = join(REPO, "e2e/screenshots");
const skipReason = !existsSync(CHROMIUM)
  ? `${CHROMIUM} is missing (Debian's chromium package)`
  : !existsSync(UI_INDEX)
    ? `${UI_INDEX} is missing: build the UI first (npm run build)`
    : undefined;
if (skipReason) console.log(`e2e/ui.test.ts skipped: ${skipReason}`);

let cp: ControlPlane;
let token: string;
const sidecars = new Map<string, SidecarProc>();
/** Loopback ports of the sidecars' outbound listeners. */
const local = { webToBooks: 0, webToApi: 0, apiToBooks: 0 };
let browser: Browser;
let page: Page;
const agent = new Agent({ keepAlive: true, maxSockets: 8 });
let traffic: Promise<void> | undefined;
/** Errors the pages printed (CSP violations, exceptions); 401s of the login probe are expected. */
const consoleErrors: string[] = [];
let stopTraffic = false;
/** The proxyless instance of `web` and its ADS stream (kept open: the node stays connected). */
const PROXYLESS_NODE = "web-proxyless-x";
const NACK_MESSAGE = "cluster books: unsupported lb_policy (UI e2e)";
let ads: { close(): void } | undefined;

/**
 * Registers a proxyless instance of `web` with the real `weft bootstrap grpc`, then plays its
 * xDS client with a raw ADS stream: subscribes to Clusters and refuses the first update.
 */
async function startProxylessNode(xdsPort: number): Promise<void> {
  const r = await runWeft([
    "bootstrap",
    "grpc",
    "--service",
    "web",
    "--id",
    PROXYLESS_NODE,
    "--port",
    "50051",
    "--upstream",
    "books",
    "--out",
    join(tempDir(), "web-xds.json"),
    "--xds-server",
    `127.0.0.1:${xdsPort}`,
    "--addr",
    cp.addr,
    "--token",
    token,
  ]);
  if (r.code !== 0) throw new Error(`weft bootstrap grpc failed (${r.code}): ${r.stderr}`);
  const deps = join(
    dirname(createRequire(import.meta.url).resolve("@grpc/grpc-js-xds/package.json")),
    "deps",
  );
  const def = loader.loadSync("envoy/service/discovery/v3/ads.proto", {
    keepCase: true,
    defaults: false,
    oneofs: true,
    includeDirs: ["envoy-api", "xds", "googleapis", "protoc-gen-validate"].map((d) => join(deps, d)),
  });
  // biome-ignore lint/suspicious/noExplicitAny: the generated client is untyped.
  const pkg = grpc.loadPackageDefinition(def) as any;
  const client: grpc.Client = new pkg.envoy.service.discovery.v3.AggregatedDiscoveryService(
    `127.0.0.1:${xdsPort}`,
    grpc.credentials.createInsecure(),
  );
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  // biome-ignore lint/suspicious/noExplicitAny: the generated client is untyped.
  const call: grpc.ClientDuplexStream<any, any> = (client as any).StreamAggregatedResources(md);
  call.on("error", () => {});
  const type_url = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
  const node = { id: PROXYLESS_NODE };
  const first = new Promise<{ nonce: string }>((resolve) => call.once("data", resolve));
  call.write({ node, type_url, resource_names: [] });
  const res = await first;
  call.write({ node, type_url, response_nonce: res.nonce, error_detail: { code: 3, message: NACK_MESSAGE } });
  ads = {
    close: () => {
      call.cancel();
      client.close();
    },
  };
}

async function startService(name: string, upstreams: Record<string, number>): Promise<SidecarProc> {
  const app = await startApp("http-app.mjs", { env: { NAME: name, REPLICA: `${name}-1` } });
  const sidecar = await startProxy({
    service: name,
    appPort: app.port,
    protocol: "http",
    health: { http: "/healthz" },
    upstreams,
    server: cp.addr,
    token,
  });
  sidecars.set(name, sidecar);
  return sidecar;
}

/** Keeps a steady trickle through the allowed edges (and web -> api, whatever it answers). */
function startTraffic(): Promise<void> {
  const loop = async (port: number, path: string) => {
    while (!stopTraffic) {
      await httpOn(agent, port, path, { timeoutMs: 5_000 }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 40));
    }
  };
  return Promise.all([
    loop(local.webToBooks, "/whoami"),
    loop(local.apiToBooks, "/whoami"),
    loop(local.webToApi, "/whoami"),
  ]).then(() => undefined);
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}

beforeAll(async () => {
  if (skipReason) return;
  mkdirSync(SHOTS, { recursive: true });
  // As startControlPlane, plus the xDS listener for the proxyless node.
  const s = await spawnUntil(
    [WEFT_BIN, "server", "--listen", "127.0.0.1:0", "--store", "memory", "--xds-listen", "127.0.0.1:0"],
    {
      ready:
        /weft server listening on (\S+)\nweft xds listening on port (\d+)\nbootstrap management token: (\S+)/,
      what: "weft server --xds-listen",
    },
  );
  const url = (s.ready[1] as string).replace(/\/+$/, "");
  const u = new URL(url);
  cp = { ...s, url, addr: u.host, port: Number(u.port), token: s.ready[3], dataDir: "" };
  if (!cp.token) throw new Error("the control plane printed no bootstrap token");
  token = cp.token;
  await applyResources(
    cp.addr,
    [
      {
        kind: "Intention",
        name: "books",
        sources: [
          { name: "web", action: "allow" },
          { name: "api", action: "allow" },
        ],
      },
      { kind: "Resolver", name: "books", connectTimeout: "2s" },
    ],
    token,
  );
  local.webToBooks = await freePort();
  local.webToApi = await freePort();
  local.apiToBooks = await freePort();
  await startService("books", {});
  const [web, api] = await Promise.all([
    startService("web", { books: local.webToBooks, api: local.webToApi }),
    startService("api", { books: local.apiToBooks }),
  ]);
  await waitEndpoints(web.adminPort, "books", 1);
  await waitEndpoints(web.adminPort, "api", 1);
  await waitEndpoints(api.adminPort, "books", 1);
  await startProxylessNode(Number(s.ready[2]));
  traffic = startTraffic();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1366, height: 860 } });
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(e.message));
  // Cumulative layout shift of each page load ("no layout jumps"), as the Web Vitals define it.
  await page.addInitScript(() => {
    const w = window as unknown as { __weftCls: number };
    w.__weftCls = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries() as (PerformanceEntry & {
        value: number;
        hadRecentInput: boolean;
      })[]) {
        if (!e.hadRecentInput) w.__weftCls += e.value;
      }
    }).observe({ type: "layout-shift", buffered: true });
  });
}, 90_000);

afterAll(async () => {
  ads?.close();
  stopTraffic = true;
  await traffic;
  agent.destroy();
  await browser?.close();
  await meshCleanup();
}, 30_000);

describe.skipIf(skipReason !== undefined)("web UI on a real mesh", () => {
  it("serves the login page publicly and paints it fast; the API behind it still needs the token", async () => {
    expect(cp.stdout()).toContain(`web UI at ${cp.url}/ui/`);
    const r = await fetch(`${cp.url}/ui/`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/html/);
    expect((await fetch(`${cp.url}/v1/catalog/services`)).status).toBe(401);

    await page.goto(`${cp.url}/`);
    await page.waitForSelector("input#token");
    expect(new URL(page.url()).pathname).toBe("/ui/login");
    const paint = await page.evaluate(() => {
      const fcp = performance.getEntriesByName("first-contentful-paint")[0];
      const nav = performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming | undefined;
      return { fcp: fcp?.startTime ?? null, domContentLoaded: nav?.domContentLoadedEventEnd ?? null };
    });
    console.log(
      `UI first contentful paint: ${paint.fcp?.toFixed(0)} ms (DOMContentLoaded ${paint.domContentLoaded?.toFixed(0)} ms)`,
    );
    expect(paint.fcp).not.toBeNull();
    await shot("login");

    await page.fill("input#token", "not-a-real-token");
    await page.click("form[data-testid=login-form] button[type=submit]");
    await page.waitForSelector("#token-error:text('not accepted')");
  });

  it("logs in with the token and shows the services healthy, with traffic", async () => {
    await page.fill("input#token", token);
    await page.click("form[data-testid=login-form] button[type=submit]");
    await page.waitForSelector("table[data-testid=services-table]");
    for (const name of ["web", "api", "books"]) {
      await page.waitForSelector(`tr[data-service="${name}"][data-health="passing"]`, { timeout: 20_000 });
    }
    // The sidecars push every 2 s and the page polls every 2 s.
    await page.waitForFunction(
      () =>
        Number(
          document.querySelector('tr[data-service="books"] td[data-col="rps"]')?.getAttribute("data-value"),
        ) > 0,
      undefined,
      { timeout: 20_000 },
    );
    // A fresh load of the services page: placeholders hold the table's size until data comes.
    await page.reload();
    await page.waitForSelector('tr[data-service="books"][data-health="passing"]');
    await page.waitForTimeout(2_500); // one more poll: rows refreshed in place
    const cls = await page.evaluate(() => (window as unknown as { __weftCls: number }).__weftCls);
    console.log(`services page cumulative layout shift: ${cls.toFixed(4)}`);
    expect(cls).toBeLessThan(0.1);
    const instances = await page.textContent('tr[data-service="books"] td[data-col="instances"]');
    expect(instances?.trim()).toBe("1");
    // web has a proxyless instance: its row says so; books has none.
    await page.waitForSelector('tr[data-service="web"][data-proxyless="true"] [data-testid=proxyless-badge]');
    expect(await page.locator('tr[data-service="books"] [data-testid=proxyless-badge]').count()).toBe(0);
    await shot("services");
  }, 60_000);

  it("opens a service page with non-zero rps, its instances, callers and config", async () => {
    await page.click('tr[data-service="books"] a');
    await page.waitForSelector('[data-service-page="books"]');
    expect(new URL(page.url()).pathname).toBe("/ui/services/books");
    const rpsValue = page.locator('[data-chart="Requests per second"] .value');
    await page.waitForFunction(
      () => {
        const t = document.querySelector('[data-chart="Requests per second"] .value')?.textContent ?? "";
        return Number(t) > 0;
      },
      undefined,
      { timeout: 20_000 },
    );
    expect(Number(await rpsValue.textContent())).toBeGreaterThan(0);
    await page.waitForSelector('tr[data-instance][data-health="passing"]');
    // Callers: web and api (their sidecars' outbound view).
    await page.waitForSelector('[data-testid=downstreams] li[data-peer="web"]', { timeout: 20_000 });
    await page.waitForSelector('[data-testid=downstreams] li[data-peer="api"]', { timeout: 20_000 });
    await page.waitForSelector('details[data-kind="Resolver"] pre');
    // Let the charts gather a few points for the screenshot.
    await page.waitForFunction(
      () =>
        (
          document.querySelector('[data-chart="Requests per second"] path.line')?.getAttribute("d") ?? ""
        ).split("L").length > 6,
      undefined,
      { timeout: 20_000 },
    );
    await shot("service");
  }, 60_000);

  it("marks web's proxyless instance and shows its xDS node, connected, with the NACK's message", async () => {
    await page.goto(`${cp.url}/ui/services/web`);
    await page.waitForSelector('[data-service-page="web"]');
    await page.waitForSelector("[data-testid=service-proxyless]:visible");
    await page.waitForSelector(`tr[data-instance="${PROXYLESS_NODE}"] [data-testid=proxyless-badge]`);
    // The sidecar instance is not marked.
    expect(await page.locator("tr[data-instance] [data-testid=proxyless-badge]").count()).toBe(1);
    const node = page.locator(`[data-testid=xds] li[data-node="${PROXYLESS_NODE}"]`);
    await node.waitFor();
    expect(await node.getAttribute("data-connected")).toBe("true");
    const nack = node.locator('[data-testid=xds-nacks] li[data-type="Cluster"]');
    await nack.waitFor();
    const text = (await nack.textContent()) ?? "";
    console.log(`NACK shown: ${text}`);
    expect(text).toContain(`node ${PROXYLESS_NODE} refused Cluster version`);
    expect(text).toContain(NACK_MESSAGE);
    await page.locator(".xds-section").scrollIntoViewIfNeeded();
    await shot("service-proxyless");
    // books has no proxyless instance: no badge, no xDS section.
    await page.goto(`${cp.url}/ui/services/books`);
    await page.waitForSelector('tr[data-instance][data-health="passing"]');
    expect(await page.locator("[data-testid=service-proxyless]").isVisible()).toBe(false);
    expect(await page.locator(".xds-section").isVisible()).toBe(false);
  }, 60_000);

  it("creates an intention that unblocks a denied call, and shows a validation error inline", async () => {
    const denied = await httpOn(agent, local.webToApi, "/whoami");
    expect(denied.status).toBe(403);

    await page.click("header nav a:text('Intentions')");
    await page.waitForSelector('tr[data-destination="books"][data-source="web"]');
    // Invalid first: a source name the API refuses.
    await page.fill("#intention-destination", "api");
    await page.fill(".source-row[data-index='0'] input.source-name", "Web Frontend");
    await page.click("form[data-testid=intention-form] button[type=submit]");
    const error = page.locator("[data-testid=intention-error]");
    await error.waitFor({ state: "visible" });
    const message = (await error.textContent()) ?? "";
    console.log(`inline validation error: ${message}`);
    expect(message).toMatch(/service name/);
    expect(await page.locator('tr[data-destination="api"]').count()).toBe(0);

    await page.fill(".source-row[data-index='0'] input.source-name", "web");
    await page.selectOption(".source-row[data-index='0'] select.source-action", "allow");
    await page.click("form[data-testid=intention-form] button[type=submit]");
    await page.waitForSelector("[data-testid=intention-ok]:text('created')");
    await page.waitForSelector('tr[data-destination="api"][data-source="web"][data-action="allow"]');
    expect(await page.locator("[data-testid=intention-error]").isVisible()).toBe(false);

    const allowed = await waitFor(
      async () => {
        const r = await httpOn(agent, local.webToApi, "/whoami");
        return r.status === 200 ? r : undefined;
      },
      15_000,
      { what: "web -> api answered 200 after the intention", intervalMs: 100 },
    );
    expect(allowed.body?.service).toBe("api");

    // Explain agrees: web -> api allowed by the new rule; books -> api falls to the default deny.
    await page.fill("#explain-from", "web");
    await page.fill("#explain-to", "api");
    await page.fill("#explain-path", "/whoami");
    await page.click("form[data-testid=explain-form] button[type=submit]");
    await page.waitForSelector("[data-testid=explain-decision]:text('ALLOW')");
    expect(await page.textContent("[data-testid=explain-rule]")).toContain('source "web"');
    await page.fill("#explain-from", "books");
    await page.click("form[data-testid=explain-form] button[type=submit]");
    await page.waitForSelector("[data-testid=explain-decision]:text('DENY')");
    expect(await page.textContent("[data-testid=explain-rule]")).toContain("default policy");

    // The inline error, shown once more for the screenshot.
    await page.click("button:text('Clear')");
    await page.fill("#intention-destination", "books");
    await page.fill(".source-row[data-index='0'] input.source-name", "*");
    await page.click("button:text('Add source')");
    await page.fill(".source-row[data-index='1'] input.source-name", "*");
    await page.click("form[data-testid=intention-form] button[type=submit]");
    await page.waitForSelector("[data-testid=intention-error]:text('already listed')");
    await shot("intentions");
  }, 60_000);

  it("draws the topology with the expected edges, live, and a node opens its service", async () => {
    await page.click("header nav a:text('Topology')");
    await page.waitForSelector("svg[data-testid=topology]");
    const expected = [
      ["web", "books"],
      ["api", "books"],
      ["web", "api"],
    ];
    for (const [source, destination] of expected) {
      await page.waitForSelector(`g.edge[data-source="${source}"][data-destination="${destination}"]`, {
        timeout: 20_000,
      });
    }
    // web -> api had 403s before the intention; with only 200s since, it turns healthy within the window.
    const edges = await page.$$eval("g.edge", (els) =>
      els.map((e) => ({
        source: e.getAttribute("data-source"),
        destination: e.getAttribute("data-destination"),
        rps: Number(e.getAttribute("data-rps")),
      })),
    );
    console.log(`topology edges: ${JSON.stringify(edges)}`);
    expect(edges.map((e) => `${e.source}>${e.destination}`).sort()).toEqual([
      "api>books",
      "web>api",
      "web>books",
    ]);
    for (const e of edges) expect(e.rps).toBeGreaterThan(0);
    expect(await page.locator("a.node[data-service]").count()).toBe(3);
    // web has a proxyless instance: its node has the dashed ring and says so.
    expect(await page.getAttribute('a.node[data-service="web"]', "data-proxyless")).toBe("true");
    expect(await page.getAttribute('a.node[data-service="books"]', "data-proxyless")).toBe("false");
    expect(await page.getAttribute('a.node[data-service="web"]', "aria-label")).toContain("proxyless");
    // Live: the next polls update the same elements in place (no reload, no redraw).
    const tick0 = Number(await page.getAttribute("svg[data-testid=topology]", "data-tick"));
    await page.evaluate(() => {
      (window as unknown as { __weftEdge?: Element | null }).__weftEdge = document.querySelector("g.edge");
    });
    await page.waitForFunction(
      (t0) =>
        Number(document.querySelector("svg[data-testid=topology]")?.getAttribute("data-tick")) >= t0 + 2,
      tick0,
      { timeout: 10_000 },
    );
    expect(
      await page.evaluate(
        () => (window as unknown as { __weftEdge?: Element | null }).__weftEdge?.isConnected,
      ),
    ).toBe(true);
    expect(new URL(page.url()).pathname).toBe("/ui/topology");
    await page.click('g.edge[data-source="web"][data-destination="books"] text.edge-label');
    await page.waitForSelector("[data-testid=edge-details] dl");
    // Keyboard: an edge is focusable and Enter selects it.
    await page.focus('g.edge[data-source="api"][data-destination="books"]');
    await page.keyboard.press("Enter");
    await page.waitForSelector("[data-testid=edge-details] h2:has-text('api → books')");
    await page.click('g.edge[data-source="web"][data-destination="books"] text.edge-label');
    await page.waitForSelector('g.edge.selected[data-source="web"][data-destination="books"]');
    await shot("topology");

    await page.click('a.node[data-service="api"]');
    await page.waitForSelector('[data-service-page="api"]');
  }, 60_000);

  it("lists config by kind with YAML and the CA's roots with expiry", async () => {
    await page.click("header nav a:text('Config')");
    await page.waitForSelector('article.resource[data-kind="Intention"][data-name="api"] pre');
    expect(await page.textContent('article.resource[data-name="api"] pre')).toContain("name: api");
    await shot("config");
    await page.click("header nav a:text('CA')");
    await page.waitForSelector("table[data-testid=roots-table] tr[data-root][data-state=active]");
    expect(await page.textContent("table[data-testid=roots-table] tbody")).toMatch(/\(in \d+/);
    await shot("ca");
  });

  it("printed no errors: no CSP violation, no exception", () => {
    // HTTP error answers the app handles (404 of config a service lacks, 400 of the invalid
    // intention, 401 of the bad token) are logged by chromium as "Failed to load resource".
    const unexpected = consoleErrors.filter((t) => !t.startsWith("Failed to load resource"));
    expect(unexpected, unexpected.join("\n")).toEqual([]);
  });

  it("a rejected token sends the user back to the login page", async () => {
    await page.evaluate(() => sessionStorage.setItem("weft.token", "revoked-or-wrong"));
    await page.goto(`${cp.url}/ui/topology`);
    await page.waitForSelector("input#token");
    expect(new URL(page.url()).pathname).toBe("/ui/login");
  });
});

describe.skipIf(skipReason !== undefined)("web UI on a --dev control plane", () => {
  it("skips the login when anonymous calls are accepted", async () => {
    const dev = await startControlPlane({ store: "memory", dev: true, expectToken: false });
    const p = await browser.newPage({ viewport: { width: 1366, height: 860 } });
    try {
      await p.goto(`${dev.url}/ui/`);
      await p.waitForSelector("table[data-testid=services-table]");
      expect(new URL(p.url()).pathname).toBe("/ui/services");
      expect(await p.textContent("[data-testid=auth-mode]")).toContain("dev mode");
      expect(await p.locator("input#token").count()).toBe(0);
    } finally {
      await p.close();
      await dev.stop();
    }
  });
});
