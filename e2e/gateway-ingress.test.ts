/**
 * The ingress gateway across real processes (issue #9): `weft server`, two
 * HTTP apps (`web`, `api`, e2e/apps/http-app.mjs) with their sidecars, and
 * `weft gateway --name edge -f gateway.json` in front. Certificates are made
 * with openssl, the JWKS and tokens with node:crypto, all in a temp dir.
 * Each test counts what the client got and what the apps saw (/_log).
 */
import { createHmac, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { renameSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import http2 from "node:http2";
import { connect } from "node:net";
import { join } from "node:path";
import tls from "node:tls";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type App,
  adminJson,
  appLog,
  applyResources,
  meshCleanup,
  resetAppLog,
  type SidecarProc,
  type Spawned,
  spawnUntil,
  startApp,
  startProxy,
  waitEndpoints,
  waitFor,
} from "./helpers/mesh.js";
import { openssl } from "./helpers/openssl.js";
import { runWeft, startWeftServer, tempDir, WEFT_BIN, type WeftServer } from "./helpers/weft.js";

let cp: WeftServer;
let gw: Spawned;
let httpPort: number;
let httpsPort: number;
let tcpWebPort: number;
let tcpApiPort: number;
let adminPort: number;
let dir: string;
const apps: Record<"web" | "api", App> = {} as Record<"web" | "api", App>;
const sidecars: SidecarProc[] = [];
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const rotated = generateKeyPairSync("ec", { namedCurve: "P-256" });
const stranger = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = (k: KeyObject, kid: string) => ({ ...k.export({ format: "jwk" }), kid, use: "sig" });

function selfSigned(name: string, cn: string): void {
  openssl(
    dir,
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.crt`,
    "-subj",
    `/CN=${cn}`,
    "-days",
    "1",
    "-addext",
    `subjectAltName=DNS:${cn}`,
  );
}

beforeAll(async () => {
  cp = await startWeftServer({ store: "memory", dev: true });
  dir = tempDir("weft-gw-");
  [httpPort, httpsPort, tcpWebPort, tcpApiPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  selfSigned("a", "a.example.test");
  selfSigned("b", "b.example.test");
  selfSigned("a2", "a2.example.test");
  writeFileSync(join(dir, "jwks.json"), JSON.stringify({ keys: [jwk(rsa.publicKey, "k1")] }));
  await applyResources(cp.addr, [
    { kind: "ServiceDefaults", name: "web", protocol: "http" },
    { kind: "ServiceDefaults", name: "api", protocol: "http" },
    { kind: "Intention", name: "web", sources: [{ name: "edge", action: "allow" }] },
    {
      kind: "Intention",
      name: "api",
      sources: [
        {
          name: "edge",
          permissions: [
            { action: "deny", http: { pathPrefix: "/admin" } },
            { action: "allow", http: { pathPrefix: "/" } },
          ],
        },
      ],
    },
  ]);
  for (const name of ["web", "api"] as const) {
    apps[name] = await startApp("http-app.mjs", { env: { NAME: name, REPLICA: "0" } });
    sidecars.push(
      await startProxy({
        service: name,
        appPort: apps[name].port,
        protocol: "http",
        health: { http: "/healthz" },
        server: cp.addr,
      }),
    );
  }
  const gateway = {
    kind: "Gateway",
    name: "edge",
    type: "ingress",
    jwtProviders: [
      {
        name: "idp",
        issuer: "https://idp.test",
        audiences: ["edge"],
        jwks: { file: "jwks.json" },
        algorithms: ["RS256", "ES256"],
        claimToHeaders: [{ claim: "sub", header: "x-user" }],
      },
    ],
    listeners: [
      {
        port: httpPort,
        address: "127.0.0.1",
        protocol: "http",
        routes: [
          {
            host: "web.test",
            pathPrefix: "/cors/",
            service: "web",
            rewrite: { prefix: "/" },
            cors: {
              allowOrigins: ["https://app.test"],
              allowMethods: ["GET", "PUT"],
              allowHeaders: ["x-token"],
            },
          },
          { host: "web.test", pathPrefix: "/", service: "web" },
          { host: "api.test", pathPrefix: "/api/", service: "api", rewrite: { prefix: "/" } },
          {
            host: "*",
            pathPrefix: "/jwt/",
            service: "api",
            rewrite: { prefix: "/" },
            jwt: { providers: ["idp"] },
          },
          {
            host: "*",
            pathPrefix: "/limited/",
            service: "web",
            rewrite: { prefix: "/" },
            rateLimit: { requestsPerSecond: 2, burst: 5 },
          },
        ],
      },
      {
        port: httpsPort,
        address: "127.0.0.1",
        protocol: "https",
        tls: {
          certFile: "a.crt",
          keyFile: "a.key",
          sni: [{ hosts: ["b.example.test"], certFile: "b.crt", keyFile: "b.key" }],
        },
        routes: [
          { host: "a.example.test", pathPrefix: "/", service: "web" },
          { host: "b.example.test", pathPrefix: "/", service: "api" },
        ],
      },
      { port: tcpWebPort, address: "127.0.0.1", protocol: "tcp", routes: [{ service: "web" }] },
      { port: tcpApiPort, address: "127.0.0.1", protocol: "tcp", routes: [{ service: "api" }] },
    ],
  };
  const file = join(dir, "gateway.json");
  writeFileSync(file, JSON.stringify(gateway));
  gw = await spawnUntil([WEFT_BIN, "gateway", "--name", "edge", "-f", file, "--server", cp.addr], {
    ready: /weft gateway ready name=edge type=ingress listeners=(\S+) admin=(\d+)/,
    what: "weft gateway --name edge",
    timeoutMs: 30_000,
  });
  adminPort = Number(gw.ready[2]);
  await waitEndpoints(adminPort, "web", 1);
  await waitEndpoints(adminPort, "api", 1);
}, 90_000);

afterAll(async () => {
  agent.destroy();
  await meshCleanup();
});

const agent = new Agent({ keepAlive: true, maxSockets: 4 });

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  // biome-ignore lint/suspicious/noExplicitAny: test code reads arbitrary JSON fields
  body: any;
}

function get(host: string, path: string, headers: Record<string, string> = {}, method = "GET"): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port: httpPort, path, method, agent, headers: { host, ...headers } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          text += c;
        });
        res.on("end", () => {
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {}
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

describe("ingress routing", () => {
  it("routes by host and path to mesh services over mTLS, as the gateway's own identity", async () => {
    await resetAppLog(apps.web);
    await resetAppLog(apps.api);
    const w = await get("web.test", "/inspect?x=1");
    expect(w.status).toBe(200);
    expect(w.body.service).toBe("web");
    expect(w.body.url).toBe("/inspect?x=1");
    // The destination sidecar verified the gateway's certificate: svc/edge.
    expect(w.body.headers["x-forwarded-client-cert"]).toMatch(/URI=spiffe:\/\/[^/]+\/ns\/[^/]+\/svc\/edge$/);
    const a = await get("api.test:8080", "/api/inspect");
    expect(a.status).toBe(200);
    expect(a.body.service).toBe("api");
    expect(a.body.url).toBe("/inspect");
    // The canonical form is forwarded: dot segments resolved before matching and sending.
    const dots = await get("api.test", "/api/x/../inspect");
    expect(dots.body.url).toBe("/inspect");
    // Intentions apply to the gateway: api's Intention denies edge on /admin.
    expect((await get("api.test", "/api/admin/x")).status).toBe(403);
    // No route for the host: 404 from the gateway, nothing forwarded.
    expect((await get("nowhere.test", "/inspect")).status).toBe(404);
    expect((await appLog(apps.web)).seen).toBe(1);
    expect((await appLog(apps.api)).seen).toBe(2);
  });

  it("a client-sent x-forwarded-for never becomes the client address; mesh-internal and hop-by-hop headers are stripped", async () => {
    const r = await get("web.test", "/inspect", {
      "x-forwarded-for": "6.6.6.6",
      forwarded: "for=6.6.6.6",
      "x-real-ip": "6.6.6.6",
      "x-weft-response-flags": "FAKE",
      "x-weft-source": "admin",
      "x-forwarded-client-cert": "URI=spiffe://evil/ns/default/svc/admin",
      "keep-alive": "timeout=5",
      connection: "keep-alive, x-drop-me",
      "x-drop-me": "1",
    });
    expect(r.status).toBe(200);
    const h = r.body.headers as Record<string, string>;
    expect(h["x-forwarded-for"]).toBe("127.0.0.1");
    for (const name of [
      "forwarded",
      "x-real-ip",
      "x-weft-response-flags",
      "x-weft-source",
      "keep-alive",
      "x-drop-me",
    ]) {
      expect(h[name], name).toBeUndefined();
    }
    expect(h["x-forwarded-client-cert"]).toMatch(/svc\/edge$/);
  });

  it("answers CORS preflights at the gateway and decorates allowed responses", async () => {
    await resetAppLog(apps.web);
    const pre = await get(
      "web.test",
      "/cors/inspect",
      {
        origin: "https://app.test",
        "access-control-request-method": "PUT",
        "access-control-request-headers": "x-token",
      },
      "OPTIONS",
    );
    expect(pre.status).toBe(204);
    expect(pre.headers["access-control-allow-origin"]).toBe("https://app.test");
    expect(pre.headers["access-control-allow-methods"]).toBe("GET, PUT");
    const denied = await get(
      "web.test",
      "/cors/inspect",
      { origin: "https://evil.test", "access-control-request-method": "PUT" },
      "OPTIONS",
    );
    expect(denied.status).toBe(403);
    const actual = await get("web.test", "/cors/inspect", { origin: "https://app.test" });
    expect(actual.status).toBe(200);
    expect(actual.headers["access-control-allow-origin"]).toBe("https://app.test");
    // Only the actual request reached the app.
    const log = await appLog(apps.web);
    expect(log.seen).toBe(1);
    expect(log.recent.map((r: { method: string }) => r.method)).toEqual(["GET"]);
  });
});

describe("JWT", () => {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const now = () => Math.floor(Date.now() / 1000);
  const claims = () => ({ iss: "https://idp.test", aud: "edge", sub: "alice", exp: now() + 300 });
  function token(alg: string, key: KeyObject, kid: string, payload: Record<string, unknown>): string {
    const input = `${b64({ alg, kid, typ: "JWT" })}.${b64(payload)}`;
    const opts = alg === "ES256" ? { key, dsaEncoding: "ieee-p1363" as const } : key;
    return `${input}.${sign("sha256", Buffer.from(input), opts).toString("base64url")}`;
  }

  it("picks up a rotated key from the JWKS file on the first token that names it", async () => {
    const t = token("ES256", rotated.privateKey, "k2", claims());
    writeFileSync(
      join(dir, "jwks.json.new"),
      JSON.stringify({ keys: [jwk(rsa.publicKey, "k1"), jwk(rotated.publicKey, "k2")] }),
    );
    renameSync(join(dir, "jwks.json.new"), join(dir, "jwks.json"));
    // The unknown kid makes the gateway re-read the file at once (at most once per 10 s).
    const r = await waitFor(
      async () => {
        const res = await get("any.test", "/jwt/inspect", { authorization: `Bearer ${t}` });
        return res.status === 200 ? res : undefined;
      },
      15_000,
      { intervalMs: 500, what: "a token signed by the rotated key accepted" },
    );
    expect(r.body.headers["x-user"]).toBe("alice");
  }, 20_000);

  it("accepts a valid token (claims to headers, token not forwarded) and refuses every bad one with 401", async () => {
    await resetAppLog(apps.api);
    const ok = await get("any.test", "/jwt/inspect", {
      authorization: `Bearer ${token("RS256", rsa.privateKey, "k1", claims())}`,
      "x-user": "mallory",
    });
    expect(ok.status).toBe(200);
    expect(ok.body.headers["x-user"]).toBe("alice");
    expect(ok.body.headers.authorization).toBeUndefined();

    const pem = rsa.publicKey.export({ format: "pem", type: "spki" });
    const hsInput = `${b64({ alg: "HS256", kid: "k1" })}.${b64(claims())}`;
    const bad: Record<string, string | undefined> = {
      missing: undefined,
      expired: token("RS256", rsa.privateKey, "k1", { ...claims(), exp: now() - 120 }),
      "wrong audience": token("RS256", rsa.privateKey, "k1", { ...claims(), aud: "other" }),
      "wrong issuer": token("RS256", rsa.privateKey, "k1", { ...claims(), iss: "https://evil.test" }),
      "alg none": `${b64({ alg: "none", kid: "k1" })}.${b64(claims())}.`,
      "HS256 with the public key": `${hsInput}.${createHmac("sha256", pem).update(hsInput).digest("base64url")}`,
      "unknown kid": token("RS256", stranger.privateKey, "k9", claims()),
      "forged signature": token("RS256", stranger.privateKey, "k1", claims()),
      garbage: "not-a-jwt",
      // Over the token limit (8 KiB) but within the header limit (16 KiB): a JWT refusal.
      huge: `${"a".repeat(10_000)}.b.c`,
    };
    const statuses: Record<string, number> = {};
    for (const [name, t] of Object.entries(bad)) {
      const r = await get(
        "any.test",
        "/jwt/inspect",
        t === undefined ? {} : { authorization: `Bearer ${t}` },
      );
      statuses[name] = r.status;
      expect(r.headers["www-authenticate"], name).toMatch(/^Bearer realm="weft"/);
    }
    expect(
      Object.values(statuses).every((s) => s === 401),
      JSON.stringify(statuses),
    ).toBe(true);
    // Beyond the header limit the HTTP layer answers first: 431, still not a 5xx.
    const giant = await get("any.test", "/jwt/inspect", {
      authorization: `Bearer ${"a".repeat(20_000)}.b.c`,
    });
    expect(giant.status).toBe(431);
    // Only the valid request reached the service.
    expect((await appLog(apps.api)).seen).toBe(1);
  });
});

describe("rate limits", () => {
  it("answers 429 with retry-after beyond the burst, and serves again after the refill", async () => {
    await resetAppLog(apps.web);
    const results: Res[] = [];
    for (let i = 0; i < 10; i++) results.push(await get("x.test", "/limited/inspect"));
    const ok = results.filter((r) => r.status === 200).length;
    const limited = results.filter((r) => r.status === 429);
    // Burst 5 at 2/s: 5 at once, at most one more refilled while the loop ran.
    expect(ok).toBeGreaterThanOrEqual(5);
    expect(ok).toBeLessThanOrEqual(6);
    expect(limited.length).toBe(10 - ok);
    for (const r of limited) expect(Number(r.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect((await appLog(apps.web)).seen).toBe(ok);
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await get("x.test", "/limited/inspect")).status).toBe(200);
  });
});

describe("https", () => {
  function httpsGet(
    servername: string,
    path: string,
  ): Promise<{ cn: string; status: number; body: { service: string } }> {
    return new Promise((resolve, reject) => {
      const s = tls.connect(
        { host: "127.0.0.1", port: httpsPort, servername, rejectUnauthorized: false },
        () => {
          const cn = String(s.getPeerCertificate().subject?.CN);
          s.write(`GET ${path} HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
          let raw = "";
          s.setEncoding("utf8");
          s.on("data", (c: string) => {
            raw += c;
          });
          s.on("end", () => {
            const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0);
            const text = raw.slice(raw.indexOf("\r\n\r\n") + 4);
            let body = { service: "" };
            try {
              body = JSON.parse(text);
            } catch {}
            resolve({ cn, status, body });
          });
        },
      );
      s.setTimeout(10_000, () => s.destroy(new Error("timeout")));
      s.on("error", reject);
    });
  }

  it("serves two hosts by SNI, each with its certificate, to the right service", async () => {
    const a = await httpsGet("a.example.test", "/inspect");
    expect(a).toMatchObject({ cn: "a.example.test", status: 200, body: { service: "web" } });
    const b = await httpsGet("b.example.test", "/inspect");
    expect(b).toMatchObject({ cn: "b.example.test", status: 200, body: { service: "api" } });
  });

  it("speaks HTTP/2 to clients that offer it (ALPN h2)", async () => {
    const session = http2.connect(`https://127.0.0.1:${httpsPort}`, {
      servername: "b.example.test",
      rejectUnauthorized: false,
    });
    session.on("error", () => {});
    try {
      const r = await new Promise<{ status: number; body: { service: string; url: string } }>(
        (resolve, reject) => {
          const req = session.request({ ":path": "/inspect?h2=1", ":authority": "b.example.test" });
          let text = "";
          req.setEncoding("utf8");
          req.on("response", (h) => {
            req.on("data", (c: string) => {
              text += c;
            });
            req.on("end", () => resolve({ status: Number(h[":status"]), body: JSON.parse(text) }));
          });
          req.on("error", reject);
          req.end();
        },
      );
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ service: "api", url: "/inspect?h2=1" });
    } finally {
      session.destroy();
    }
  });

  it("serves a certificate file replaced on disk on new connections, without a restart", async () => {
    const pid = gw.pid;
    renameSync(join(dir, "a2.key"), join(dir, "a.key.tmp"));
    renameSync(join(dir, "a2.crt"), join(dir, "a.crt.tmp"));
    renameSync(join(dir, "a.key.tmp"), join(dir, "a.key"));
    renameSync(join(dir, "a.crt.tmp"), join(dir, "a.crt"));
    const r = await waitFor(
      async () => {
        const res = await httpsGet("a.example.test", "/inspect");
        return res.cn === "a2.example.test" ? res : undefined;
      },
      10_000,
      { intervalMs: 200, what: "the replaced certificate served" },
    );
    expect(r.status).toBe(200);
    expect((await httpsGet("b.example.test", "/inspect")).cn).toBe("b.example.test");
    expect(gw.proc.exitCode).toBeNull();
    expect(gw.pid).toBe(pid);
  });
});

describe("tcp listeners", () => {
  function rawHttp(port: number): Promise<string> {
    return new Promise((resolve) => {
      const s = connect(port, "127.0.0.1", () =>
        s.write("GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
      );
      let raw = "";
      s.setEncoding("utf8");
      s.on("data", (c: string) => {
        raw += c;
      });
      s.on("close", () => resolve(raw));
      s.on("error", () => {});
      s.setTimeout(10_000, () => s.destroy());
    });
  }

  it("passes bytes to the route's service over mTLS, where the Intention decides at L4", async () => {
    expect(await rawHttp(tcpWebPort)).toMatch(/^HTTP\/1\.1 200[\s\S]*"service":"web"/);
    // api's Intention for edge has L7 permissions, which a TCP connection cannot satisfy: closed, nothing served.
    expect(await rawHttp(tcpApiPort)).toBe("");
  });
});

describe("visibility", () => {
  it("registers the gateway as a catalog instance with its identity, seen by weft services", async () => {
    const r = await runWeft(["services", "--json", "--addr", cp.addr]);
    expect(r.code).toBe(0);
    const services = JSON.parse(r.stdout) as { name: string }[];
    expect(services.map((s) => s.name)).toContain("edge");
    const cfg = await adminJson(adminPort, "/config");
    expect(cfg.spiffeId).toMatch(/\/svc\/edge$/);
    const metrics = await fetch(`http://127.0.0.1:${adminPort}/metrics`).then((x) => x.text());
    expect(metrics).toMatch(
      /weft_gateway_requests_total\{gateway="edge",listener="\d+",destination_service="web",response_class="2xx"/,
    );
  });

  it("pushes its golden stats: the control plane shows the edge edge -> web with its requests", async () => {
    for (let i = 0; i < 5; i++) expect((await get("web.test", "/inspect")).status).toBe(200);
    const edge = await waitFor(
      async () => {
        const r = await fetch(`http://${cp.addr}/v1/metrics/edges`);
        // biome-ignore lint/suspicious/noExplicitAny: test code reads arbitrary JSON fields
        const body = (await r.json()) as any;
        // biome-ignore lint/suspicious/noExplicitAny: test code reads arbitrary JSON fields
        const e = (body.edges as any[]).find((x) => x.source === "edge" && x.destination === "web");
        return e && e.requests >= 5 ? e : undefined;
      },
      15_000,
      { what: "the edge -> web edge in /v1/metrics/edges", intervalMs: 250 },
    );
    expect(edge.requests).toBeGreaterThanOrEqual(5);
  });
});
