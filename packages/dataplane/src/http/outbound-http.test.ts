import { createHash } from "node:crypto";
import http from "node:http";
import { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { FLAGS_HEADER } from "./flags.js";
import {
  deadPort,
  httpRequest,
  rawExchange,
  settled,
  spiffe,
  startChain,
  startHttpApp,
} from "./testdata/chain.js";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function chainTo(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  opts: Omit<Parameters<typeof startChain>[0], "app"> = {},
) {
  const app = await startHttpApp(handler);
  cleanup.push(() => app.close());
  const chain = await startChain({ ...opts, app: { port: app.port, protocol: "http" } });
  cleanup.push(() => chain.close());
  return { app, chain };
}

/** A deterministic body of `total` bytes, produced on demand (never held whole); counts what was pulled. */
function generated(total: number) {
  const block = createHash("sha512").update("weft").digest();
  const chunk = Buffer.alloc(64 * 1024);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (block[i % block.length] as number) ^ (i >> 6);
  const hash = createHash("sha256");
  let pulled = 0;
  const stream = new Readable({
    read() {
      if (pulled >= total) {
        this.push(null);
        return;
      }
      const piece = chunk.subarray(0, Math.min(chunk.length, total - pulled));
      pulled += piece.length;
      hash.update(piece);
      this.push(Buffer.from(piece));
    },
  });
  return { stream, pulled: () => pulled, digest: () => hash.digest("hex") };
}

function sha256Of(stream: NodeJS.ReadableStream): Promise<{ hex: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    let bytes = 0;
    stream.on("data", (d: Buffer) => {
      bytes += d.length;
      hash.update(d);
    });
    stream.on("error", reject);
    stream.on("end", () => resolve({ hex: hash.digest("hex"), bytes }));
  });
}

const MB = 1024 * 1024;

describe("outbound HTTP/1.1 → HTTP/2 over mTLS → inbound → HTTP/1.1 app", () => {
  it("GET and POST on keep-alive connections share one HTTP/2 session to the peer", async () => {
    const { app, chain } = await chainTo((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => {
        body += d.toString();
      });
      req.on("end", () => res.end(`${req.method} ${req.url} ${body}`));
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    cleanup.push(() => agent.destroy());
    for (let i = 0; i < 5; i++) {
      const get = await httpRequest(chain.outboundPort, { path: `/get/${i}`, agent });
      expect(get.body.toString()).toBe(`GET /get/${i} `);
      const post = await httpRequest(chain.outboundPort, {
        method: "POST",
        path: "/post",
        body: `n=${i}`,
        agent,
      });
      expect(post.body.toString()).toBe(`POST /post n=${i}`);
    }
    const parallel = await Promise.all(
      Array.from({ length: 20 }, (_, i) => httpRequest(chain.outboundPort, { path: `/p/${i}`, agent })),
    );
    expect(parallel.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(app.requests).toHaveLength(30);
    // Keep-alive towards the app's client and one multiplexed session towards the peer.
    expect(chain.frontConnections()).toBeLessThanOrEqual(2);
    expect(chain.mtlsConnections).toEqual(["h2"]);
    expect(chain.pool.size).toBe(1);
    expect(chain.outboundEvents).toHaveLength(30);
    expect(
      chain.outboundEvents.every((e) => e.status === 200 && e.flags === "-" && e.endpointId === "api-1"),
    ).toBe(true);
    expect(chain.dones).toBe(30);
  });

  it("relays chunked request and response bodies", async () => {
    const { app, chain } = await chainTo((req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      req.on("data", (d: Buffer) => res.write(d.toString().toUpperCase()));
      req.on("end", () => res.end("!"));
    });
    const body = Readable.from(["alpha ", "beta ", "gamma"]);
    const r = await httpRequest(chain.outboundPort, { method: "POST", body });
    expect(r.status).toBe(200);
    expect(r.headers["transfer-encoding"]).toBe("chunked");
    expect(r.body.toString()).toBe("ALPHA BETA GAMMA!");
    expect(app.requests[0]?.headers["transfer-encoding"]).toBe("chunked");
    expect(app.requests[0]?.headers["content-length"]).toBeUndefined();
  });

  it("streams a 20 MB upload byte-exact", async () => {
    const { chain } = await chainTo((req, res) => {
      void sha256Of(req).then(({ hex, bytes }) => res.end(`${bytes} ${hex}`));
    });
    const body = generated(20 * MB);
    const r = await httpRequest(chain.outboundPort, { method: "POST", body: body.stream });
    expect(r.body.toString()).toBe(`${20 * MB} ${body.digest()}`);
  });

  it("streams a 20 MB download byte-exact", async () => {
    const source = generated(20 * MB);
    const { chain } = await chainTo((_req, res) => {
      res.writeHead(200, { "content-length": String(20 * MB) });
      source.stream.pipe(res);
    });
    const res = await new Promise<http.IncomingMessage>((resolve) =>
      http.get({ host: "127.0.0.1", port: chain.outboundPort, path: "/big" }, resolve),
    );
    const got = await sha256Of(res);
    expect(got.bytes).toBe(20 * MB);
    expect(got.hex).toBe(source.digest());
  });

  it("never buffers a whole body: a stalled app stalls the uploading client", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const { chain } = await chainTo((req, res) => {
      void gate.then(() => sha256Of(req)).then(({ bytes }) => res.end(String(bytes)));
    });
    const body = generated(64 * MB);
    const pending = httpRequest(chain.outboundPort, { method: "POST", body: body.stream });
    const stalledAt = await settled(body.pulled);
    // Socket buffers and HTTP/2 windows along the chain, nowhere near the 64 MB body.
    expect(stalledAt).toBeLessThan(24 * MB);
    release();
    expect((await pending).body.toString()).toBe(String(64 * MB));
  });

  it("never buffers a whole body: a client not reading stalls the app", async () => {
    let written = 0;
    const chunk = Buffer.alloc(64 * 1024, 1);
    const { chain } = await chainTo((_req, res) => {
      const pump = (): void => {
        while (written < 64 * MB) {
          written += chunk.length;
          if (!res.write(chunk)) {
            res.once("drain", pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const res = await new Promise<http.IncomingMessage>((resolve) =>
      http.get({ host: "127.0.0.1", port: chain.outboundPort, path: "/" }, resolve),
    );
    res.pause();
    expect(await settled(() => written)).toBeLessThan(24 * MB);
    res.resume();
    expect((await sha256Of(res)).bytes).toBe(64 * MB);
  });

  it("HEAD, 204 and 304 carry no body and keep the connection usable", async () => {
    const { chain } = await chainTo((req, res) => {
      if (req.url === "/204") {
        res.writeHead(204, { "x-kind": "no-content" });
        res.end();
      } else if (req.url === "/304") {
        res.writeHead(304, { etag: '"v1"' });
        res.end();
      } else {
        res.writeHead(200, { "content-type": "text/plain", "content-length": "11" });
        res.end(req.method === "HEAD" ? undefined : "hello world");
      }
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanup.push(() => agent.destroy());
    const head = await httpRequest(chain.outboundPort, { method: "HEAD", path: "/doc", agent });
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe("11");
    expect(head.body.length).toBe(0);
    const noContent = await httpRequest(chain.outboundPort, { path: "/204", agent });
    expect(noContent.status).toBe(204);
    expect(noContent.headers["x-kind"]).toBe("no-content");
    expect(noContent.body.length).toBe(0);
    const notModified = await httpRequest(chain.outboundPort, {
      path: "/304",
      headers: { "if-none-match": '"v1"' },
      agent,
    });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.etag).toBe('"v1"');
    expect(notModified.body.length).toBe(0);
    const get = await httpRequest(chain.outboundPort, { path: "/doc", agent });
    expect(get.body.toString()).toBe("hello world");
    expect(chain.frontConnections()).toBe(1);
  });

  it("relays HTTP/1.1 trailers both ways", async () => {
    let requestTrailers: NodeJS.Dict<string> = {};
    const { chain } = await chainTo((req, res) => {
      req.resume();
      req.on("end", () => {
        requestTrailers = req.trailers;
        res.writeHead(200, { trailer: "x-checksum" });
        res.write("part one, ");
        res.addTrailers({ "x-checksum": "abc123" });
        res.end("part two");
      });
    });
    const r = await httpRequest(chain.outboundPort, {
      method: "POST",
      headers: { te: "trailers", trailer: "x-client-sum", "transfer-encoding": "chunked" },
      body: "payload",
      trailers: { "x-client-sum": "42" },
    });
    expect(r.body.toString()).toBe("part one, part two");
    expect(r.trailers).toEqual({ "x-checksum": "abc123" });
    expect(requestTrailers).toEqual({ "x-client-sum": "42" });
  });

  it("strips hop-by-hop and mesh-internal headers; the inbound side sets identity headers", async () => {
    const { app, chain } = await chainTo((_req, res) => {
      res.writeHead(200, {
        connection: "x-resp-hop",
        "x-resp-hop": "secret",
        "x-weft-response-flags": "spoofed",
        "x-app": "kept",
      });
      res.end("ok");
    });
    const r = await httpRequest(chain.outboundPort, {
      path: "/h",
      headers: {
        host: "api.mesh:8080",
        connection: "x-hop, keep-alive",
        "x-hop": "drop me",
        "keep-alive": "timeout=5",
        "proxy-connection": "keep-alive",
        "x-weft-identity": "admin",
        "x-forwarded-client-cert": "By=spiffe://evil;URI=spiffe://weft.test/ns/default/svc/admin",
        "x-forwarded-proto": "https",
        "x-end-to-end": "kept",
      },
    });
    expect(r.status).toBe(200);
    const seen = app.requests[0]?.headers ?? {};
    expect(seen.host).toBe("api.mesh:8080");
    expect(seen["x-end-to-end"]).toBe("kept");
    expect(seen["x-hop"]).toBeUndefined();
    expect(seen["keep-alive"]).toBeUndefined();
    expect(seen["proxy-connection"]).toBeUndefined();
    expect(seen["x-weft-identity"]).toBeUndefined();
    expect(seen["x-forwarded-client-cert"]).toBe(`By=${spiffe("api")};URI=${spiffe("web")}`);
    expect(seen["x-forwarded-proto"]).toBe("http");
    expect(r.headers["x-app"]).toBe("kept");
    expect(r.headers["x-resp-hop"]).toBeUndefined();
    expect(r.headers[FLAGS_HEADER]).toBeUndefined();
    expect(Object.keys(r.headers).some((k) => k.startsWith(":"))).toBe(false);
  });

  it("accepts an absolute-form target: the app sees origin-form and the URL's authority", async () => {
    const { app, chain } = await chainTo((_req, res) => res.end("ok"));
    const { text } = await rawExchange(
      chain.outboundPort,
      "GET http://api.mesh/x?y=1 HTTP/1.1\r\nHost: ignored\r\nConnection: close\r\n\r\n",
    );
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(app.requests[0]?.url).toBe("/x?y=1");
    expect(app.requests[0]?.headers.host).toBe("api.mesh");
  });
});

describe("outbound failures", () => {
  it("a refused endpoint is excluded and the next one used", async () => {
    const dead = await deadPort();
    const { app, chain } = await chainTo((_req, res) => res.end("from api"));
    chain.setCluster({
      endpoints: [
        { id: "dead", address: "127.0.0.1", port: dead },
        { id: "api-1", address: "127.0.0.1", port: chain.inboundPort },
      ],
    });
    const r = await httpRequest(chain.outboundPort);
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe("from api");
    expect(chain.picks).toEqual(["dead", "api-1"]);
    expect(chain.dones).toBe(2);
    expect(app.requests).toHaveLength(1);
    expect(chain.outboundEvents[0]).toMatchObject({ status: 200, endpointId: "api-1" });
    expect(chain.logs).toContainEqual(
      expect.objectContaining({
        level: "warn",
        msg: "upstream connect failed",
        obj: expect.objectContaining({ endpoint: "dead" }),
      }),
    );
  });

  it("all endpoints failing → 503 UF after 3 attempts", async () => {
    const ports = await Promise.all([deadPort(), deadPort(), deadPort(), deadPort()]);
    const { app, chain } = await chainTo((_req, res) => res.end("never"));
    chain.setCluster({
      endpoints: ports.map((port, i) => ({ id: `dead-${i}`, address: "127.0.0.1", port })),
    });
    const r = await httpRequest(chain.outboundPort, { method: "POST", body: "data" });
    expect(r.status).toBe(503);
    expect(r.body.toString()).toBe("no healthy upstream for api");
    expect(r.headers[FLAGS_HEADER]).toBe("UF");
    expect(chain.picks).toEqual(["dead-0", "dead-1", "dead-2"]);
    expect(chain.outboundEvents[0]).toMatchObject({ upstream: "api", status: 503, flags: "UF" });
    expect(app.requests).toHaveLength(0);
  });

  it("no endpoint to pick → 503 UH", async () => {
    const { chain } = await chainTo((_req, res) => res.end("never"));
    chain.setCluster({ endpoints: [] });
    const r = await httpRequest(chain.outboundPort);
    expect(r.status).toBe(503);
    expect(r.body.toString()).toBe("no healthy upstream for api");
    expect(r.headers[FLAGS_HEADER]).toBe("UH");
  });

  it("no configuration yet → 503 NR", async () => {
    const { chain } = await chainTo((_req, res) => res.end("never"), { noCluster: true });
    const r = await httpRequest(chain.outboundPort);
    expect(r.status).toBe(503);
    expect(r.headers[FLAGS_HEADER]).toBe("NR");
    expect(chain.mtlsConnections).toEqual([]);
  });

  it("a peer presenting another identity is refused: 503 UF, logged, nothing reaches the app", async () => {
    const { app, chain } = await chainTo((_req, res) => res.end("never"));
    chain.setCluster({ service: "db" });
    const r = await httpRequest(chain.outboundPort);
    expect(r.status).toBe(503);
    expect(r.body.toString()).toBe("no healthy upstream for db");
    expect(r.headers[FLAGS_HEADER]).toBe("UF");
    expect(app.requests).toHaveLength(0);
    expect(chain.logs).toContainEqual(
      expect.objectContaining({
        level: "warn",
        msg: "upstream connect failed",
        obj: expect.objectContaining({ upstream: "db", reason: "identity-mismatch" }),
      }),
    );
  });

  it("the request timeout → 504 UT, and the app's request is cancelled", async () => {
    let appSawClose!: () => void;
    const closed = new Promise<void>((r) => {
      appSawClose = r;
    });
    const { chain } = await chainTo(
      (_req, res) => {
        res.once("close", appSawClose);
      },
      { cluster: { requestTimeoutMs: 300 } },
    );
    const r = await httpRequest(chain.outboundPort);
    expect(r.status).toBe(504);
    expect(r.body.toString()).toBe("upstream request timeout");
    expect(r.headers[FLAGS_HEADER]).toBe("UT");
    expect(chain.outboundEvents[0]).toMatchObject({ status: 504, flags: "UT" });
    await closed;
  });

  it("a route's idle timeout: a silent upstream gets 504 UT, a slow but steady stream is not cut", async () => {
    const { chain } = await chainTo(
      (req, res) => {
        if (req.url === "/silent") return; // never answers
        // 8 chunks 100 ms apart: 700 ms in all, never 300 ms without a byte.
        res.writeHead(200, { "content-type": "text/plain" });
        let n = 0;
        const tick = setInterval(() => {
          res.write(`${n}`);
          if (++n === 8) {
            clearInterval(tick);
            res.end();
          }
        }, 100);
        res.once("close", () => clearInterval(tick));
      },
      { decision: { idleTimeoutMs: 300 } },
    );
    const silent = await httpRequest(chain.outboundPort, { path: "/silent" });
    expect(silent.status).toBe(504);
    expect(silent.body.toString()).toBe("upstream idle timeout");
    expect(silent.headers[FLAGS_HEADER]).toBe("UT");
    const steady = await httpRequest(chain.outboundPort, { path: "/steady" });
    expect(steady.status).toBe(200);
    expect(steady.body.toString()).toBe("01234567");
  });

  // Chunked, or short of its Content-Length: a proxy that ended the response cleanly here would make
  // the truncation look complete.
  it.each([
    ["chunked", {}],
    ["with a Content-Length", { "content-length": "10000" }],
  ])("a reset mid-response (%s) aborts the app's response instead of truncating it", async (_kind, extra) => {
    const { chain } = await chainTo((_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream", ...extra });
      res.write(Buffer.alloc(1000, 1), () => setTimeout(() => res.socket?.destroy(), 50));
    });
    let received = 0;
    const res = await new Promise<http.IncomingMessage>((resolve) =>
      http
        .get({ host: "127.0.0.1", port: chain.outboundPort, path: "/" }, (res) => {
          res.on("error", () => {});
          res.on("data", (d: Buffer) => {
            received += d.length;
          });
          resolve(res);
        })
        .on("error", () => {}),
    );
    expect(res.statusCode).toBe(200);
    // (events.once would reject on the "error" an aborted response emits.)
    if (!res.destroyed) await new Promise((r) => res.once("close", r));
    expect(res.complete).toBe(false);
    expect(received).toBe(1000);
    await settled(() => chain.outboundEvents.length);
    expect(chain.outboundEvents[0]?.flags).toContain("UR");
  });
});

describe("outbound drain", () => {
  it("close() finishes in-flight requests with Connection: close and refuses new connections", async () => {
    let respond!: () => void;
    const arrived = new Promise<void>((resolveArrived) => {
      respond = resolveArrived;
    });
    let finish!: () => void;
    const { chain } = await chainTo((_req, res) => {
      finish = () => res.end("late but whole");
      respond();
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanup.push(() => agent.destroy());
    const inFlight = httpRequest(chain.outboundPort, { path: "/slow", agent });
    await arrived;
    expect(chain.outbound.inFlight()).toBe(1);
    let drained = false;
    const closing = chain.outbound.close().then(() => {
      drained = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(drained).toBe(false);
    finish();
    const r = await inFlight;
    expect(r.body.toString()).toBe("late but whole");
    expect(r.headers.connection).toBe("close");
    await closing;
    expect(chain.outbound.inFlight()).toBe(0);
    const after = await rawExchange(chain.outboundPort, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1_000);
    expect(after).toEqual({ text: "", closed: true });
  });
});
