/**
 * The sidecar end to end with real processes: a control plane (`weft server
 * --store memory --dev`), test apps and `weft proxy` processes. This process
 * plays the `web` app: it calls its upstreams on the loopback ports the `web`
 * sidecar opens. Covered: intentions enforced at the destination's inbound
 * listener (HTTP 403 naming the missing intention, TCP connection closed),
 * an intention applied with `weft apply` taking effect (time printed), L7
 * permissions, refusal of a client without a mesh certificate (openssl,
 * node:tls, curl), and the admin endpoints.
 */
import { execFile } from "node:child_process";
import net from "node:net";
import tls from "node:tls";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import {
  adminJson,
  applyResources,
  meshCleanup,
  metricSum,
  type SidecarProc,
  startApp,
  startProxy,
  waitEndpoints,
  waitFor,
} from "./helpers/mesh.js";
import { startWeftServer, tempDir, type WeftServer } from "./helpers/weft.js";

let cp: WeftServer;
let api: SidecarProc;
let echo: SidecarProc;
let web: SidecarProc;
let apiLocal: number;
let echoLocal: number;

beforeAll(async () => {
  cp = await startWeftServer({ store: "memory", dev: true });
  apiLocal = await freePort();
  echoLocal = await freePort();
  const [apiApp, echoApp, webApp] = await Promise.all([
    startApp("http-app.mjs", { env: { NAME: "api", REPLICA: "a" } }),
    startApp("tcp-echo.mjs"),
    startApp("http-app.mjs", { env: { NAME: "web", REPLICA: "w" } }),
  ]);
  [api, echo, web] = await Promise.all([
    startProxy({
      service: "api",
      appPort: apiApp.port,
      protocol: "http",
      health: { http: "/healthz" },
      server: cp.addr,
    }),
    startProxy({ service: "echo", appPort: echoApp.port, protocol: "tcp", server: cp.addr }),
    startProxy({
      service: "web",
      appPort: webApp.port,
      protocol: "http",
      health: { http: "/healthz" },
      upstreams: { api: apiLocal, echo: echoLocal },
      server: cp.addr,
    }),
  ]);
  await Promise.all([waitEndpoints(web.adminPort, "api", 1), waitEndpoints(web.adminPort, "echo", 1)]);
}, 60_000);

afterAll(meshCleanup);

const viaWeb = (path: string, method = "GET") =>
  http(`http://127.0.0.1:${apiLocal}`, path, { method, timeoutMs: 5_000 });

/** Connects, writes `payload`, half-closes, and collects what comes back until the connection ends. */
function tcpExchange(port: number, payload: string): Promise<{ data: string; end: string }> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    let data = "";
    let settled = false;
    const done = (end: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ data, end });
    };
    const timer = setTimeout(() => done("timeout"), 5_000);
    s.setEncoding("utf8");
    s.on("connect", () => s.end(payload));
    s.on("data", (c: string) => {
      data += c;
    });
    s.on("end", () => done("EOF"));
    s.on("error", (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
    s.on("close", () => done("closed"));
  });
}

describe("intentions at the inbound listener", () => {
  it("HTTP: denied with a 403 naming the missing intention, allowed once `weft apply` adds it", async () => {
    const denied = await viaWeb("/whoami");
    console.log(`HTTP without an intention: ${denied.status} ${denied.text.trim()}`);
    expect(denied.status, denied.text).toBe(403);
    expect(denied.text).toContain('"web"');
    expect(denied.text).toContain('"api"');
    expect(denied.text).toMatch(/intention/);

    const started = Date.now();
    await applyResources(cp.addr, [
      { kind: "Intention", name: "api", sources: [{ name: "web", action: "allow" }] },
    ]);
    const applied = Date.now();
    const ok = await waitFor(
      async () => {
        const r = await viaWeb("/whoami");
        return r.status === 200 ? r : undefined;
      },
      10_000,
      { intervalMs: 20, what: "a 200 after the intention" },
    );
    const first = Date.now();
    console.log(
      `HTTP intention apply -> first success: ${first - applied} ms after \`weft apply\` returned ` +
        `(${first - started} ms including the CLI run)`,
    );
    expect(ok.body).toMatchObject({ service: "api", replica: "a" });
  }, 30_000);

  it("TCP: denied connections are closed with no data, allowed once the intention exists", async () => {
    const denied = await tcpExchange(echoLocal, "hello");
    console.log(`TCP without an intention: ${JSON.stringify(denied)}`);
    expect(denied.data).toBe("");
    expect(["EOF", "ECONNRESET", "closed"]).toContain(denied.end);

    const started = Date.now();
    await applyResources(cp.addr, [
      { kind: "Intention", name: "echo", sources: [{ name: "web", action: "allow" }] },
    ]);
    const applied = Date.now();
    const ok = await waitFor(
      async () => {
        const r = await tcpExchange(echoLocal, "ping");
        return r.data.length > 0 ? r : undefined;
      },
      10_000,
      { intervalMs: 20, what: "an echo after the intention" },
    );
    const first = Date.now();
    console.log(
      `TCP intention apply -> first success: ${first - applied} ms after \`weft apply\` returned ` +
        `(${first - started} ms including the CLI run)`,
    );
    // The echo, then the app's "bye" after our FIN (half-close through both sidecars).
    expect(ok).toEqual({ data: "pingbye", end: "EOF" });
  }, 30_000);

  it("L7 permissions: only GET /public is allowed", async () => {
    await applyResources(cp.addr, [
      {
        kind: "Intention",
        name: "api",
        sources: [
          {
            name: "web",
            permissions: [{ action: "allow", http: { pathExact: "/public", methods: ["GET"] } }],
          },
        ],
      },
    ]);
    // /admin/x was allowed by the previous intention: wait until the new one is in force.
    await waitFor(async () => (await viaWeb("/admin/x")).status === 403, 10_000, {
      intervalMs: 20,
      what: "GET /admin/x denied",
    });
    const get = await viaWeb("/public");
    const post = await viaWeb("/public", "POST");
    const admin = await viaWeb("/admin/x");
    console.log(
      `L7: GET /public ${get.status}, POST /public ${post.status} (${post.text.trim()}), GET /admin/x ${admin.status}`,
    );
    expect(get.status, get.text).toBe(200);
    expect(get.body).toMatchObject({ path: "/public", method: "GET" });
    expect(post.status).toBe(403);
    expect(post.text).toContain("POST");
    expect(admin.status).toBe(403);
    expect(admin.text).toContain("/admin/x");
  }, 30_000);
});

describe("a client without a mesh certificate", () => {
  it("is refused by openssl s_client: no HTTP response", async () => {
    const refusals = () => api.stderr().split("mTLS peer refused").length - 1;
    const before = refusals();
    const dir = tempDir("weft-sclient-");
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = execFile(
        "openssl",
        ["s_client", "-connect", `127.0.0.1:${api.inboundPort}`, "-alpn", "http/1.1", "-ign_eof"],
        { cwd: dir, timeout: 10_000 },
        (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, out: stdout + stderr }),
      );
      p.stdin?.end("GET /whoami HTTP/1.1\r\nhost: api\r\nconnection: close\r\n\r\n");
    });
    console.log(
      `openssl s_client without a client certificate: exit ${r.code}; ` +
        `${/HTTP\/1\.1 \d+/.test(r.out) ? "got an HTTP response" : "no HTTP response"}`,
    );
    expect(r.out).not.toMatch(/HTTP\/1\.1 \d{3}/);
    expect(r.out).not.toContain('"service"');
    // The sidecar logged the refusal at the TLS layer (no request was ever parsed).
    await waitFor(() => refusals() > before, 5_000, { what: "a refusal in the api sidecar's log" });
  }, 20_000);

  it("is refused by node:tls (rejectUnauthorized false, no certificate): closed before any response", async () => {
    const r = await new Promise<{ data: string; end: string; handshake: boolean }>((resolve) => {
      let data = "";
      let handshake = false;
      const s = tls.connect({
        host: "127.0.0.1",
        port: api.inboundPort,
        rejectUnauthorized: false,
        ALPNProtocols: ["http/1.1"],
      });
      const timer = setTimeout(() => done("timeout"), 10_000);
      let settled = false;
      function done(end: string) {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        s.destroy();
        resolve({ data, end, handshake });
      }
      s.on("secureConnect", () => {
        handshake = true;
        s.write("GET /whoami HTTP/1.1\r\nhost: api\r\n\r\n");
      });
      s.setEncoding("utf8");
      s.on("data", (c: string) => {
        data += c;
      });
      s.on("error", (e: NodeJS.ErrnoException) => done(`error ${e.code ?? e.message}`));
      s.on("end", () => done("EOF"));
      s.on("close", () => done("closed"));
    });
    console.log(`node:tls without a client certificate: ${r.end}, ${r.data.length} bytes received`);
    expect(r.data).toBe("");
    expect(r.end).not.toBe("timeout");
  }, 20_000);

  it("a connection closed before its TLS handshake is closed by the sidecar too (no socket left behind)", async () => {
    // What a TCP port check does: connect, FIN, no byte. The sidecar must close its side, at
    // once or at the latest when its 10 s handshake timeout fires, not keep the socket open.
    const started = Date.now();
    const end = await new Promise<string>((resolve) => {
      const s = net.connect({ host: "127.0.0.1", port: api.inboundPort, allowHalfOpen: true });
      const timer = setTimeout(() => {
        s.destroy();
        resolve("still open after 15 s");
      }, 15_000);
      s.once("connect", () => s.end());
      s.once("close", () => {
        clearTimeout(timer);
        resolve("closed");
      });
      s.on("error", () => {});
    });
    console.log(`connect-and-close without a TLS handshake: ${end} (${Date.now() - started} ms)`);
    expect(end).toBe("closed");
  }, 30_000);

  it("a client that connects and sends nothing is cut off by the handshake timeout", async () => {
    // A slowloris at the TLS layer: the sidecar's 10 s handshake timeout must close the socket.
    const started = Date.now();
    const end = await new Promise<string>((resolve) => {
      const s = net.connect({ host: "127.0.0.1", port: api.inboundPort });
      const timer = setTimeout(() => {
        s.destroy();
        resolve("still open after 16 s");
      }, 16_000);
      s.once("close", () => {
        clearTimeout(timer);
        resolve("closed");
      });
      s.on("error", () => {});
    });
    console.log(`silent client (no ClientHello): ${end} (${Date.now() - started} ms)`);
    expect(end).toBe("closed");
  }, 30_000);

  it("is refused by curl -k", async () => {
    const have = await new Promise<boolean>((resolve) =>
      execFile("curl", ["--version"], (err) => resolve(err === null)),
    );
    if (!have) {
      console.log("curl -k: skipped, no curl on PATH");
      return;
    }
    const r = await new Promise<{ code: number; out: string; err: string }>((resolve) =>
      execFile(
        "curl",
        [
          "-sk",
          "--max-time",
          "10",
          "-o",
          "-",
          "-w",
          "\nhttp_code=%{http_code}",
          `https://127.0.0.1:${api.inboundPort}/whoami`,
        ],
        (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, out: stdout, err: stderr }),
      ),
    );
    console.log(`curl -k without a client certificate: exit ${r.code}, ${r.out.trim().split("\n").at(-1)}`);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain("http_code=000");
    expect(r.out).not.toContain('"service"');
  }, 20_000);
});

describe("admin listener", () => {
  it("/ready, /config without secrets, /metrics with inbound and outbound request counts", async () => {
    for (const p of [api, web, echo]) {
      const ready = await http(`http://127.0.0.1:${p.adminPort}`, "/ready");
      expect(ready.status, ready.text).toBe(200);
      expect(ready.body).toEqual({ ready: true });
    }
    const cfgText = (await http(`http://127.0.0.1:${web.adminPort}`, "/config")).text;
    expect(cfgText).not.toContain("PRIVATE KEY");
    expect(cfgText).not.toMatch(/BEGIN [A-Z ]*KEY/);
    const cfg = JSON.parse(cfgText);
    expect(cfg.service).toBe("web");
    expect(cfg.instanceId).toBe(web.instanceId);
    expect(cfg.controlPlane.connected).toBe(true);
    expect(cfg.certificate.spiffeId).toMatch(/\/svc\/web$/);
    expect(cfg.snapshot.upstreams.map((u: { service: string }) => u.service).sort()).toEqual(["api", "echo"]);
    expect(cfg.snapshot.clusters.api.endpoints[0].port).toBe(api.inboundPort);

    // Some traffic, then the counters.
    for (let i = 0; i < 5; i++) await viaWeb("/public");
    const apiMetrics = (await http(`http://127.0.0.1:${api.adminPort}`, "/metrics")).text;
    const webMetrics = (await http(`http://127.0.0.1:${web.adminPort}`, "/metrics")).text;
    expect(apiMetrics).toContain("weft_proxy_requests_total");
    const inbound = metricSum(apiMetrics, "weft_proxy_requests_total", {
      direction: "inbound",
      source_service: "web",
    });
    const denied = metricSum(apiMetrics, "weft_proxy_requests_total", {
      direction: "inbound",
      response_code_class: "4xx",
    });
    const outbound = metricSum(webMetrics, "weft_proxy_requests_total", {
      direction: "outbound",
      destination_service: "api",
    });
    const configCp = (await adminJson(api.adminPort, "/config")).controlPlane;
    console.log(
      `metrics: api inbound requests ${inbound} (${denied} 4xx), web outbound requests to api ${outbound}; ` +
        `api control plane ${JSON.stringify(configCp)}`,
    );
    expect(inbound).toBeGreaterThanOrEqual(5);
    expect(denied).toBeGreaterThan(0);
    expect(outbound).toBeGreaterThanOrEqual(5);
  }, 30_000);
});
