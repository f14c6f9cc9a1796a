import { describe, expect, it } from "vitest";
import { parseRequest } from "./parse.js";

const LIMITS = { maxHeaderBytes: 16 * 1024, maxHeaderCount: 100 };
const parse = (s: string) => parseRequest(Buffer.from(s, "latin1"), LIMITS);

describe("parseRequest: takes only unambiguous, complete HTTP/1.1 requests", () => {
  it("takes a plain GET: lowercase names, trimmed values, size of the head", () => {
    const text = "GET /a/b?c=1 HTTP/1.1\r\nHost: x\r\nX-Mixed-Case:  v 1 \t\r\nAccept: */*\r\n\r\n";
    expect(parse(`${text}GET /next HTTP/1.1\r\n`)).toEqual({
      method: "GET",
      url: "/a/b?c=1",
      headers: { host: "x", "x-mixed-case": "v 1", accept: "*/*" },
      body: undefined,
      close: false,
      size: text.length,
    });
  });

  it("takes a Content-Length body received whole, and Connection: close", () => {
    const text = "POST /p HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nconnection: Close\r\n\r\nhello";
    const r = parse(`${text}GET`);
    expect(r?.body?.toString()).toBe("hello");
    expect(r?.close).toBe(true);
    expect(r?.size).toBe(text.length);
    expect(parse("POST /p HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")?.body).toBeUndefined();
  });

  // Each of these goes to node:http, which serves or refuses it as it always did.
  it.each([
    ["an incomplete head", "GET / HTTP/1.1\r\nhost: x\r\n"],
    ["a body not yet received whole", "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc"],
    ["HTTP/1.0", "GET / HTTP/1.0\r\nhost: x\r\n\r\n"],
    ["an absolute-form target", "GET http://x/ HTTP/1.1\r\nhost: x\r\n\r\n"],
    ["OPTIONS *", "OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n"],
    ["CONNECT", "CONNECT x:443 HTTP/1.1\r\nhost: x\r\n\r\n"],
    ["a lowercase method", "get / HTTP/1.1\r\nhost: x\r\n\r\n"],
    ["no Host", "GET / HTTP/1.1\r\naccept: */*\r\n\r\n"],
    ["Transfer-Encoding", "POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"],
    ["CL and TE", "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\nabc"],
    ["two Content-Lengths", "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\na"],
    ["a Content-Length that is not digits", "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: +1\r\n\r\na"],
    ["a repeated field", "GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\r\nx-a: 2\r\n\r\n"],
    ["a repeated Host", "GET / HTTP/1.1\r\nhost: x\r\nHost: y\r\n\r\n"],
    ["Expect", "POST / HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 1\r\n\r\na"],
    ["Upgrade", "GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"],
    ["another Connection value", "GET / HTTP/1.1\r\nhost: x\r\nconnection: keep-alive, x-a\r\n\r\n"],
    ["obs-fold", "GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n  2\r\n\r\n"],
    ["whitespace before the colon", "GET / HTTP/1.1\r\nhost: x\r\nx-a : 1\r\n\r\n"],
    ["a bare LF", "GET / HTTP/1.1\r\nhost: x\nx-a: 1\r\n\r\n"],
    ["a bare CR", "GET / HTTP/1.1\r\nhost: x\rx-a: 1\r\n\r\n"],
    ["a control character", "GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\x002\r\n\r\n"],
    ["obs-text", "GET / HTTP/1.1\r\nhost: x\r\nx-a: caf\xe9\r\n\r\n"],
    ["a space in the target", "GET /a b HTTP/1.1\r\nhost: x\r\n\r\n"],
    ["__proto__", "GET / HTTP/1.1\r\nhost: x\r\n__proto__: 1\r\n\r\n"],
  ])("hands over %s", (_what, text) => {
    expect(parse(text)).toBeUndefined();
  });

  it("hands over heads beyond the byte and field limits", () => {
    const fields = Array.from({ length: 5 }, (_, i) => `x-${i}: v\r\n`).join("");
    const text = `GET / HTTP/1.1\r\nhost: x\r\n${fields}\r\n`;
    expect(parseRequest(Buffer.from(text), { maxHeaderBytes: 1024, maxHeaderCount: 6 })).toBeDefined();
    expect(parseRequest(Buffer.from(text), { maxHeaderBytes: 1024, maxHeaderCount: 5 })).toBeUndefined();
    expect(
      parseRequest(Buffer.from(text), { maxHeaderBytes: text.length - 1, maxHeaderCount: 100 }),
    ).toBeUndefined();
  });
});
