import http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { FLAGS_HEADER } from "./flags.js";
import { type Chain, httpRequest, settled, startChain, startH2cApp, startHttpApp } from "./testdata/chain.js";
import {
  type EchoClient,
  type EchoHandlers,
  echoClient,
  grpcFrame,
  type Msg,
  startGrpcApp,
} from "./testdata/grpc-echo.js";
import type { InboundAuthorize } from "./types.js";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

function h2cClient(port: number): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  cleanup.push(() => session.destroy());
  return session;
}

interface H2Result {
  headers: http2.IncomingHttpHeaders;
  flags: number;
  trailers: http2.IncomingHttpHeaders | undefined;
  body: Buffer;
}

function h2Request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer | string,
) {
  return new Promise<H2Result>((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    const out: H2Result = { headers: {}, flags: 0, trailers: undefined, body: Buffer.alloc(0) };
    const chunks: Buffer[] = [];
    stream.on("response", (h, flags) => {
      out.headers = h;
      out.flags = flags;
    });
    stream.on("trailers", (t) => {
      out.trailers = t;
    });
    stream.on("data", (d: Buffer) => chunks.push(d));
    stream.on("error", reject);
    stream.on("end", () => {
      out.body = Buffer.concat(chunks);
      resolve(out);
    });
    if (body !== undefined) stream.end(body);
  });
}

describe("h2c from the app", () => {
  it("many concurrent streams from one h2c client share one session to the peer", async () => {
    const app = await startH2cApp((stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on("data", (d: Buffer) => chunks.push(d));
      stream.on("end", () => {
        stream.respond({ ":status": 200, "x-path": String(headers[":path"]) }, { waitForTrailers: true });
        stream.on("wantTrailers", () =>
          stream.sendTrailers({ "x-sum": String(Buffer.concat(chunks).length) }),
        );
        stream.end(`${headers[":method"]} ${headers[":path"]} ${Buffer.concat(chunks).toString()}`);
      });
    });
    cleanup.push(() => app.close());
    const chain = await startChain({ app: { port: app.port, protocol: "http2" } });
    cleanup.push(() => chain.close());
    const session = h2cClient(chain.outboundPort);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        h2Request(session, { ":method": "POST", ":path": `/s/${i}`, "x-weft-evil": "1" }, `body-${i}`),
      ),
    );
    results.forEach((r, i) => {
      expect(r.headers[":status"]).toBe(200);
      expect(r.headers["x-path"]).toBe(`/s/${i}`);
      expect(r.body.toString()).toBe(`POST /s/${i} body-${i}`);
      expect(r.trailers?.["x-sum"]).toBe(String(`body-${i}`.length));
    });
    expect(chain.mtlsConnections).toEqual(["h2"]);
    expect(app.streams.every((h) => h["x-weft-evil"] === undefined)).toBe(true);
    expect(app.streams[0]?.["x-forwarded-client-cert"]).toMatch(/^By=spiffe:/);
  });

  it("an h2c client reaches an HTTP/1.1 app (h2 → h1 at the inbound side), and an h1 client an h2c app", async () => {
    const h1app = await startHttpApp((req, res) => {
      req.resume();
      req.on("end", () => {
        res.writeHead(201, { "set-cookie": ["a=1", "b=2"] });
        res.end(`h1 app: ${req.method} ${req.url} host=${req.headers.host}`);
      });
    });
    cleanup.push(() => h1app.close());
    const toH1 = await startChain({ app: { port: h1app.port, protocol: "http" }, outboundProtocol: "http2" });
    cleanup.push(() => toH1.close());
    const r = await h2Request(
      h2cClient(toH1.outboundPort),
      {
        ":method": "PUT",
        ":path": "/thing",
        ":authority": "api.mesh",
      },
      "x",
    );
    expect(r.headers[":status"]).toBe(201);
    expect(r.headers["set-cookie"]).toEqual(["a=1", "b=2"]);
    expect(r.body.toString()).toBe("h1 app: PUT /thing host=api.mesh");

    const h2app = await startH2cApp((stream, headers) => {
      stream.respond({ ":status": 200 });
      stream.end(`h2 app: ${headers[":method"]} ${headers[":path"]} authority=${headers[":authority"]}`);
    });
    cleanup.push(() => h2app.close());
    const toH2 = await startChain({ app: { port: h2app.port, protocol: "http2" }, outboundProtocol: "http" });
    cleanup.push(() => toH2.close());
    const h1 = await httpRequest(toH2.outboundPort, { path: "/q?z=1", headers: { host: "api.mesh:81" } });
    expect(h1.body.toString()).toBe("h2 app: GET /q?z=1 authority=api.mesh:81");
    expect(h1.headers.connection).not.toMatch(/upgrade/i);
  });

  it.each(["http", "http2"] as const)(
    "a client cancelling mid-upload never reaches the %s app as a complete request",
    async (protocol) => {
      const outcomes: string[] = [];
      let got!: () => void;
      const gotData = new Promise<void>((r) => {
        got = r;
      });
      const onBody = (body: NodeJS.ReadableStream & { on(e: string, f: () => void): unknown }): void => {
        body.once("data", got);
        body.on("end", () => outcomes.push("complete"));
        body.on("close", () => outcomes.push("closed"));
      };
      let close: () => void;
      let port: number;
      if (protocol === "http") {
        const app = await startHttpApp((req) => {
          req.on("error", () => {});
          onBody(req);
          req.resume();
        });
        ({ port } = app);
        close = () => app.close();
      } else {
        const app = await startH2cApp((stream) => {
          onBody(stream);
          stream.resume();
        });
        ({ port } = app);
        close = () => app.close();
      }
      cleanup.push(close);
      const chain = await startChain({ app: { port, protocol }, outboundProtocol: "http2" });
      cleanup.push(() => chain.close());
      const stream = h2cClient(chain.outboundPort).request({ ":method": "POST", ":path": "/upload" });
      stream.on("error", () => {});
      stream.write(Buffer.alloc(10_000, 5));
      await gotData;
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await settled(() => outcomes.length);
      expect(outcomes).toContain("closed");
      expect(outcomes).not.toContain("complete");
      await settled(() => chain.outboundEvents.length);
      expect(chain.outboundEvents[0]?.flags).toContain("DC");
    },
  );

  it("close() sends GOAWAY: the in-flight stream completes, the session takes no new streams", async () => {
    let finish!: () => void;
    let arrived!: () => void;
    const arrival = new Promise<void>((r) => {
      arrived = r;
    });
    const app = await startH2cApp((stream, headers) => {
      stream.respond({ ":status": 200 });
      if (headers[":path"] === "/slow") {
        finish = () => stream.end("whole");
        arrived();
      } else {
        stream.end("fast");
      }
    });
    cleanup.push(() => app.close());
    const chain = await startChain({ app: { port: app.port, protocol: "http2" } });
    cleanup.push(() => chain.close());
    const session = h2cClient(chain.outboundPort);
    const goaway = new Promise<void>((r) => session.once("goaway", () => r()));
    const slow = h2Request(session, { ":path": "/slow" });
    await arrival;
    const closing = chain.outbound.close();
    await goaway;
    const late = await h2Request(session, { ":path": "/late" }).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(Error);
    finish();
    expect((await slow).body.toString()).toBe("whole");
    await closing;
    expect(app.streams.map((h) => h[":path"])).toEqual(["/slow"]);
  });

  it("an app stream reset mid-response resets the client's stream", async () => {
    const app = await startH2cApp((stream) => {
      // waitForTrailers: node:http2's close() on a stream without it sends END_STREAM before RST_STREAM.
      stream.respond({ ":status": 200 }, { waitForTrailers: true });
      stream.write(Buffer.alloc(500, 1), () =>
        setTimeout(() => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR), 30),
      );
    });
    cleanup.push(() => app.close());
    const chain = await startChain({ app: { port: app.port, protocol: "http2" } });
    cleanup.push(() => chain.close());
    const err = await h2Request(h2cClient(chain.outboundPort), { ":path": "/" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "ERR_HTTP2_STREAM_ERROR" });
  });
});

const md = (pairs: Record<string, string>): grpc.Metadata => {
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(pairs)) m.set(k, v);
  return m;
};

const handlers: EchoHandlers = {
  Unary(call, cb) {
    if (call.request.text === "missing") {
      cb({ code: grpc.status.NOT_FOUND, details: "no such thing: «missing» 100%" });
      return;
    }
    if (call.request.text === "hang") return;
    const trailer = md({ "x-served-by": "echo" });
    cb(
      null,
      { text: `echo ${call.request.text} ${call.metadata.get("x-trace")[0] ?? ""}`, n: call.request.n + 1 },
      trailer,
    );
  },
  ServerStream(call) {
    for (let i = 0; i < call.request.n; i++) call.write({ text: `${call.request.text}-${i}`, n: i });
    call.end();
  },
  ClientStream(call, cb) {
    const texts: string[] = [];
    call.on("data", (m: Msg) => texts.push(m.text));
    call.on("end", () => cb(null, { text: texts.join(","), n: texts.length }));
  },
  Bidi(call) {
    call.on("data", (m: Msg) => call.write({ text: m.text.toUpperCase(), n: m.n * 2 }));
    call.on("end", () => call.end());
  },
};

async function grpcChain(opts: { authorize?: InboundAuthorize; requestTimeoutMs?: number; hop?: "h1" } = {}) {
  const app = await startGrpcApp(handlers);
  cleanup.push(() => app.close());
  const chain = await startChain({
    app: { port: app.port, protocol: "grpc" },
    ...(opts.hop ? { hop: opts.hop } : {}),
    ...(opts.authorize ? { authorize: opts.authorize } : {}),
    ...(opts.requestTimeoutMs !== undefined ? { cluster: { requestTimeoutMs: opts.requestTimeoutMs } } : {}),
  });
  cleanup.push(() => chain.close());
  const client = echoClient(chain.outboundPort);
  cleanup.push(() => client.close());
  return { chain, client, app };
}

function unary(client: EchoClient, req: Msg, meta = new grpc.Metadata()) {
  return new Promise<{ err: grpc.ServiceError | null; res?: Msg; trailers?: grpc.Metadata }>((resolve) => {
    let trailers: grpc.Metadata | undefined;
    const call = client.Unary(req, meta, (err, res) => {
      // "status" comes after the callback; give it a turn.
      setImmediate(() => resolve({ err, ...(res ? { res } : {}), ...(trailers ? { trailers } : {}) }));
    });
    call.on("status", (s: grpc.StatusObject) => {
      trailers = s.metadata;
    });
  });
}

// Every gRPC behaviour on both mesh hops: HTTP/2 only, and the sidecar's (unary calls on HTTP/1.1).
describe.each([
  { hop: undefined, name: "HTTP/2" },
  { hop: "h1" as const, name: "HTTP/1.1 for whole unary calls" },
])("gRPC through the mesh hop ($name)", ({ hop }) => {
  it("unary with metadata and trailers", async () => {
    const { client, chain } = await grpcChain({ hop });
    const r = await unary(client, { text: "hi", n: 41 }, md({ "x-trace": "t-1" }));
    expect(r.err).toBeNull();
    expect(r.res).toEqual({ text: "echo hi t-1", n: 42 });
    expect(r.trailers?.get("x-served-by")).toEqual(["echo"]);
    expect(chain.outboundEvents[0]).toMatchObject({ status: 200, flags: "-" });
  });

  it("a handler's NOT_FOUND reaches the client with the same code and message", async () => {
    const { client } = await grpcChain({ hop });
    const r = await unary(client, { text: "missing", n: 0 });
    expect(r.err?.code).toBe(grpc.status.NOT_FOUND);
    expect(r.err?.details).toBe("no such thing: «missing» 100%");
  });

  it("a trailers-only response stays trailers-only (one HEADERS frame with END_STREAM)", async () => {
    const { chain, app } = await grpcChain({ hop });
    const call = {
      ":method": "POST",
      ":path": "/weft.test.Echo/Unary",
      "content-type": "application/grpc",
      te: "trailers",
    };
    const direct = await h2Request(h2cClient(app.port), call, grpcFrame("missing"));
    const r = await h2Request(h2cClient(chain.outboundPort), call, grpcFrame("missing"));
    expect(direct.flags & http2.constants.NGHTTP2_FLAG_END_STREAM).toBeTruthy();
    expect(r.flags & http2.constants.NGHTTP2_FLAG_END_STREAM).toBeTruthy();
    expect(r.headers["grpc-status"]).toBe("5");
    // Byte for byte what the app sent, percent-encoding included.
    expect(r.headers["grpc-message"]).toBe(direct.headers["grpc-message"]);
    expect(decodeURIComponent(String(r.headers["grpc-message"]))).toBe("no such thing: «missing» 100%");
    expect(r.trailers).toBeUndefined();
    expect(r.body.length).toBe(0);
  });

  it("server streaming", async () => {
    const { client } = await grpcChain({ hop });
    const call = client.ServerStream({ text: "s", n: 100 });
    const got: Msg[] = [];
    call.on("data", (m: Msg) => got.push(m));
    const status = await new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    expect(status.code).toBe(grpc.status.OK);
    expect(got).toHaveLength(100);
    expect(got[99]).toEqual({ text: "s-99", n: 99 });
  });

  it("client streaming", async () => {
    const { client } = await grpcChain({ hop });
    const res = await new Promise<Msg | undefined>((resolve, reject) => {
      const call = client.ClientStream((err, r) => (err ? reject(err) : resolve(r)));
      for (const t of ["a", "b", "c", "d"]) call.write({ text: t, n: 0 });
      call.end();
    });
    expect(res).toEqual({ text: "a,b,c,d", n: 4 });
  });

  it("bidirectional streaming, interleaved", async () => {
    const { client } = await grpcChain({ hop });
    const call = client.Bidi();
    const got: Msg[] = [];
    for (let i = 0; i < 20; i++) {
      const next = new Promise<Msg>((resolve) => call.once("data", resolve));
      call.write({ text: `m${i}`, n: i });
      got.push(await next);
    }
    call.end();
    const status = await new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    expect(status.code).toBe(grpc.status.OK);
    expect(got.map((m) => m.text)).toEqual(Array.from({ length: 20 }, (_, i) => `M${i}`));
    expect(got[19]?.n).toBe(38);
  });

  it("a refusal from authorize reaches a gRPC client as PERMISSION_DENIED with its message", async () => {
    const deny: InboundAuthorize = () => ({
      allow: false,
      status: 403,
      body: "RBAC: access denied",
      flags: "RBAC",
    });
    const { client } = await grpcChain({ authorize: deny, hop });
    const r = await unary(client, { text: "hi", n: 1 });
    expect(r.err?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(r.err?.details).toBe("RBAC: access denied");
    expect(r.err?.metadata.get(FLAGS_HEADER)).toEqual(["RBAC"]);
  });

  it("the request timeout reaches a gRPC client as DEADLINE_EXCEEDED", async () => {
    const { client, chain } = await grpcChain({ requestTimeoutMs: 300, hop });
    const r = await unary(client, { text: "hang", n: 1 });
    expect(r.err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(r.err?.details).toBe("upstream request timeout");
    expect(chain.outboundEvents[0]).toMatchObject({ status: 504, flags: "UT" });
  });

  it("no healthy upstream reaches a gRPC client as UNAVAILABLE", async () => {
    const { client, chain } = await grpcChain({ hop });
    (chain as Chain).setCluster({ endpoints: [] });
    const r = await unary(client, { text: "hi", n: 1 });
    expect(r.err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.err?.details).toBe("no healthy upstream for api");
  });
});

describe("h2c apps on the HTTP/1.1 mesh hop (as in the sidecar)", () => {
  /** An h2c app answering with the request it saw, a trailer, and a response body of `size` bytes. */
  const trailingApp = () =>
    startH2cApp((stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on("data", (d: Buffer) => chunks.push(d));
      stream.on("end", () => {
        stream.respond(
          { ":status": 200, "x-seen": `${headers[":method"]} ${headers[":path"]}` },
          { waitForTrailers: true },
        );
        stream.on("wantTrailers", () =>
          stream.sendTrailers({ "x-sum": String(Buffer.concat(chunks).length) }),
        );
        stream.end(`body=${Buffer.concat(chunks).toString()}`);
      });
    });

  it("plain requests (no body, or a declared length) cross on HTTP/1.1 with trailers; a body of unknown length keeps HTTP/2", async () => {
    const app = await trailingApp();
    cleanup.push(() => app.close());
    const chain = await startChain({ app: { port: app.port, protocol: "http2" }, hop: "h1" });
    cleanup.push(() => chain.close());
    const session = h2cClient(chain.outboundPort);

    const get = await h2Request(session, { ":method": "GET", ":path": "/a?b=1", ":authority": "api.mesh" });
    expect(get.headers[":status"]).toBe(200);
    expect(get.headers["x-seen"]).toBe("GET /a?b=1");
    expect(get.body.toString()).toBe("body=");
    expect(get.trailers?.["x-sum"]).toBe("0");
    const post = await h2Request(
      session,
      { ":method": "POST", ":path": "/p", "content-length": "5" },
      "hello",
    );
    expect(post.body.toString()).toBe("body=hello");
    expect(post.trailers?.["x-sum"]).toBe("5");
    expect(chain.mtlsConnections).toEqual(["http/1.1"]);
    expect(chain.pool.size).toBe(0);

    // No content-length: the body's length is unknown, it streams on the HTTP/2 session.
    const streamed = await h2Request(session, { ":method": "POST", ":path": "/s" }, "abc");
    expect(streamed.body.toString()).toBe("body=abc");
    expect(streamed.trailers?.["x-sum"]).toBe("3");
    expect(chain.mtlsConnections).toEqual(["http/1.1", "h2"]);
    expect(chain.outboundEvents.map((e) => e.status)).toEqual([200, 200, 200]);
  });

  it("a unary gRPC call, whole in hand, crosses on HTTP/1.1; a streaming call keeps the HTTP/2 session", async () => {
    const { client, chain } = await grpcChain({ hop: "h1" });
    const r = await unary(client, { text: "hi", n: 1 });
    expect(r.err).toBeNull();
    expect(r.res).toEqual({ text: "echo hi ", n: 2 });
    expect(chain.mtlsConnections).toEqual(["http/1.1"]);
    const call = client.Bidi();
    call.write({ text: "a", n: 1 });
    const first = await new Promise<Msg>((resolve) => call.once("data", resolve));
    call.end();
    await new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    expect(first.text).toBe("A");
    expect(chain.mtlsConnections).toEqual(["http/1.1", "h2"]);
  });

  it("an h2c client's concurrent requests take at most 64 connections to a peer; the rest share the session", async () => {
    // The app answers only once all 70 requests are in, so they overlap however slow the machine.
    const held: (() => void)[] = [];
    const app = await startH2cApp((stream) => {
      held.push(() => {
        stream.respond({ ":status": 200 });
        stream.end("ok");
      });
      if (held.length === 70) for (const answer of held.splice(0)) answer();
    });
    cleanup.push(() => app.close());
    const chain = await startChain({
      app: { port: app.port, protocol: "http2" },
      hop: "h1",
      limits: { maxConcurrentStreams: 200 },
    });
    cleanup.push(() => chain.close());
    const session = h2cClient(chain.outboundPort);
    const results = await Promise.all(
      Array.from({ length: 70 }, (_, i) => h2Request(session, { ":method": "GET", ":path": `/${i}` })),
    );
    expect(results.map((r) => r.headers[":status"])).toEqual(Array(70).fill(200));
    expect(chain.mtlsConnections.filter((a) => a === "http/1.1")).toHaveLength(64);
    expect(chain.mtlsConnections.filter((a) => a === "h2")).toHaveLength(1);
  });
});
