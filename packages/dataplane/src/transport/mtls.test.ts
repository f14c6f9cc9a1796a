import { once } from "node:events";
import type { AddressInfo } from "node:net";
import type { Server, TLSSocket } from "node:tls";
import { createTestRoot, crossSign, issueTestLeaf, type TestLeaf, type TestRoot } from "@weft/testkit";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { clearSvidCache, TrustBundle } from "../identity/svid.js";
import { createMaterialSource } from "./material-source.js";
import {
  connectMtls,
  createMtlsServer,
  isPeerRefused,
  type MaterialSource,
  type MtlsRejection,
  type PeerIdentity,
  type TlsMaterial,
} from "./mtls.js";

const TD = "weft.test";
const HOUR = 3_600_000;
const id = (service: string, td = TD) => `spiffe://${td}/ns/default/svc/${service}`;

let root: TestRoot;
let bundle: TrustBundle;
const leaf: Record<string, TestLeaf> = {};

beforeAll(async () => {
  root = await createTestRoot({ commonName: "weft root" });
  bundle = TrustBundle.fromPem(TD, [root.certPem]);
  const foreign = await createTestRoot({ commonName: "foreign root" });
  const now = Date.now();
  leaf.web = await issueTestLeaf(root, { uris: [id("web")] });
  leaf.api = await issueTestLeaf(root, { uris: [id("api")] });
  leaf.api2 = await issueTestLeaf(root, { uris: [id("api")] });
  leaf.foreign = await issueTestLeaf(foreign, { uris: [id("web")] });
  leaf.expired = await issueTestLeaf(root, {
    uris: [id("web")],
    notBefore: new Date(now - 2 * HOUR),
    notAfter: new Date(now - HOUR),
  });
  leaf.twoSans = await issueTestLeaf(root, { uris: [id("web"), id("admin")] });
  leaf.otherTd = await issueTestLeaf(root, { uris: [id("web", "other.test")] });
  leaf.ca = await issueTestLeaf(root, { uris: [id("web")], ca: true });
});

const material = (l: TestLeaf, b: TrustBundle = bundle): TlsMaterial => ({
  keyPem: l.keyPem,
  chainPem: l.chainPem,
  bundle: b,
});
const fixed = (m: TlsMaterial): MaterialSource => createMaterialSource(m);

interface Running {
  server: Server;
  port: number;
  rejects: MtlsRejection[];
  peers: PeerIdentity[];
  received: Buffer[];
  sockets: TLSSocket[];
  /** What the listener logged at warn level. */
  warnings: { obj: object; msg: string }[];
  nextReject(): Promise<MtlsRejection>;
}

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const fn of cleanup.splice(0)) fn();
  clearSvidCache();
});

/** An echo server; every byte that reaches onConnection is recorded. */
async function serve(source: MaterialSource, allowService?: (service: string) => boolean): Promise<Running> {
  const rejects: MtlsRejection[] = [];
  const waiting: ((r: MtlsRejection) => void)[] = [];
  const run: Omit<Running, "server" | "port"> = {
    rejects,
    peers: [],
    received: [],
    sockets: [],
    warnings: [],
    nextReject: () =>
      rejects.length > 0 ? Promise.resolve(rejects[0] as MtlsRejection) : new Promise((r) => waiting.push(r)),
  };
  const server = createMtlsServer({
    source,
    ...(allowService ? { allowService } : {}),
    logger: { info: () => {}, warn: (obj, msg) => run.warnings.push({ obj, msg }) },
    onReject: (r) => {
      rejects.push(r);
      for (const w of waiting.splice(0)) w(r);
    },
    onConnection: (socket, peer) => {
      run.peers.push(peer);
      run.sockets.push(socket);
      socket.on("error", () => {});
      socket.on("data", (d: Buffer) => {
        run.received.push(d);
        socket.write(d);
      });
    },
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanup.push(() => {
    for (const s of run.sockets) s.destroy();
    server.close();
  });
  return { ...run, server, port: (server.address() as AddressInfo).port };
}

async function dial(port: number, source: MaterialSource, expectService: string) {
  const conn = await connectMtls({ host: "127.0.0.1", port, source, expectService, timeoutMs: 5_000 });
  conn.socket.on("error", () => {});
  cleanup.push(() => conn.socket.destroy());
  return conn;
}

async function echo(socket: TLSSocket, text: string): Promise<string> {
  socket.write(text);
  const [data] = (await once(socket, "data")) as [Buffer];
  return data.toString();
}

describe("mTLS over real sockets", () => {
  it("web and api authenticate each other and bytes round-trip", async () => {
    const srv = await serve(fixed(material(leaf.api as TestLeaf)));
    const { socket, peer } = await dial(srv.port, fixed(material(leaf.web as TestLeaf)), "api");
    expect(peer).toEqual({ spiffeId: id("api"), service: "api", namespace: "default", trustDomain: TD });
    expect(socket.getProtocol()).toBe("TLSv1.3");
    expect(socket.alpnProtocol).toBe("weft/1");
    expect(await echo(socket, "hello over mTLS")).toBe("hello over mTLS");
    expect(srv.peers).toEqual([
      { spiffeId: id("web"), service: "web", namespace: "default", trustDomain: TD },
    ]);
    expect(srv.rejects).toEqual([]);
  });

  it.each([
    ["a foreign CA's certificate", "foreign", "untrusted"],
    ["an expired certificate", "expired", "expired"],
    ["two URI SANs", "twoSans", "san-count"],
    ["another trust domain", "otherTd", "trust-domain"],
    ["a CA certificate used as a leaf", "ca", "leaf-is-ca"],
  ] as const)("the server refuses a client presenting %s (%s → %s)", async (_, name, reason) => {
    const srv = await serve(fixed(material(leaf.api as TestLeaf)));
    const attempt = connectMtls({
      host: "127.0.0.1",
      port: srv.port,
      source: fixed(material(leaf[name] as TestLeaf)),
      expectService: "api",
      timeoutMs: 5_000,
    });
    // In TLS 1.3 the client may finish its handshake before the server has judged its certificate.
    const client = await attempt.then(
      ({ socket }) => {
        socket.on("error", () => {});
        socket.write("must not arrive");
        return socket;
      },
      () => undefined,
    );
    const rejection = await srv.nextReject();
    expect(rejection.reason).toBe(reason);
    expect(rejection.remote).toMatch(/^127\.0\.0\.1:\d+$/);
    // Logged with its reason, not only reported.
    expect(srv.warnings).toContainEqual({
      obj: { reason, detail: rejection.detail, remote: rejection.remote },
      msg: "mTLS peer refused",
    });
    if (client && !client.destroyed) await once(client, "close");
    expect(srv.peers).toEqual([]);
    expect(srv.received).toEqual([]);
  });

  it("the client refuses a server that is not the expected service", async () => {
    const srv = await serve(fixed(material(leaf.api as TestLeaf)));
    const err = await connectMtls({
      host: "127.0.0.1",
      port: srv.port,
      source: fixed(material(leaf.web as TestLeaf)),
      expectService: "db",
      timeoutMs: 5_000,
    }).catch((e: unknown) => e);
    expect(isPeerRefused(err)).toBe(true);
    expect(err).toMatchObject({ code: "WEFT_ERR_UNAVAILABLE", reason: "identity-mismatch" });
    expect((err as Error).message).toMatch(/^peer identity refused: identity-mismatch: /);
  });

  it("a listener refuses a verified peer whose service it does not allow", async () => {
    const srv = await serve(fixed(material(leaf.api as TestLeaf)), (service) => service === "gateway");
    await connectMtls({
      host: "127.0.0.1",
      port: srv.port,
      source: fixed(material(leaf.web as TestLeaf)),
      expectService: "api",
      timeoutMs: 5_000,
    }).then(
      ({ socket }) => socket.on("error", () => {}),
      () => undefined,
    );
    expect(await srv.nextReject()).toMatchObject({ reason: "identity-mismatch" });
    expect(srv.peers).toEqual([]);
  });

  it("a client without the agreed ALPN protocol is refused", async () => {
    const srv = await serve(fixed(material(leaf.api as TestLeaf)));
    const err = await connectMtls({
      host: "127.0.0.1",
      port: srv.port,
      source: fixed(material(leaf.web as TestLeaf)),
      expectService: "api",
      alpn: ["h2"],
      timeoutMs: 5_000,
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "WEFT_ERR_UNAVAILABLE" });
    expect((await srv.nextReject()).reason).toBe("tls");
    expect(srv.peers).toEqual([]);
  });

  it("a new certificate serves new handshakes while open connections stay up", async () => {
    const source = createMaterialSource(material(leaf.api as TestLeaf));
    const srv = await serve(source);
    const web = fixed(material(leaf.web as TestLeaf));
    const first = await dial(srv.port, web, "api");
    expect(first.socket.getPeerCertificate().raw).toEqual(leaf.api?.certDer);

    source.set(material(leaf.api2 as TestLeaf));
    const second = await dial(srv.port, web, "api");
    expect(second.socket.getPeerCertificate().raw).toEqual(leaf.api2?.certDer);

    expect(await echo(first.socket, "still here")).toBe("still here");
    expect(await echo(second.socket, "new cert")).toBe("new cert");
    expect(first.socket.getPeerCertificate().raw).toEqual(leaf.api?.certDer);
  });

  it("root rotation: a server on the new root with the bridge is accepted by a client trusting only the old root", async () => {
    const newRoot = await createTestRoot({ commonName: "weft root 2" });
    const bridge = await crossSign(root, newRoot);
    const api = await issueTestLeaf(newRoot, { uris: [id("api")] });
    const both = TrustBundle.fromPem(TD, [root.certPem, newRoot.certPem]);
    const source = createMaterialSource(material(leaf.api as TestLeaf, both));
    const srv = await serve(source);
    source.set({ keyPem: api.keyPem, chainPem: api.chainPem + bridge, bundle: both });

    const oldOnly = fixed(material(leaf.web as TestLeaf));
    const { socket, peer } = await dial(srv.port, oldOnly, "api");
    expect(peer.service).toBe("api");
    expect(socket.getPeerCertificate().raw).toEqual(api.certDer);
    expect(await echo(socket, "rotated")).toBe("rotated");
    expect(srv.peers.map((p) => p.service)).toEqual(["web"]);
  });
});
