import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { type GatewayInput, gatewaySchema } from "@weft/api";
import { applyHeaderOps } from "@weft/api/routing";
import type { HeaderOpsConfig } from "@weft/api/snapshot";
import {
  ClusterSet,
  type ForwardDecision,
  type Http2PeerPool,
  type ListenerRoutes,
  type RouteDecision,
} from "@weft/dataplane";
import { createTestRoot, issueTestLeaf, VirtualClock } from "@weft/testkit";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { behindClose, IngressListener } from "./ingress-listener.js";
import { buildProviders } from "./jwt/providers.js";
import type { GatewayConfig } from "./types.js";

const logger = { info: () => {}, warn: () => {} };
const dirs: string[] = [];
const open: IngressListener[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((l) => l.close()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "weft-gw-"));
  dirs.push(d);
  return d;
}

function parse(input: Omit<GatewayInput, "kind">): GatewayConfig {
  return gatewaySchema.parse({ kind: "Gateway", ...input });
}

/** A fake destination: every request forwards to a cluster that is never called (decisions are inspected). */
const FAKE_CLUSTER = {
  service: "web",
  protocol: "http",
  connectTimeoutMs: 1000,
  pick: () => undefined,
} as const;
const upstream: ListenerRoutes = {
  decide: () => ({ kind: "forward", cluster: { ...FAKE_CLUSTER } }),
  defaultCluster: () => undefined,
};

function listenerOf(g: GatewayConfig, clock = new VirtualClock(1_800_000_000_000), i = 0): IngressListener {
  const providers = buildProviders(g.jwtProviders, { clock });
  void providers.start();
  const l = new IngressListener({
    listener: g.listeners[i] as GatewayConfig["listeners"][number],
    trustedHops: g.trustedHops,
    providers: providers.byName,
    upstream: (s) => (s === "web" || s === "api" ? upstream : undefined),
    clusters: new ClusterSet(clock),
    pool: {} as Http2PeerPool,
    logger,
    clock,
    certPollMs: 50,
  });
  open.push(l);
  return l;
}

const ctx = { remoteAddress: "::ffff:10.1.2.3", servername: undefined };
function head(path: string, headers: Record<string, string> = {}, method = "GET", authority = "web.test") {
  return [
    { method, path, authority, headers: { ...headers } },
    { host: authority, ...headers },
  ] as const;
}

function forwarded(d: RouteDecision): { d: ForwardDecision; headers: Record<string, string> } {
  expect(d.kind).toBe("forward");
  const f = d as ForwardDecision;
  const out: Record<string, string> = {};
  for (const op of f.requestHeaders ?? []) applyHeaderOps(out, op as HeaderOpsConfig);
  return { d: f, headers: out };
}

describe("IngressListener decisions", () => {
  const g = parse({
    name: "edge",
    type: "ingress",
    listeners: [
      {
        port: 1,
        routes: [
          { host: "web.test", pathExact: "/exact", service: "web", rewrite: { prefix: "/rewritten" } },
          { host: "*.api.test", pathPrefix: "/v1/", service: "api", rewrite: { prefix: "/" } },
          {
            host: "web.test",
            pathPrefix: "/limited",
            service: "web",
            rateLimit: { requestsPerSecond: 1, burst: 2, perClient: true },
          },
          {
            host: "web.test",
            pathPrefix: "/cors",
            service: "web",
            cors: {
              allowOrigins: ["https://app.test"],
              allowMethods: ["GET", "PUT"],
              allowHeaders: ["x-token"],
              maxAge: "10m",
            },
          },
          { host: "web.test", pathPrefix: "/", service: "web", timeout: "3s" },
        ],
        limits: { maxRequestBodyBytes: 100 },
      },
    ],
  });

  it("routes by host and exact path or prefix, forwarding the canonical, rewritten path", () => {
    const l = listenerOf(g);
    expect(forwarded(l.decideFor(ctx, ...head("/exact?x=1"))).d.path).toBe("/rewritten?x=1");
    expect(forwarded(l.decideFor(ctx, ...head("/v1/users", {}, "GET", "eu.api.test:8443"))).d.path).toBe(
      "/users",
    );
    expect(forwarded(l.decideFor(ctx, ...head("/a/../b//c"))).d.path).toBe("/b/c");
    expect(l.decideFor(ctx, ...head("/v1/users", {}, "GET", "api.test"))).toMatchObject({
      kind: "reply",
      status: 404,
    });
    expect(l.decideFor(ctx, ...head("/", {}, "GET", "other.test"))).toMatchObject({
      kind: "reply",
      status: 404,
    });
    expect(forwarded(l.decideFor(ctx, ...head("/x"))).d.requestTimeoutMs).toBe(3000);
  });

  it("sets x-forwarded-for/-proto itself and drops the client's forwarding headers", () => {
    const l = listenerOf(g);
    const { headers } = forwarded(
      l.decideFor(
        ctx,
        ...head("/x", {
          "x-forwarded-for": "6.6.6.6",
          forwarded: "for=6.6.6.6",
          "x-real-ip": "6.6.6.6",
          "x-forwarded-proto": "https",
        }),
      ),
    );
    expect(headers["x-forwarded-for"]).toBe("10.1.2.3");
    expect(headers["x-forwarded-proto"]).toBe("http");
    expect(headers.forwarded).toBeUndefined();
    expect(headers["x-real-ip"]).toBeUndefined();
  });

  it("refuses a declared body over the limit with 413", () => {
    const l = listenerOf(g);
    expect(l.decideFor(ctx, ...head("/x", { "content-length": "101" }, "POST"))).toMatchObject({
      status: 413,
    });
    expect(l.decideFor(ctx, ...head("/x", { "content-length": "100" }, "POST")).kind).toBe("forward");
  });

  it("limits per client: burst, then 429 with retry-after, refilled with time; other clients unaffected", () => {
    const clock = new VirtualClock(1_800_000_000_000);
    const l = listenerOf(g, clock);
    const statuses = Array.from({ length: 4 }, () => {
      const d = l.decideFor(ctx, ...head("/limited"));
      return d.kind === "reply" ? d.status : 200;
    });
    expect(statuses).toEqual([200, 200, 429, 429]);
    const refused = l.decideFor(ctx, ...head("/limited"));
    expect(refused).toMatchObject({ kind: "reply", status: 429, headers: { "retry-after": "1" } });
    expect(l.decideFor({ ...ctx, remoteAddress: "10.9.9.9" }, ...head("/limited")).kind).toBe("forward");
    clock.advance(1000);
    expect(l.decideFor(ctx, ...head("/limited")).kind).toBe("forward");
  });

  it("answers CORS preflights and decorates allowed actual requests", () => {
    const l = listenerOf(g);
    const pre = l.decideFor(
      ctx,
      ...head(
        "/cors",
        {
          origin: "https://app.test",
          "access-control-request-method": "PUT",
          "access-control-request-headers": "X-Token",
        },
        "OPTIONS",
      ),
    );
    expect(pre).toMatchObject({
      kind: "reply",
      status: 204,
      headers: {
        "access-control-allow-origin": "https://app.test",
        "access-control-allow-methods": "GET, PUT",
        "access-control-allow-headers": "x-token",
        "access-control-max-age": "600",
      },
    });
    const bad = l.decideFor(
      ctx,
      ...head("/cors", { origin: "https://evil.test", "access-control-request-method": "PUT" }, "OPTIONS"),
    );
    expect(bad).toMatchObject({ kind: "reply", status: 403 });
    const actual = forwarded(l.decideFor(ctx, ...head("/cors", { origin: "https://app.test" }))).d;
    const res: Record<string, string> = {};
    for (const op of actual.responseHeaders ?? []) applyHeaderOps(res, op as HeaderOpsConfig);
    expect(res["access-control-allow-origin"]).toBe("https://app.test");
  });

  it("trusts the configured number of XFF hops", () => {
    const l = listenerOf({ ...g, trustedHops: 1 });
    const { headers } = forwarded(l.decideFor(ctx, ...head("/x", { "x-forwarded-for": "6.6.6.6, 1.2.3.4" })));
    expect(headers["x-forwarded-for"]).toBe("1.2.3.4, 10.1.2.3");
  });
});

describe("IngressListener.update", () => {
  it("swaps routes for new requests, and refuses a config naming an unknown provider, keeping the old one", () => {
    const a = parse({
      name: "edge",
      type: "ingress",
      listeners: [{ port: 1, routes: [{ host: "a.test", service: "web" }] }],
    });
    const b = parse({
      name: "edge",
      type: "ingress",
      listeners: [{ port: 1, routes: [{ host: "b.test", service: "web" }] }],
    });
    const l = listenerOf(a);
    expect(l.decideFor(ctx, ...head("/", {}, "GET", "a.test")).kind).toBe("forward");
    l.update(b.listeners[0] as GatewayConfig["listeners"][number], new Map(), 0);
    expect(l.decideFor(ctx, ...head("/", {}, "GET", "a.test"))).toMatchObject({ status: 404 });
    expect(l.decideFor(ctx, ...head("/", {}, "GET", "b.test")).kind).toBe("forward");
    const withJwt = {
      ...(a.listeners[0] as GatewayConfig["listeners"][number]),
      jwt: { providers: ["nope"], optional: false },
    };
    expect(() => l.update(withJwt, new Map(), 0)).toThrow(/no jwtProviders entry named "nope"/);
    expect(l.decideFor(ctx, ...head("/", {}, "GET", "b.test")).kind).toBe("forward");
  });
});

describe("IngressListener JWT", () => {
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const jwt = (key: KeyObject, payload: Record<string, unknown>) => {
    const input = `${b64({ alg: "RS256", kid: "k1" })}.${b64(payload)}`;
    return `${input}.${sign("sha256", Buffer.from(input), key).toString("base64url")}`;
  };

  it("401s bad tokens with www-authenticate, forwards claims and strips spoofed claim headers", () => {
    const dir = tmp();
    const jwks = join(dir, "jwks.json");
    writeFileSync(
      jwks,
      JSON.stringify({ keys: [{ ...rsa.publicKey.export({ format: "jwk" }), kid: "k1" }] }),
    );
    const g = parse({
      name: "edge",
      type: "ingress",
      jwtProviders: [
        {
          name: "idp",
          issuer: "https://idp",
          audiences: ["edge"],
          jwks: { file: jwks },
          algorithms: ["RS256"],
          claimToHeaders: [
            { claim: "sub", header: "x-user" },
            { claim: "tier", header: "x-tier" },
          ],
        },
      ],
      listeners: [
        { port: 1, jwt: { providers: ["idp"] }, routes: [{ host: "*", pathPrefix: "/", service: "web" }] },
      ],
    });
    const clock = new VirtualClock(1_800_000_000_000);
    const l = listenerOf(g, clock);
    const now = clock.now() / 1000;
    const none = l.decideFor(ctx, ...head("/"));
    expect(none).toMatchObject({
      kind: "reply",
      status: 401,
      headers: { "www-authenticate": 'Bearer realm="weft"' },
    });
    const expired = l.decideFor(
      ctx,
      ...head("/", {
        authorization: `Bearer ${jwt(rsa.privateKey, { iss: "https://idp", aud: "edge", exp: now - 60 })}`,
      }),
    );
    expect(expired).toMatchObject({ kind: "reply", status: 401 });
    const ok = jwt(rsa.privateKey, { iss: "https://idp", aud: "edge", exp: now + 60, sub: "alice" });
    const { headers } = forwarded(
      l.decideFor(
        ctx,
        ...head("/", { authorization: `Bearer ${ok}`, "x-user": "mallory", "x-tier": "gold" }),
      ),
    );
    expect(headers["x-user"]).toBe("alice");
    // Absent from the token: the client's value is removed, not passed on as if verified.
    expect("x-tier" in headers).toBe(false);
    const f = forwarded(l.decideFor(ctx, ...head("/", { authorization: `Bearer ${ok}` }))).d;
    expect(f.requestHeaders?.at(-1)?.remove).toContain("authorization");
  });
});

describe("IngressListener sockets", () => {
  it("serves decisions over a real connection (connection context reaches the engine)", async () => {
    const g = parse({
      name: "edge",
      type: "ingress",
      listeners: [
        {
          port: 1,
          address: "127.0.0.1",
          routes: [
            {
              host: "only.test",
              pathPrefix: "/",
              service: "web",
              rateLimit: { requestsPerSecond: 0.001, burst: 1 },
            },
          ],
        },
      ],
    });
    const l = listenerOf(g, undefined);
    const port = await l.listen(0);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (host: string) =>
      new Promise<number>((resolve, reject) => {
        http
          .get({ host: "127.0.0.1", port, path: "/", agent, headers: { host } }, (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
          })
          .on("error", reject);
      });
    // No route: 404 (a connection context missing would be a 503).
    expect(await get("other.test")).toBe(404);
    // The first request takes the only token and is forwarded to a cluster without endpoints: 503 NH; then 429.
    expect(await get("only.test")).toBe(503);
    expect(await get("only.test")).toBe(429);
    agent.destroy();
  });

  it("does not process a request pipelined behind a refused one (no Host: node's own 400)", async () => {
    const g = parse({
      name: "edge",
      type: "ingress",
      listeners: [
        { port: 1, address: "127.0.0.1", routes: [{ host: "*", pathPrefix: "/", service: "web" }] },
      ],
    });
    const decided: RouteDecision[] = [];
    const l = listenerOf(g);
    const original = l.decideFor.bind(l);
    l.decideFor = (...args) => {
      const d = original(...args);
      decided.push(d);
      return d;
    };
    const port = await l.listen(0);
    const raw = await new Promise<string>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () =>
        s.write("GET /a HTTP/1.1\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"),
      );
      let out = "";
      s.on("data", (c) => {
        out += c;
      });
      s.on("close", () => resolve(out));
    });
    expect(raw.match(/HTTP\/1\.1 \d{3}/g)).toEqual(["HTTP/1.1 400"]);
    // The pipelined request reached the decision and was refused there, not forwarded.
    expect(decided).toHaveLength(1);
    expect(decided[0]).toMatchObject({
      kind: "refuse",
      detail: "request pipelined behind a closing response",
    });
    expect(behindClose({ remoteAddress: undefined, servername: undefined }, {})).toBe(false);
  });

  describe("https with SNI and hot reload", () => {
    let pems: Record<string, { cert: string; key: string }>;
    beforeAll(async () => {
      const root = await createTestRoot();
      pems = {};
      for (const cn of ["a.example.test", "b.example.test", "a2.example.test"]) {
        const leaf = await issueTestLeaf(root, { uris: [], commonName: cn });
        pems[cn] = { cert: leaf.certPem, key: leaf.keyPem };
      }
    });

    const subject = (port: number, servername?: string) =>
      new Promise<string>((resolve, reject) => {
        const s = tls.connect(
          { host: "127.0.0.1", port, ...(servername ? { servername } : {}), rejectUnauthorized: false },
          () => {
            const cn = s.getPeerCertificate().subject?.CN;
            s.destroy();
            resolve(String(cn));
          },
        );
        s.on("error", reject);
      });

    it("serves each host its certificate and picks up a replaced file without a restart", async () => {
      const dir = tmp();
      const files = (cn: string) => {
        const p = pems[cn] as { cert: string; key: string };
        return [p.cert, p.key];
      };
      const [ac, ak] = files("a.example.test") as [string, string];
      const [bc, bk] = files("b.example.test") as [string, string];
      writeFileSync(join(dir, "a.crt"), ac);
      writeFileSync(join(dir, "a.key"), ak);
      writeFileSync(join(dir, "b.crt"), bc);
      writeFileSync(join(dir, "b.key"), bk);
      const g = parse({
        name: "edge",
        type: "ingress",
        listeners: [
          {
            port: 1,
            address: "127.0.0.1",
            protocol: "https",
            tls: {
              certFile: join(dir, "a.crt"),
              keyFile: join(dir, "a.key"),
              sni: [{ hosts: ["b.example.test"], certFile: join(dir, "b.crt"), keyFile: join(dir, "b.key") }],
            },
            routes: [{ host: "*", pathPrefix: "/", service: "web" }],
          },
        ],
      });
      const l = listenerOf(g);
      const port = await l.listen(0);
      expect(await subject(port, "a.example.test")).toBe("a.example.test");
      expect(await subject(port, "b.example.test")).toBe("b.example.test");
      expect(await subject(port)).toBe("a.example.test");
      // Replace the default pair atomically (as cert-manager does): a new key first, then the cert by rename.
      const [nc, nk] = files("a2.example.test") as [string, string];
      writeFileSync(join(dir, "a.key.new"), nk);
      writeFileSync(join(dir, "a.crt.new"), nc);
      renameSync(join(dir, "a.key.new"), join(dir, "a.key"));
      renameSync(join(dir, "a.crt.new"), join(dir, "a.crt"));
      const deadline = Date.now() + 5000;
      let seen = "";
      while (Date.now() < deadline) {
        seen = await subject(port, "a.example.test");
        if (seen === "a2.example.test") break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(seen).toBe("a2.example.test");
      expect(await subject(port, "b.example.test")).toBe("b.example.test");
      expect(l.certificates?.reloads).toBeGreaterThanOrEqual(1);
      // HTTP/2 by ALPN: the request is decided with its connection's context (a missing one would be 503 NR).
      const session = http2.connect(`https://127.0.0.1:${port}`, {
        servername: "b.example.test",
        rejectUnauthorized: false,
      });
      session.on("error", () => {});
      const h2status = await new Promise<{ status: number; flags: unknown }>((resolve, reject) => {
        const req = session.request({ ":path": "/x", ":authority": "b.example.test" });
        req.on("response", (h) => {
          req.resume();
          req.on("end", () => resolve({ status: Number(h[":status"]), flags: h["x-weft-response-flags"] }));
        });
        req.on("error", reject);
        req.end();
      });
      session.destroy();
      // UH: forwarded to the (fake) cluster, which has no endpoint.
      expect(h2status).toEqual({ status: 503, flags: "UH" });
    });

    it("refuses to start on a key that does not match its certificate", () => {
      const dir = tmp();
      writeFileSync(join(dir, "a.crt"), (pems["a.example.test"] as { cert: string }).cert);
      writeFileSync(join(dir, "a.key"), (pems["b.example.test"] as { key: string }).key);
      const g = parse({
        name: "edge",
        type: "ingress",
        listeners: [
          {
            port: 1,
            protocol: "https",
            tls: { certFile: join(dir, "a.crt"), keyFile: join(dir, "a.key") },
            routes: [{ host: "*", pathPrefix: "/", service: "web" }],
          },
        ],
      });
      expect(() => listenerOf(g)).toThrow(/tls certificate/);
    });
  });
});
