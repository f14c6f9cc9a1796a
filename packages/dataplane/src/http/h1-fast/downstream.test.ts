import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { FastH1Downstream } from "./downstream.js";
import type { FastRequest } from "./parse.js";

/** A FastH1Downstream on one end of a loopback connection; `read()` is what the other end got. */
async function pair(method = "GET") {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => server.once("connection", r));
  const client = net.connect(port, "127.0.0.1");
  const socket = await accepted;
  let got = "";
  client.on("data", (d: Buffer) => {
    got += d.toString("latin1");
  });
  const closed = new Promise<void>((r) => client.once("close", () => r()));
  const done: boolean[] = [];
  const req: FastRequest = {
    method,
    url: "/",
    headers: { host: "x" },
    body: undefined,
    close: false,
    size: 0,
  };
  const down = new FastH1Downstream({ socket, responseDone: (c) => done.push(c) }, req, () => false, false);
  cleanups.push(() => {
    client.destroy();
    socket.destroy();
    server.close();
  });
  const read = async () => {
    await new Promise((r) => setTimeout(r, 30));
    return got;
  };
  return { down, socket, read, closed, done };
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

describe("FastH1Downstream: what it writes", () => {
  it("frames a body by the declared length, in one write with its head", async () => {
    const { down, read, done } = await pair();
    expect(down.respond(200, { "content-length": "5", "x-a": ["1", "2"] }, false)).toBe(true);
    down.write(Buffer.from("hello"));
    down.end(undefined);
    const text = await read();
    expect(text).toMatch(
      /^HTTP\/1\.1 200 OK\r\nx-a: 1\r\nx-a: 2\r\ndate: .*\r\ncontent-length: 5\r\n\r\nhello$/,
    );
    expect(done).toEqual([false]);
  });

  it("chunks a body of unknown length, with trailers at the end", async () => {
    const { down, read } = await pair();
    down.respond(200, {}, false);
    down.write("ab");
    down.write(Buffer.from("cde"));
    down.end({ "x-t": "1" });
    expect(await read()).toMatch(
      /transfer-encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\nx-t: 1\r\n\r\n$/,
    );
  });

  it("HEAD keeps the declared length and sends no body; an empty 200 says content-length: 0", async () => {
    const head = await pair("HEAD");
    head.down.respond(200, { "content-length": "11" }, true);
    expect(await head.read()).toMatch(/content-length: 11\r\n\r\n$/);
    const empty = await pair();
    empty.down.respond(200, {}, true);
    expect(await empty.read()).toMatch(/content-length: 0\r\n\r\n$/);
    const none = await pair();
    none.down.respond(204, { "content-length": "3" }, true);
    expect(await none.read()).not.toMatch(/content-length/);
  });

  it("refuses a head it cannot write: a bad length, a bad name or value (nothing goes out)", async () => {
    const { down, read } = await pair();
    expect(down.respond(200, { "content-length": "5x" }, false)).toBe(false);
    expect(down.respond(200, { "content-length": ["1", "2"] }, false)).toBe(false);
    expect(down.respond(200, { "bad name": "v" }, false)).toBe(false);
    expect(down.respond(200, { "x-a": "a\r\nx-injected: 1" }, false)).toBe(false);
    expect(down.headersSent).toBe(false);
    expect(await read()).toBe("");
  });

  it("closes the connection rather than send more than the declared length, or less", async () => {
    const more = await pair();
    more.down.respond(200, { "content-length": "2" }, false);
    more.down.write(Buffer.from("abc"));
    await more.closed;
    expect(await more.read()).not.toContain("abc");
    const less = await pair();
    less.down.respond(200, { "content-length": "5" }, false);
    less.down.write(Buffer.from("ab"));
    less.down.end(undefined);
    await less.closed;
  });

  it("a local reply carries its length and flags", async () => {
    const { down, read } = await pair();
    down.localReply(503, "no healthy upstream", "UH");
    const text = await read();
    expect(text).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(text).toMatch(/\r\ncontent-length: 19\r\n\r\nno healthy upstream$/);
    expect(text).toMatch(/\r\nx-weft-response-flags: UH\r\n/);
  });
});

describe("FastH1Downstream.respondWhole: a whole response in one piece", () => {
  /** What the client reads for this response sent whole, and sent as respond + write + end. */
  async function both(method: string, status: number, headers: Record<string, string>, body: Buffer) {
    const whole = await pair(method);
    expect(whole.down.respondWhole(status, headers, body, { "x-t": "1" })).toBe(true);
    const parts = await pair(method);
    parts.down.respond(status, headers, false);
    parts.down.write(body);
    parts.down.end({ "x-t": "1" });
    const noDate = (t: string) => t.replace(/\r\ndate: [^\r]*/, "");
    return { whole: noDate(await whole.read()), parts: noDate(await parts.read()), done: whole.done };
  }

  it("writes the same bytes as respond, write and end: declared length (small and large), chunked with trailers, HEAD", async () => {
    const small = await both("GET", 200, { "content-length": "5" }, Buffer.from("hello"));
    expect(small.whole).toMatch(/content-length: 5\r\n\r\nhello$/);
    expect(small.whole).toBe(small.parts);
    expect(small.done).toEqual([false]);
    // Bytes that are not text go through unchanged, beyond the inline size too.
    const bytes = Buffer.from(Array.from({ length: 10_000 }, (_, i) => (i * 7) % 256));
    const large = await both("GET", 200, { "content-length": "10000" }, bytes);
    expect(large.whole).toBe(large.parts);
    expect(Buffer.from(large.whole, "latin1").subarray(-10_000).equals(bytes)).toBe(true);
    const chunked = await both("GET", 200, {}, Buffer.from("abc"));
    expect(chunked.whole).toMatch(/transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n$/);
    expect(chunked.whole).toBe(chunked.parts);
    const empty = await both("GET", 200, {}, Buffer.alloc(0));
    expect(empty.whole).toMatch(/transfer-encoding: chunked\r\n\r\n0\r\nx-t: 1\r\n\r\n$/);
    expect(empty.whole).toBe(empty.parts);
    const head = await both("HEAD", 200, { "content-length": "5" }, Buffer.alloc(0));
    expect(head.whole).toMatch(/content-length: 5\r\n\r\n$/);
    expect(head.whole).toBe(head.parts);
  });

  it("closes the connection when the body is not the length declared; refuses a head it cannot write", async () => {
    const short = await pair();
    expect(short.down.respondWhole(200, { "content-length": "5" }, Buffer.from("ab"), undefined)).toBe(true);
    await short.closed;
    expect(await short.read()).toBe("");
    const bad = await pair();
    expect(bad.down.respondWhole(200, { "content-length": "5x" }, Buffer.from("ab"), undefined)).toBe(false);
    expect(bad.down.headersSent).toBe(false);
  });
});
