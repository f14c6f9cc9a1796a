import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type ResponseHandler, ResponseParser } from "./response.js";

interface Seen {
  status?: number;
  raw?: string[];
  empty?: boolean;
  body: string;
  trailers?: string[] | undefined;
  ended: boolean;
  error?: string;
  closed?: boolean;
}

function recorder(): { seen: Seen; handler: ResponseHandler } {
  const seen: Seen = { body: "", ended: false };
  return {
    seen,
    handler: {
      onHead(status, raw, empty) {
        seen.status = status;
        seen.raw = raw;
        seen.empty = empty;
      },
      onBody(chunk) {
        seen.body += chunk.toString("latin1");
        return true;
      },
      onEnd(trailers) {
        seen.ended = true;
        seen.trailers = trailers;
      },
      onError(detail, closed) {
        seen.error = detail;
        seen.closed = closed;
      },
    },
  };
}

/** Parses `text` fed in the given pieces; `eof`: the connection ends after. */
function parse(pieces: string[], opts: { method?: string; eof?: boolean } = {}) {
  const p = new ResponseParser(16 * 1024);
  const { seen, handler } = recorder();
  p.expect(opts.method ?? "GET", handler);
  for (const piece of pieces) p.execute(Buffer.from(piece, "latin1"));
  if (opts.eof) p.eof();
  return { seen, parser: p };
}

const CHUNKED =
  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n" +
  "5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nGrpc-Status: 0\r\nX-T: v\r\n\r\n";

describe("ResponseParser", () => {
  it("says whether a body can follow the head (a gRPC trailers-only answer is an empty response)", () => {
    const empty = (text: string, method = "GET") => parse([text], { method }).seen.empty;
    expect(empty("HTTP/1.1 200 OK\r\nGrpc-Status: 5\r\nContent-Length: 0\r\n\r\n")).toBe(true);
    expect(empty("HTTP/1.1 204 No Content\r\n\r\n")).toBe(true);
    expect(empty("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n")).toBe(true);
    expect(empty("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", "HEAD")).toBe(true);
    expect(empty("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")).toBe(false);
    expect(empty(CHUNKED)).toBe(false);
    expect(empty("HTTP/1.1 200 OK\r\n\r\n")).toBe(false);
  });

  it("reads a chunked response with extensions and trailers", () => {
    const { seen, parser } = parse([CHUNKED]);
    expect(seen).toMatchObject({ status: 200, raw: ["Transfer-Encoding", "chunked", "X-A", "1"] });
    expect(seen.body).toBe("hello world");
    expect(seen.trailers).toEqual(["Grpc-Status", "0", "X-T", "v"]);
    expect(parser.keepAlive).toBe(true);
    expect(parser.busy).toBe(false);
  });

  it("reads the same whatever the reads' boundaries", () => {
    const whole = parse([CHUNKED]).seen;
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: CHUNKED.length - 1 }), { maxLength: 12 }),
        (cuts) => {
          const at = [0, ...cuts.sort((a, b) => a - b), CHUNKED.length];
          const pieces = at.slice(1).map((end, i) => CHUNKED.slice(at[i], end));
          expect(parse(pieces).seen).toEqual(whole);
        },
      ),
    );
  });

  it("reads Content-Length and close-delimited bodies; honours Connection and Keep-Alive", () => {
    const cl = parse(["HTTP/1.1 200 OK\r\ncontent-length: 3\r\nkeep-alive: timeout=7\r\n\r\nab", "c"]);
    expect(cl.seen).toMatchObject({ body: "abc", ended: true });
    expect(cl.parser.keepAliveHintMs).toBe(7000);
    const close = parse(["HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end"], { eof: true });
    expect(close.seen).toMatchObject({ body: "until the end", ended: true });
    expect(close.parser.keepAlive).toBe(false);
    const old = parse(["HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"]);
    expect(old.seen.ended).toBe(true);
    expect(old.parser.keepAlive).toBe(false);
  });

  it("ends HEAD, 204 and 304 at the head, and skips 1xx", () => {
    expect(parse(["HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"], { method: "HEAD" }).seen.ended).toBe(
      true,
    );
    expect(parse(["HTTP/1.1 204 No Content\r\n\r\n"]).seen).toMatchObject({ status: 204, ended: true });
    expect(parse(["HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n"]).seen.ended).toBe(true);
    const info = parse([
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nz",
    ]);
    expect(info.seen).toMatchObject({ status: 200, body: "z", ended: true });
  });

  it.each([
    ["a garbled status line", "HTTP/1.1 2000 OK\r\n\r\n"],
    ["HTTP/2 in a status line", "HTTP/2 200 OK\r\n\r\n"],
    ["101", "HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n"],
    ["obs-fold", "HTTP/1.1 200 OK\r\nx-a: 1\r\n 2\r\ncontent-length: 0\r\n\r\n"],
    ["whitespace before a colon", "HTTP/1.1 200 OK\r\nx-a : 1\r\ncontent-length: 0\r\n\r\n"],
    ["a bare LF", "HTTP/1.1 200 OK\nx-a: 1\r\ncontent-length: 0\r\n\r\n"],
    ["CL and TE", "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n"],
    ["differing Content-Lengths", "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n"],
    ["a coding other than chunked last", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n"],
    ["a bad chunk size", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"],
    ["a chunk without its CRLF", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nabc"],
  ])("refuses %s as a protocol error; the connection is not reused", (_what, text) => {
    const { seen, parser } = parse([text]);
    expect(seen.error).toBeDefined();
    expect(seen.closed).toBe(false);
    expect(parser.keepAlive).toBe(false);
  });

  it("bytes after a response, never asked for: the response stands, the connection is not reused", () => {
    const { seen, parser } = parse(["HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\naHTTP/1.1 200 OK\r\n\r\n"]);
    expect(seen).toMatchObject({ body: "a", ended: true });
    expect(parser.keepAlive).toBe(false);
  });

  it("a connection closed mid-body, or before a head, is an error saying so", () => {
    const mid = parse(["HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc"], { eof: true });
    expect(mid.seen).toMatchObject({ body: "abc", ended: false, closed: true });
    const before = parse([], { eof: true });
    expect(before.seen).toMatchObject({ ended: false, closed: true });
  });

  it("refuses an endless run of 1xx heads", () => {
    const { seen } = parse(["HTTP/1.1 102 Processing\r\n\r\n".repeat(17)]);
    expect(seen.error).toMatch(/informational/);
    expect(
      parse(["HTTP/1.1 102 Processing\r\n\r\n".repeat(16), "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"])
        .seen.ended,
    ).toBe(true);
  });

  it("refuses a head beyond its limit", () => {
    const { seen } = parse([`HTTP/1.1 200 OK\r\nx-big: ${"a".repeat(17 * 1024)}`]);
    expect(seen.error).toMatch(/too large/);
  });
});
