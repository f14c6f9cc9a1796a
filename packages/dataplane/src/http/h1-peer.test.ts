import http from "node:http";
import { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { CircuitBreaker } from "../cluster/breaker.js";
import { FLAGS_HEADER } from "./flags.js";
import { REFUSED_HEADER } from "./headers.js";
import { deadPort, h1AppChain, httpRequest, startChain } from "./testdata/chain.js";

/**
 * The HTTP/1.1 mesh hop (h1-peer-pool.ts, h1-peer-call.ts): an HTTP/1.1
 * app's plain requests cross on kept-alive HTTP/1.1 mTLS connections, and
 * HTTP/1.1's lack of REFUSED_STREAM is made up for by the peer's refusal
 * mark and by never processing a request on a connection the peer ended.
 */

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const echo: Handler = (req, res) => {
  let body = "";
  req.on("data", (d: Buffer) => {
    body += d.toString();
  });
  req.on("end", () => res.end(`${req.method} ${req.url} ${body}`));
};

const h1Chain = (handler: Handler, opts: Parameters<typeof h1AppChain>[2] = {}) =>
  h1AppChain(handler, cleanup, opts);

describe("HTTP/1.1 between the sidecars", () => {
  it("sequential requests, GET and POST, reuse one kept-alive HTTP/1.1 connection", async () => {
    const { app, chain } = await h1Chain(echo);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanup.push(() => agent.destroy());
    for (let i = 0; i < 10; i++) {
      const r = await httpRequest(chain.outboundPort, {
        method: "POST",
        path: `/p/${i}`,
        body: `n=${i}`,
        agent,
      });
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe(`POST /p/${i} n=${i}`);
      const g = await httpRequest(chain.outboundPort, { path: `/g/${i}`, agent });
      expect(g.body.toString()).toBe(`GET /g/${i} `);
    }
    expect(app.requests).toHaveLength(20);
    expect(chain.mtlsConnections).toEqual(["http/1.1"]);
    expect(chain.h1Pool?.size).toBe(1);
    expect(chain.pool.size).toBe(0);
    expect(chain.outboundEvents.every((e) => e.status === 200 && e.flags === "-")).toBe(true);
  });

  it("concurrent requests take a connection each; a second wave reuses them all", async () => {
    // The app answers a wave only once all 12 requests are in, so they overlap however slow the machine.
    let held: http.ServerResponse[] = [];
    const { chain } = await h1Chain((_req, res) => {
      held.push(res);
      if (held.length < 12) return;
      for (const r of held) r.end("ok");
      held = [];
    });
    const wave = () =>
      Promise.all(Array.from({ length: 12 }, (_, i) => httpRequest(chain.outboundPort, { path: `/${i}` })));
    expect((await wave()).map((r) => r.status)).toEqual(Array(12).fill(200));
    const opened = chain.mtlsConnections.length;
    expect(opened).toBe(12);
    expect((await wave()).map((r) => r.status)).toEqual(Array(12).fill(200));
    expect(chain.mtlsConnections).toHaveLength(opened);
  });

  it("a peer that refuses ALPN http/1.1 (HTTP/2 only, like a proxyless gRPC server) gets the request over HTTP/2, and is remembered", async () => {
    const { chain } = await h1Chain(echo, { inboundAlpn: ["h2"] });
    for (let i = 0; i < 3; i++) {
      const r = await httpRequest(chain.outboundPort, { path: `/x/${i}` });
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe(`GET /x/${i} `);
    }
    // One handshake refused (no common ALPN), then HTTP/2 only: the peer was remembered.
    expect(chain.tlsClientErrors()).toBe(1);
    expect(chain.mtlsConnections).toEqual(["h2"]);
    expect(chain.outboundEvents.map((e) => e.flags)).toEqual(["-", "-", "-"]);
  });

  it("at the connection limit, requests wait for a connection to the peer to come free (pending), bounded by the connect timeout", async () => {
    const overflows: string[] = [];
    const breaker = new CircuitBreaker(
      { maxConnections: 2, maxPendingRequests: 100, maxRequests: 100, maxRetries: 3 },
      (limit) => overflows.push(limit),
    );
    const { app, chain } = await h1Chain((req, res) => {
      const ms = Number(new URL(req.url ?? "/", "http://x").searchParams.get("ms") ?? "30");
      setTimeout(() => res.end("ok"), ms);
    });
    chain.setCluster({ breaker, connectTimeoutMs: 500 });
    const six = await Promise.all(
      Array.from({ length: 6 }, (_, i) => httpRequest(chain.outboundPort, { path: `/w${i}?ms=30` })),
    );
    expect(six.map((r) => r.status)).toEqual(Array(6).fill(200));
    expect(chain.mtlsConnections).toEqual(["http/1.1", "http/1.1"]);
    expect(app.requests).toHaveLength(6);
    // Both connections held longer than the connect timeout: a waiting request gives up with 503 UO.
    const slow = [1, 2].map(() => httpRequest(chain.outboundPort, { path: "/slow?ms=1500" }));
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    const third = await httpRequest(chain.outboundPort, { path: "/third" });
    expect(third.status).toBe(503);
    expect(third.headers[FLAGS_HEADER]).toBe("UO");
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect((await Promise.all(slow)).map((r) => r.status)).toEqual([200, 200]);
    expect(chain.mtlsConnections).toHaveLength(2);
    expect(app.requests.some((r) => r.url === "/third")).toBe(false);
  });

  it("a chunked request body (trailers may follow) takes the HTTP/2 session instead", async () => {
    const { chain } = await h1Chain(echo);
    const r = await httpRequest(chain.outboundPort, {
      method: "POST",
      path: "/chunked",
      body: Readable.from(["a", "b", "c"]),
    });
    expect(r.body.toString()).toBe("POST /chunked abc");
    expect(chain.mtlsConnections).toEqual(["h2"]);
  });

  it("response trailers of a chunked response reach the client", async () => {
    const { chain } = await h1Chain((_req, res) => {
      res.writeHead(200, { trailer: "x-checksum" });
      res.write("part one, ");
      res.addTrailers({ "x-checksum": "abc123" });
      res.end("part two");
    });
    const r = await httpRequest(chain.outboundPort, { path: "/t" });
    expect(r.body.toString()).toBe("part one, part two");
    expect(r.trailers["x-checksum"]).toBe("abc123");
    expect(chain.mtlsConnections).toEqual(["http/1.1"]);
  });

  it("a peer whose app is down refuses with its mark; the next endpoint answers and the mark never reaches the app", async () => {
    const live = await h1Chain(echo);
    // The first endpoint's sidecar is up, its app is not.
    const deadApp = await deadPort();
    const down = await startChain({ app: { port: deadApp, protocol: "http" }, hop: "h1" });
    cleanup.push(() => down.close());
    live.chain.setCluster({
      endpoints: [
        { id: "down", address: "127.0.0.1", port: down.inboundPort },
        { id: "live", address: "127.0.0.1", port: live.chain.inboundPort },
      ],
    });
    const r = await httpRequest(live.chain.outboundPort, { path: "/x" });
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe("GET /x ");
    expect(r.headers[REFUSED_HEADER]).toBeUndefined();
    expect(live.chain.picks).toEqual(["down", "live"]);
    expect(down.inboundEvents).toMatchObject([{ status: 503, flags: "UF" }]);
    expect(down.mtlsConnections).toEqual(["http/1.1"]);

    // With a body already streamed, the request cannot be sent again: 503, flag UR, as for REFUSED_STREAM.
    live.chain.setCluster({ endpoints: [{ id: "down", address: "127.0.0.1", port: down.inboundPort }] });
    const post = await httpRequest(live.chain.outboundPort, { method: "POST", path: "/y", body: "data" });
    expect(post.status).toBe(503);
    expect(post.headers[FLAGS_HEADER]).toBe("UR");
    expect(post.headers[REFUSED_HEADER]).toBeUndefined();
    expect(live.app.requests).toHaveLength(1);
  });

  it("an app cannot forge the refusal mark: its 503 is relayed as it is", async () => {
    const { app, chain } = await h1Chain((_req, res) => {
      res.writeHead(503, { [REFUSED_HEADER]: "1" });
      res.end("busy");
    });
    const r = await httpRequest(chain.outboundPort, { path: "/z" });
    expect(r.status).toBe(503);
    expect(r.body.toString()).toBe("busy");
    expect(r.headers[REFUSED_HEADER]).toBeUndefined();
    expect(app.requests).toHaveLength(1);
    expect(chain.picks).toEqual(["api-1"]);
  });

  it("a request meeting a connection the peer just ended is not processed there; it goes out once, on a new connection", async () => {
    const { app, chain } = await h1Chain(echo);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanup.push(() => agent.destroy());
    expect((await httpRequest(chain.outboundPort, { path: "/warm", agent })).status).toBe(200);
    expect(chain.mtlsConnections).toEqual(["http/1.1"]);
    // The peer ends its idle connection just as the next request reaches it (an idle close or a
    // drain racing a request): the request is in its buffer, behind the end.
    for (const s of chain.inboundSockets) s.prependOnceListener("data", () => s.end());
    // A POST: not idempotent, so it must never reach the app twice.
    const r = await httpRequest(chain.outboundPort, { method: "POST", path: "/once", agent });
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe("POST /once ");
    expect(app.requests.filter((q) => q.url === "/once")).toHaveLength(1);
    expect(chain.mtlsConnections).toEqual(["http/1.1", "http/1.1"]);
    // The endpoint was not excluded: a dead connection says nothing about the peer.
    expect(chain.picks).toEqual(["api-1", "api-1", "api-1"]);
    expect(chain.outboundEvents.at(-1)).toMatchObject({ status: 200, flags: "-" });

    // A request whose body already streamed out cannot be sent again (as after REFUSED_STREAM):
    // 503 UR, and still not processed.
    for (const s of chain.inboundSockets) s.prependOnceListener("data", () => s.end());
    const post = await httpRequest(chain.outboundPort, { method: "POST", path: "/body", body: "x", agent });
    expect(post.status).toBe(503);
    expect(post.headers[FLAGS_HEADER]).toBe("UR");
    expect(app.requests.filter((q) => q.url === "/body")).toHaveLength(0);
  });

  it("a peer that dies mid-response: the client's response is reset, not truncated silently", async () => {
    const { chain } = await h1Chain((_req, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("only part");
      setTimeout(() => res.destroy(), 30);
    });
    const outcome = await new Promise<string>((resolve) => {
      const req = http.get({ host: "127.0.0.1", port: chain.outboundPort, path: "/cut" }, (res) => {
        res.on("data", () => {});
        res.on("end", () => resolve("end"));
        res.on("error", () => resolve("error"));
        res.on("aborted", () => resolve("aborted"));
      });
      req.on("error", () => resolve("error"));
    });
    expect(outcome).not.toBe("end");
    expect(chain.outboundEvents.at(-1)).toMatchObject({ status: 200, flags: "UR" });
  });
});
