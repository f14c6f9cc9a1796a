import { createHash, randomBytes } from "node:crypto";
import type http from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { connectMtls } from "../transport/mtls.js";
import { FLAGS_HEADER } from "./flags.js";
import {
  deadPort,
  rawExchange,
  settled,
  spiffe,
  startChain,
  startHttpApp,
  testCerts,
} from "./testdata/chain.js";
import type { InboundAuthorize } from "./types.js";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** An HTTP app whose upgrades are handled by `onUpgrade`. */
async function upgradeApp(onUpgrade: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void) {
  const app = await startHttpApp((_req, res) => res.end("plain"));
  app.server.on("upgrade", onUpgrade);
  cleanup.push(() => app.close());
  return app;
}

async function wsApp() {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });
  wss.on("connection", (ws) => {
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  cleanup.push(() => wss.close());
  return upgradeApp((req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
  });
}

function open(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, { headers, maxPayload: 16 * 1024 * 1024 });
  cleanup.push(() => ws.terminate());
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res: http.IncomingMessage) => {
      let body = "";
      res.on("data", (d: Buffer) => {
        body += d.toString();
      });
      res.on("end", () =>
        reject(
          Object.assign(new Error("unexpected response"), {
            status: res.statusCode,
            headers: res.headers,
            body,
          }),
        ),
      );
    });
  });
}

function next(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) =>
    ws.once("message", (data: Buffer, isBinary: boolean) => resolve({ data: Buffer.from(data), isBinary })),
  );
}

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

describe("WebSocket through the mesh hop", () => {
  it("echoes text and a 5 MB binary message over its own mTLS connection", async () => {
    const app = await wsApp();
    const chain = await startChain({ app: { port: app.port, protocol: "http" } });
    cleanup.push(() => chain.close());
    const ws = await open(`ws://127.0.0.1:${chain.outboundPort}/chat?room=1`, {
      "x-weft-identity": "admin",
      "x-forwarded-client-cert": "spoofed",
    });
    const text = next(ws);
    ws.send("hello through the mesh");
    expect(await text).toEqual({ data: Buffer.from("hello through the mesh"), isBinary: false });

    const big = randomBytes(5 * 1024 * 1024);
    const echoed = next(ws);
    ws.send(big);
    const back = await echoed;
    expect(back.isBinary).toBe(true);
    expect(back.data.length).toBe(big.length);
    expect(sha(back.data)).toBe(sha(big));

    const closed = new Promise<number>((resolve) => ws.once("close", (code: number) => resolve(code)));
    ws.close(1000, "done");
    expect(await closed).toBe(1000);

    expect(chain.mtlsConnections).toEqual(["http/1.1"]);
    const seen = app.upgrades[0];
    expect(seen?.url).toBe("/chat?room=1");
    expect(seen?.headers["x-weft-identity"]).toBeUndefined();
    expect(seen?.headers["x-forwarded-client-cert"]).toBe(`By=${spiffe("api")};URI=${spiffe("web")}`);
    expect(seen?.headers.upgrade).toBe("websocket");
    await settled(() => chain.outboundEvents.length + chain.inboundEvents.length);
    expect(chain.outboundEvents[0]).toMatchObject({ status: 101, endpointId: "api-1" });
    expect(chain.inboundEvents[0]).toMatchObject({ status: 101, peerService: "web" });
  });

  it("a quiet tunnel outlives the headers timeout (upgraded connections leave HTTP's timers)", async () => {
    const app = await wsApp();
    const chain = await startChain({
      app: { port: app.port, protocol: "http" },
      limits: { headersTimeoutMs: 100 },
    });
    cleanup.push(() => chain.close());
    const ws = await open(`ws://127.0.0.1:${chain.outboundPort}/quiet`);
    await new Promise((r) => setTimeout(r, 600));
    const reply = next(ws);
    ws.send("still here");
    expect((await reply).data.toString()).toBe("still here");
  });

  it("an upgrade refused by authorize gets the refusal; the app sees nothing", async () => {
    const app = await wsApp();
    const deny: InboundAuthorize = () => ({
      allow: false,
      status: 403,
      body: "RBAC: access denied",
      flags: "RBAC",
    });
    const chain = await startChain({ app: { port: app.port, protocol: "http" }, authorize: deny });
    cleanup.push(() => chain.close());
    const err = await open(`ws://127.0.0.1:${chain.outboundPort}/chat`).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 403, body: "RBAC: access denied" });
    expect((err as { headers: http.IncomingHttpHeaders }).headers[FLAGS_HEADER]).toBe("RBAC");
    expect(app.upgrades).toEqual([]);
  });

  it("the first endpoint refusing connections → the upgrade goes to the next", async () => {
    const app = await wsApp();
    const chain = await startChain({ app: { port: app.port, protocol: "http" } });
    cleanup.push(() => chain.close());
    chain.setCluster({
      endpoints: [
        { id: "dead", address: "127.0.0.1", port: await deadPort() },
        { id: "api-1", address: "127.0.0.1", port: chain.inboundPort },
      ],
    });
    const ws = await open(`ws://127.0.0.1:${chain.outboundPort}/`);
    const reply = next(ws);
    ws.send("x");
    expect((await reply).data.toString()).toBe("x");
    expect(chain.picks).toEqual(["dead", "api-1"]);
  });

  it("an app that answers an upgrade without 101 gets one response relayed, then the connection closes", async () => {
    const afterRefusal: string[] = [];
    const app = await upgradeApp((_req, socket) => {
      // A misbehaving app: refuses, yet keeps reading the connection as if it were still HTTP.
      socket.on("data", (d: Buffer) => afterRefusal.push(d.toString()));
      socket.write("HTTP/1.1 400 Bad Request\r\nContent-Length: 6\r\n\r\nno thx");
    });
    const chain = await startChain({ app: { port: app.port, protocol: "http" } });
    cleanup.push(() => chain.close());
    const { text, closed } = await rawExchange(
      chain.outboundPort,
      "GET /ws HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    expect(text.endsWith("no thx")).toBe(true);
    expect(text.toLowerCase()).toContain("connection: close");
    expect(closed).toBe(true);
    expect(afterRefusal).toEqual([]);
  });

  it("bytes after a refused upgrade never reach the app as a second request", async () => {
    const afterRefusal: string[] = [];
    const app = await upgradeApp((_req, socket) => {
      socket.on("data", (d: Buffer) => afterRefusal.push(d.toString()));
      socket.write("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    });
    const chain = await startChain({ app: { port: app.port, protocol: "http" } });
    cleanup.push(() => chain.close());
    const { text } = await rawExchange(
      chain.outboundPort,
      "GET /ws HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" +
        "GET /admin HTTP/1.1\r\nHost: api\r\n\r\n",
    );
    expect(text).toMatch(/^HTTP\/1\.1 404 /);
    expect(afterRefusal.join("")).not.toContain("/admin");
    expect(app.requests).toEqual([]);
  });

  it("from a peer too: bytes pipelined behind a refused upgrade never reach the app", async () => {
    const afterRefusal: string[] = [];
    const app = await upgradeApp((_req, socket, head) => {
      afterRefusal.push(head.toString());
      socket.on("data", (d: Buffer) => afterRefusal.push(d.toString()));
      socket.write("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    });
    const chain = await startChain({ app: { port: app.port, protocol: "http" } });
    cleanup.push(() => chain.close());
    const certs = await testCerts();
    const { socket } = await connectMtls({
      host: "127.0.0.1",
      port: chain.inboundPort,
      source: certs.source("web"),
      expectService: "api",
      alpn: ["http/1.1"],
      timeoutMs: 2_000,
    });
    cleanup.push(() => socket.destroy());
    socket.on("error", () => {});
    let text = "";
    socket.on("data", (d: Buffer) => {
      text += d.toString();
    });
    const closed = new Promise((r) => socket.once("close", r));
    // One write: the request head and the smuggled request arrive together.
    socket.write(
      "GET /ws HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" +
        "GET /admin HTTP/1.1\r\nHost: api\r\n\r\n",
    );
    await closed;
    expect(text).toMatch(/^HTTP\/1\.1 404 /);
    expect(afterRefusal.join("")).not.toContain("/admin");
    expect(app.requests).toEqual([]);
  });

  it("an h2c upgrade is served as a plain HTTP/1.1 request, never tunnelled", async () => {
    const app = await wsApp();
    const chain = await startChain({ app: { port: app.port, protocol: "http" } });
    cleanup.push(() => chain.close());
    const { text, closed } = await rawExchange(
      chain.outboundPort,
      "GET /h2c HTTP/1.1\r\nHost: api\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" +
        "HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    );
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text.endsWith("plain")).toBe(true);
    expect(closed).toBe(true);
    expect(app.upgrades).toEqual([]);
    expect(app.requests.map((r) => [r.url, r.headers.upgrade, r.headers["http2-settings"]])).toEqual([
      ["/h2c", undefined, undefined],
    ]);
  });

  it("an upgrade request with a body is refused", async () => {
    const app = await wsApp();
    const chain = await startChain({ app: { port: app.port, protocol: "http" } });
    cleanup.push(() => chain.close());
    const { text } = await rawExchange(
      chain.outboundPort,
      "POST /ws HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello",
    );
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    expect(app.upgrades).toEqual([]);
    expect(chain.mtlsConnections).toEqual([]);
  });

  it("half-close: the client's end reaches the app, which can still answer", async () => {
    const app = await upgradeApp((_req, socket) => {
      socket.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n");
      socket.on("data", (d: Buffer) => socket.write(d));
      socket.on("end", () => socket.end("bye"));
    });
    const chain = await startChain({ app: { port: app.port, protocol: "http" } });
    cleanup.push(() => chain.close());
    const sock = net.connect({ port: chain.outboundPort, host: "127.0.0.1", allowHalfOpen: true });
    cleanup.push(() => sock.destroy());
    let received = "";
    sock.on("data", (d: Buffer) => {
      received += d.toString();
    });
    const ended = new Promise<void>((resolve) => sock.once("end", resolve));
    sock.write("GET /raw HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n");
    await settled(() => received.length);
    expect(received).toMatch(/^HTTP\/1\.1 101 /);
    sock.write("ping");
    await settled(() => received.length);
    expect(received.endsWith("ping")).toBe(true);
    sock.end();
    await ended;
    expect(received.endsWith("pingbye")).toBe(true);
  });
});
