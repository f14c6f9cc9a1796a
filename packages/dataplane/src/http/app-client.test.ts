import http from "node:http";
import net from "node:net";
import type { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { type AppClient, createAppClient } from "./app-client.js";
import { type RequestHead, responseHeaders } from "./headers.js";
import { deadPort, listen, startHttpApp, trackSockets } from "./testdata/chain.js";
import type { HeaderMap, UpstreamCall, UpstreamFailure, UpstreamResponseHead } from "./types.js";

/**
 * The HTTP/1.1 app client on its own, driven the way relay.ts drives it:
 * open → (requestSink, endRequest) → response / complete / fail.
 */

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

interface Outcome {
  head?: UpstreamResponseHead;
  body: Buffer;
  trailers?: HeaderMap | undefined;
  failure?: { kind: UpstreamFailure; detail: string };
}

interface Exchange {
  call: UpstreamCall;
  /** The response body as handed over, before anything reads it. */
  response: Promise<Readable>;
  done: Promise<Outcome>;
}

function clientFor(port: number): AppClient {
  const client = createAppClient({ host: "127.0.0.1", port, protocol: "http" });
  cleanup.push(() => client.destroy());
  return client;
}

function head(method: string, path: string, headers: HeaderMap = {}): RequestHead {
  return { method, path, authority: "app.test", headers };
}

/** Opens a call; the body is read as it comes unless `hold` (then the caller reads `response`). */
async function exchange(
  client: AppClient,
  h: RequestHead,
  opts: { body?: Buffer | string; trailers?: HeaderMap; hold?: boolean } = {},
): Promise<Exchange> {
  const prepared = await client.prepare();
  if (!prepared.ok) throw new Error(prepared.detail);
  const out: Outcome = { body: Buffer.alloc(0) };
  const chunks: Buffer[] = [];
  let gotResponse!: (b: Readable) => void;
  const response = new Promise<Readable>((r) => {
    gotResponse = r;
  });
  let finish!: () => void;
  const done = new Promise<Outcome>((r) => {
    finish = () => {
      out.body = Buffer.concat(chunks);
      r(out);
    };
  });
  const call = prepared.open(h, opts.body === undefined, {
    response(rh, body) {
      out.head = rh;
      gotResponse(body);
      if (!opts.hold) body.on("data", (c: Buffer) => chunks.push(c));
    },
    complete(trailers) {
      out.trailers = trailers;
      finish();
    },
    fail(kind, detail) {
      out.failure = { kind, detail };
      finish();
    },
  });
  // As relay.ts does: endRequest always, after the body when there is one.
  if (opts.body !== undefined) call.requestSink?.write(opts.body);
  call.endRequest(opts.trailers);
  return { call, response, done };
}

/** A raw HTTP/1.1 app: `answer` gets each request's head (per connection, counted from 0). */
async function rawApp(answer: (socket: net.Socket, index: number, connection: number) => void) {
  let connections = 0;
  const server = net.createServer((socket) => {
    const connection = connections++;
    let index = 0;
    let buffered = "";
    socket.on("error", () => {});
    socket.on("data", (d: Buffer) => {
      buffered += d.toString("latin1");
      let end = buffered.indexOf("\r\n\r\n");
      while (end !== -1) {
        buffered = buffered.slice(end + 4);
        answer(socket, index++, connection);
        end = buffered.indexOf("\r\n\r\n");
      }
    });
  });
  const sockets = trackSockets(server);
  const port = await listen(server);
  cleanup.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port, connections: () => connections };
}

const OK = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
/** Long enough for the pool to take a connection back as idle, so the next request reuses it. */
const idle = () => new Promise((r) => setTimeout(r, 50));

describe("HTTP/1.1 app client", () => {
  it("relays status, body and end-to-end headers; repeated fields as node:http presents them", async () => {
    const app = await rawApp((s) => {
      s.write(
        "HTTP/1.1 201 Created\r\n" +
          "Content-Type: text/plain\r\nContent-Type: text/html\r\n" +
          "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n" +
          "X-Multi: one\r\nX-Multi: two\r\n" +
          "Connection: keep-alive, x-hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=30\r\n" +
          "X-Weft-Peer: forged\r\nX-Forwarded-Client-Cert: forged\r\n" +
          "Content-Length: 5\r\n\r\nhello",
      );
    });
    const x = await exchange(clientFor(app.port), head("GET", "/h"));
    const r = await x.done;
    expect(r.failure).toBeUndefined();
    expect(r.head?.status).toBe(201);
    expect(r.body.toString()).toBe("hello");
    expect(r.head?.headers).toEqual({
      "content-type": "text/plain",
      "set-cookie": ["a=1", "b=2"],
      "x-multi": "one, two",
      "content-length": "5",
    });
  });

  it("every repeated field comes out exactly as node:http's IncomingMessage.headers gives it", async () => {
    const names = ["age", "authorization", "content-type", "etag", "expires", "from", "host", "last-modified"]
      .concat(["location", "max-forwards", "proxy-authorization", "referer", "retry-after", "server"])
      .concat([
        "user-agent",
        "if-modified-since",
        "if-unmodified-since",
        "set-cookie",
        "cookie",
        "date",
        "vary",
      ])
      .concat(["link", "via", "cache-control", "www-authenticate", "content-encoding", "x-custom"]);
    let lines = "";
    for (const n of names) lines += `${n}: one\r\n${n.toUpperCase()}: two\r\n`;
    const app = await rawApp((s) => s.write(`HTTP/1.1 200 OK\r\n${lines}Content-Length: 0\r\n\r\n`));
    const viaNode = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: "127.0.0.1", port: app.port, agent: false }, resolve).on("error", reject);
    });
    viaNode.resume();
    const r = await (await exchange(clientFor(app.port), head("GET", "/"))).done;
    expect(r.head?.headers).toEqual(responseHeaders(viaNode.headers, { stripInternal: true }));
    expect(r.head?.headers["content-type"]).toBe("one");
    expect(r.head?.headers.cookie).toBe("one; two");
    expect(r.head?.headers.vary).toBe("one, two");
  });

  it("sends host, path and headers as given, without TE; keeps one connection for sequential requests", async () => {
    const app = await startHttpApp((req, res) => res.end(req.url));
    cleanup.push(() => app.close());
    let connections = 0;
    app.server.on("connection", () => connections++);
    const client = clientFor(app.port);
    for (let i = 0; i < 5; i++) {
      const r = await (
        await exchange(client, head("GET", `/n/${i}?q=1`, { te: "trailers", "x-tenant": ["a", "b"] }))
      ).done;
      expect(r.body.toString()).toBe(`/n/${i}?q=1`);
    }
    // Reused (a request may open a second connection while the first is being released).
    expect(connections).toBeLessThanOrEqual(2);
    expect(app.requests[0]?.headers.host).toBe("app.test");
    expect(app.requests[0]?.headers["x-tenant"]).toBe("a, b");
    expect(app.requests[0]?.headers.te).toBeUndefined();
  });

  it("a connection refused is a connect failure (nothing reached the app)", async () => {
    const r = await (await exchange(clientFor(await deadPort()), head("GET", "/"))).done;
    expect(r.failure?.kind).toBe("connect");
  });

  it("a kept-alive socket the app closed as it was reused: an idempotent bodiless request is sent again", async () => {
    // Each connection answers its first request, then drops the connection when the next one arrives.
    const app = await rawApp((s, index) => (index === 0 ? s.write(OK) : s.destroy()));
    const client = clientFor(app.port);
    expect((await (await exchange(client, head("GET", "/1"))).done).body.toString()).toBe("ok");
    await idle();
    const again = await (await exchange(client, head("GET", "/2"))).done;
    expect(again.failure).toBeUndefined();
    expect(again.body.toString()).toBe("ok");
    expect(app.connections()).toBe(2);
  });

  it("the same for a non-idempotent request fails as a reset: it may have been processed", async () => {
    const app = await rawApp((s, index) => (index === 0 ? s.write(OK) : s.destroy()));
    const client = clientFor(app.port);
    await (await exchange(client, head("GET", "/1"))).done;
    await idle();
    const post = await (await exchange(client, head("POST", "/2"))).done;
    expect(post.failure?.kind).toBe("reset");
    expect(app.connections()).toBe(1);
  });

  it("an app that drops every request is tried twice at most, then a reset", async () => {
    const app = await rawApp((s) => s.destroy());
    const r = await (await exchange(clientFor(app.port), head("GET", "/"))).done;
    expect(r.failure?.kind).toBe("reset");
    expect(app.connections()).toBe(2);
  });

  it("1xx responses are not relayed; the final response is", async () => {
    const app = await startHttpApp((_req, res) => {
      res.writeEarlyHints({ link: "</style.css>; rel=preload" });
      res.writeProcessing();
      res.end("final");
    });
    cleanup.push(() => app.close());
    const r = await (await exchange(clientFor(app.port), head("GET", "/"))).done;
    expect(r.head?.status).toBe(200);
    expect(r.body.toString()).toBe("final");
  });

  it("HEAD, 204 and 304 complete without a body, and the connection stays usable", async () => {
    const app = await startHttpApp((req, res) => {
      if (req.url === "/204") res.writeHead(204).end();
      else if (req.url === "/304") res.writeHead(304, { etag: '"v1"' }).end();
      else
        res.writeHead(200, { "content-length": "11" }).end(req.method === "HEAD" ? undefined : "hello world");
    });
    cleanup.push(() => app.close());
    const client = clientFor(app.port);
    const h = await (await exchange(client, head("HEAD", "/"))).done;
    expect(h.head?.status).toBe(200);
    expect(h.head?.headers["content-length"]).toBe("11");
    expect(h.body.length).toBe(0);
    expect((await (await exchange(client, head("GET", "/204"))).done).head?.status).toBe(204);
    const nm = await (await exchange(client, head("GET", "/304"))).done;
    expect(nm.head?.status).toBe(304);
    expect(nm.head?.headers.etag).toBe('"v1"');
    expect((await (await exchange(client, head("GET", "/"))).done).body.toString()).toBe("hello world");
  });

  it("response trailers of a chunked response are relayed, cleaned", async () => {
    const app = await startHttpApp((_req, res) => {
      res.writeHead(200, { trailer: "x-checksum" });
      res.write("part, ");
      res.addTrailers({ "x-checksum": "abc", "content-type": "nope", "x-weft-flags": "forged" });
      res.end("end");
    });
    cleanup.push(() => app.close());
    const r = await (await exchange(clientFor(app.port), head("GET", "/"))).done;
    expect(r.body.toString()).toBe("part, end");
    expect(r.trailers).toEqual({ "x-checksum": "abc" });
  });

  it("a response cut short by the app is a reset, never a complete one", async () => {
    const app = await rawApp((s) => {
      s.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b");
      setTimeout(() => s.destroy(), 20);
    });
    const r = await (await exchange(clientFor(app.port), head("GET", "/"))).done;
    expect(r.head?.status).toBe(200);
    expect(r.failure?.kind).toBe("reset");
  });

  it("a request body with Content-Length is streamed to the app; large bodies both ways", async () => {
    const app = await startHttpApp((req, res) => {
      let n = 0;
      req.on("data", (d: Buffer) => {
        n += d.length;
      });
      req.on("end", () => res.end(Buffer.alloc(n, 7)));
    });
    cleanup.push(() => app.close());
    const size = 3 * 1024 * 1024;
    const r = await (
      await exchange(clientFor(app.port), head("PUT", "/up", { "content-length": String(size) }), {
        body: Buffer.alloc(size, 1),
      })
    ).done;
    expect(r.failure).toBeUndefined();
    expect(r.body.length).toBe(size);
    expect(app.requests[0]?.headers["content-length"]).toBe(String(size));
  });

  it("a body without Content-Length goes chunked, with its trailers (through node:http)", async () => {
    let seen: { te?: string; body: string; trailers: NodeJS.Dict<string> } | undefined;
    const app = await startHttpApp((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => {
        body += d.toString();
      });
      req.on("end", () => {
        seen = {
          body,
          trailers: req.trailers,
          ...(req.headers["transfer-encoding"] ? { te: req.headers["transfer-encoding"] } : {}),
        };
        res.end("ok");
      });
    });
    cleanup.push(() => app.close());
    const r = await (
      await exchange(clientFor(app.port), head("POST", "/"), { body: "payload", trailers: { "x-sum": "42" } })
    ).done;
    expect(r.body.toString()).toBe("ok");
    expect(seen).toEqual({ te: "chunked", body: "payload", trailers: { "x-sum": "42" } });
  });

  it("backpressure: an unread response holds the app back; reading it releases the rest", async () => {
    const total = 16 * 1024 * 1024;
    let written = 0;
    const app = await startHttpApp((_req, res) => {
      const chunk = Buffer.alloc(64 * 1024, 3);
      const pump = (): void => {
        while (written < total) {
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
    cleanup.push(() => app.close());
    const x = await exchange(clientFor(app.port), head("GET", "/big"), { hold: true });
    const body = await x.response;
    await new Promise((r) => setTimeout(r, 300));
    const stalled = written;
    expect(stalled).toBeLessThan(total / 2);
    let read = 0;
    body.on("data", (d: Buffer) => {
      read += d.length;
    });
    const r = await x.done;
    expect(r.failure).toBeUndefined();
    expect(read).toBe(total);
  });

  it("cancel mid-response closes the app's connection (its response does not finish)", async () => {
    let closedEarly: boolean | undefined;
    const app = await startHttpApp((_req, res) => {
      res.write("first part");
      res.once("close", () => {
        closedEarly = !res.writableFinished;
      });
    });
    cleanup.push(() => app.close());
    const x = await exchange(clientFor(app.port), head("GET", "/"));
    await x.response;
    x.call.cancel();
    x.call.cancel();
    for (let i = 0; i < 100 && closedEarly === undefined; i++) await new Promise((r) => setTimeout(r, 50));
    expect(closedEarly).toBe(true);
  });

  it("cancel in the turn the call was opened (rapid reset): the app sees nothing, not even a connection", async () => {
    const app = await startHttpApp((_req, res) => res.end("x"));
    cleanup.push(() => app.close());
    let connections = 0;
    app.server.on("connection", () => connections++);
    const client = clientFor(app.port);
    const prepared = await client.prepare();
    if (!prepared.ok) throw new Error(prepared.detail);
    const events = { response: () => {}, complete: () => {}, fail: () => {} };
    const call = prepared.open(head("GET", "/never"), true, events);
    call.cancel();
    await new Promise((r) => setTimeout(r, 100));
    expect(app.requests).toEqual([]);
    expect(connections).toBe(0);
  });

  it("a header value that cannot be written is refused when opening: nothing reaches the app", async () => {
    const app = await startHttpApp((_req, res) => res.end("x"));
    cleanup.push(() => app.close());
    const client = clientFor(app.port);
    await expect(exchange(client, head("GET", "/", { "x-bad": "a\r\nx-injected: 1" }))).rejects.toMatchObject(
      {
        code: "ERR_INVALID_CHAR",
      },
    );
    await new Promise((r) => setTimeout(r, 50));
    expect(app.requests).toEqual([]);
    expect((await (await exchange(client, head("GET", "/"))).done).body.toString()).toBe("x");
  });
});

describe("HTTP/1.1 app client through node:http (Expect, OPTIONS *)", () => {
  it("OPTIONS * reaches the app in asterisk-form", async () => {
    const app = await startHttpApp((_req, res) => res.end());
    cleanup.push(() => app.close());
    const r = await (await exchange(clientFor(app.port), head("OPTIONS", "*"))).done;
    expect(r.head?.status).toBe(200);
    expect(app.requests[0]?.url).toBe("*");
  });

  it("Expect: 100-continue is passed on; the 100 is not relayed", async () => {
    const app = await startHttpApp((req, res) => {
      req.resume();
      req.on("end", () => res.end("got it"));
    });
    cleanup.push(() => app.close());
    const r = await (
      await exchange(
        clientFor(app.port),
        head("POST", "/", { expect: "100-continue", "content-length": "4" }),
        { body: "data" },
      )
    ).done;
    expect(r.head?.status).toBe(200);
    expect(r.body.toString()).toBe("got it");
    expect(app.requests[0]?.headers.expect).toBe("100-continue");
  });
});
