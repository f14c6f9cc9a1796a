import net from "node:net";
import type { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import type { UpstreamEvents } from "../types.js";
import { ClientCall, ClientConnection, requestHead } from "./client.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A server answering every request on a connection with `body` (Content-Length), and a client connection to it. */
async function connection(body: string): Promise<ClientConnection> {
  const server = net.createServer((s) => {
    s.on("data", (d: Buffer) => {
      const n = d.toString("latin1").split("\r\n\r\n").length - 1;
      for (let i = 0; i < n; i++) s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const socket = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  await new Promise((r) => socket.once("connect", r));
  cleanups.push(() => {
    socket.destroy();
    server.close();
  });
  return new ClientConnection(socket);
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
