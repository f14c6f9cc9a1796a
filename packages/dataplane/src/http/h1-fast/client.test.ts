import net from "node:net";
import type { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import type { UpstreamEvents } from "../types.js";
import { ClientCall, ClientConnection, requestHead } from "./client.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A ClientConnection to `server`, listening on a free loopback port; both closed after the test. */
async function connectTo(server: net.Server): Promise<ClientConnection> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const socket = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  await new Promise((r) => socket.once("connect", r));
  cleanups.push(() => {
    socket.destroy();
    server.close();
  });
  return new ClientConnection(socket);
}

/** A server answering every request on a connection with `body` (Content-Length), and a client connection to it. */
async function connection(body: string): Promise<ClientConnection> {
  const server = net.createServer((s) => {
    s.on("data", (d: Buffer) => {
      const n = d.toString("latin1").split("\r\n\r\n").length - 1;
      for (let i = 0; i < n; i++) s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    });
  });
  return connectTo(server);
}

/** A bodiless GET on `conn`: the call, its outcome, and its response body once there is one. */
function call(conn: ClientConnection, path: string, released: (c: ClientConnection) => void) {
  let body: Readable | undefined;
  let settle!: (s: string) => void;
  const outcome = new Promise<string>((resolve) => {
    settle = resolve;
  });
  const events: UpstreamEvents = {
    response(_head, b) {
      body = b;
    },
    complete: () => settle("complete"),
    fail: (kind) => settle(`fail ${kind}`),
  };
  const text = requestHead({ method: "GET", path, authority: "x", headers: {} }, "x");
  const c = new ClientCall(conn, "GET", text, true, events, {
    stripInternalResponse: true,
    release: released,
  });
  return { outcome, body: () => body, call: c };
}

describe("ClientCall", () => {
  it("a call cancelled after its response was read whole leaves the connection to the next exchange", async () => {
    const conn = await connection("hello");
    let releases = 0;
    const first = call(conn, "/1", () => releases++);
    // Read whole by the parser (the connection is released), its body not yet consumed.
    await new Promise((r) => setTimeout(r, 50));
    expect(releases).toBe(1);
    expect(conn.usable).toBe(true);
    const second = call(conn, "/2", () => releases++);
    first.call.cancel();
    second.body()?.resume();
    await new Promise((r) => setTimeout(r, 50));
    second.body()?.resume();
    const hung = new Promise((r) => setTimeout(() => r("no outcome in 2 s"), 2_000));
    expect(await Promise.race([second.outcome, hung])).toBe("complete");
    expect(conn.socket.destroyed).toBe(false);
  });
});

/** A server answering the first request on a connection with `writes`, each after its delay (ms). */
async function scripted(writes: [number, string][]): Promise<ClientConnection> {
  const server = net.createServer((s) => {
    s.once("data", async () => {
      for (const [delay, text] of writes) {
        if (delay > 0) await new Promise((r) => setTimeout(r, delay));
        s.write(text);
      }
    });
  });
  return connectTo(server);
}

/** A GET whose events take whole responses; what the call reported, in order. */
function wholeCall(conn: ClientConnection) {
  const seen: string[] = [];
  let done!: () => void;
  const over = new Promise<void>((r) => {
    done = r;
  });
  const events: UpstreamEvents = {
    response(head, body) {
      seen.push(`response ${head.status}`);
      body.on("data", (d: Buffer) => seen.push(`data ${d.toString()}`));
    },
    complete: (trailers) => {
      seen.push(`complete ${JSON.stringify(trailers ?? null)}`);
      done();
    },
    fail: (kind) => {
      seen.push(`fail ${kind}`);
      done();
    },
    whole(head, body, trailers) {
      seen.push(`whole ${head.status} ${body?.toString() ?? "-"} ${JSON.stringify(trailers ?? null)}`);
      done();
    },
  };
  const text = requestHead({ method: "GET", path: "/", authority: "x", headers: {} }, "x");
  new ClientCall(conn, "GET", text, true, events, { stripInternalResponse: true, release: () => {} });
  return { seen, over };
}

describe("ClientCall with whole responses", () => {
  it("a response read whole in one read is handed over whole: head, body, trailers; no body stream", async () => {
    const conn = await scripted([
      [
        0,
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-t: 1\r\n\r\n",
      ],
    ]);
    const { seen, over } = wholeCall(conn);
    await over;
    expect(seen).toEqual(['whole 200 hello world {"x-t":"1"}']);
    expect(conn.usable).toBe(true);
  });

  it("a body that goes on in later reads is streamed, the bytes of the head's read first", async () => {
    const conn = await scripted([
      [0, "HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nabc"],
      [30, "defgh"],
    ]);
    const { seen, over } = wholeCall(conn);
    await over;
    expect(seen).toEqual(["response 200", "data abc", "data defgh", "complete null"]);
  });

  it("a response broken in the read of its head: the head is relayed, then a reset", async () => {
    const conn = await scripted([[0, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"]]);
    const { seen, over } = wholeCall(conn);
    await over;
    expect(seen).toEqual(["response 200", "fail reset"]);
  });
});
