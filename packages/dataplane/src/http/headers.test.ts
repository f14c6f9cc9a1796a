import { describe, expect, it } from "vitest";
import { FlagSet } from "./flags.js";
import {
  cleanTrailers,
  endToEnd,
  h1RequestHead,
  h2RequestHead,
  isGrpcContentType,
  toH2RequestHeaders,
  validAuthority,
} from "./headers.js";
import { encodeGrpcMessage, localReply } from "./local-reply.js";

const h1 = (
  method: string,
  url: string,
  headers: Record<string, string | string[]>,
  rawHeaders?: string[],
) => ({
  method,
  url,
  headers,
  rawHeaders:
    rawHeaders ??
    Object.entries(headers).flatMap(([k, v]) => (Array.isArray(v) ? v.flatMap((x) => [k, x]) : [k, v])),
});

describe("endToEnd", () => {
  it("drops hop-by-hop fields, fields named in Connection, pseudo-headers and (when asked) internal ones", () => {
    const out = endToEnd(
      {
        ":path": "/",
        connection: "close, X-Hop",
        "keep-alive": "timeout=5",
        "proxy-connection": "keep-alive",
        "transfer-encoding": "chunked",
        upgrade: "websocket",
        "http2-settings": "AAA",
        "x-hop": "1",
        "x-weft-anything": "1",
        "x-forwarded-client-cert": "By=x",
        "set-cookie": ["a=1", "b=2"],
        accept: "*/*",
        absent: undefined,
      },
      { stripInternal: true },
    );
    expect(out).toEqual({ "set-cookie": ["a=1", "b=2"], accept: "*/*" });
  });

  it.each([
    ["trailers", "trailers"],
    ["trailers, deflate;q=0.5", "trailers"],
    ["gzip", undefined],
  ])("te: %s → %s", (te, expected) => {
    expect(endToEnd({ te }, { stripInternal: false }).te).toBe(expected);
  });

  it("keeps internal headers when not asked to strip them (responses from a peer carry flags)", () => {
    expect(endToEnd({ "x-weft-response-flags": "UF" }, { stripInternal: false })).toEqual({
      "x-weft-response-flags": "UF",
    });
  });
});

describe("h1RequestHead", () => {
  it("translates an origin-form request", () => {
    const r = h1RequestHead(
      h1("POST", "/a?b=1", { host: "api:8080", "content-length": "3", expect: "100-continue" }),
      {
        stripInternal: true,
      },
    );
    expect(r).toEqual({
      ok: true,
      head: { method: "POST", path: "/a?b=1", authority: "api:8080", headers: { "content-length": "3" } },
    });
  });

  it.each([
    ["absolute-form", "GET", "http://api.mesh/x", { host: "other" }, { path: "/x", authority: "api.mesh" }],
    [
      "absolute-form with query only",
      "GET",
      "http://api.mesh?q",
      { host: "o" },
      { path: "/?q", authority: "api.mesh" },
    ],
    ["asterisk-form", "OPTIONS", "*", { host: "api" }, { path: "*", authority: "api" }],
  ] as const)("%s", (_name, method, url, headers, expected) => {
    const r = h1RequestHead(h1(method, url, headers), { stripInternal: true });
    expect(r.ok && { path: r.head.path, authority: r.head.authority }).toEqual(expected);
  });

  it.each([
    ["CONNECT", h1("CONNECT", "api:443", { host: "api:443" }), 405],
    ["two Host fields", h1("GET", "/", { host: "a" }, ["Host", "a", "host", "b"]), 400],
    [
      "a transfer-coding other than chunked",
      h1("POST", "/", { host: "a", "transfer-encoding": "gzip, chunked" }),
      501,
    ],
    ["asterisk-form for GET", h1("GET", "*", { host: "a" }), 400],
    ["https absolute-form", h1("GET", "https://a/x", { host: "a" }), 400],
    ["userinfo in the authority", h1("GET", "http://u@a/x", { host: "a" }), 400],
    ["a Host with a path", h1("GET", "/", { host: "a/b" }), 400],
    ["a relative target", h1("GET", "x/y", { host: "a" }), 400],
  ] as const)("refuses %s", (_name, req, status) => {
    const r = h1RequestHead(req, { stripInternal: true });
    expect(r).toMatchObject({ ok: false, status });
  });
});

describe("h2RequestHead", () => {
  it("prefers :authority over host and strips internal fields", () => {
    const r = h2RequestHead(
      {
        ":method": "GET",
        ":path": "/p",
        ":scheme": "http",
        ":authority": "api",
        host: "other",
        "x-weft-x": "1",
      },
      { stripInternal: true },
    );
    expect(r).toEqual({ ok: true, head: { method: "GET", path: "/p", authority: "api", headers: {} } });
  });

  it.each([
    ["CONNECT", { ":method": "CONNECT", ":authority": "a:443" }, 405],
    ["extended CONNECT", { ":method": "GET", ":path": "/", ":protocol": "websocket" }, 405],
    ["no :path", { ":method": "GET" }, 400],
    ["a :path without a leading slash", { ":method": "GET", ":path": "x" }, 400],
    ["a bad :authority", { ":method": "GET", ":path": "/", ":authority": "a b" }, 400],
  ] as const)("refuses %s", (_name, headers, status) => {
    expect(h2RequestHead(headers, { stripInternal: true })).toMatchObject({ ok: false, status });
  });

  it("builds HTTP/2 request headers with scheme http and a fallback authority", () => {
    expect(
      toH2RequestHeaders({ method: "GET", path: "/", authority: undefined, headers: { a: "1" } }, "api"),
    ).toEqual({
      ":method": "GET",
      ":path": "/",
      ":scheme": "http",
      ":authority": "api",
      a: "1",
    });
  });
});

describe("small rules", () => {
  it("trailers lose framing, routing and internal fields; nothing left → undefined", () => {
    expect(cleanTrailers({ "grpc-status": "0", "content-length": "5", host: "x", "x-weft-a": "1" })).toEqual({
      "grpc-status": "0",
    });
    expect(cleanTrailers({ "content-length": "5" })).toBeUndefined();
    expect(cleanTrailers(undefined)).toBeUndefined();
  });

  it.each([
    ["api", true],
    ["api.mesh:8080", true],
    ["[::1]:80", true],
    ["a b", false],
    ["u@a", false],
    ["a/b", false],
    ["", false],
  ])("authority %j valid: %s", (value, ok) => {
    expect(validAuthority(value)).toBe(ok);
  });

  it.each([
    ["application/grpc", true],
    ["application/grpc+proto", true],
    ["application/grpc; charset=x", true],
    ["application/grpc-web", false],
    ["application/json", false],
    [undefined, false],
  ])("content-type %s is gRPC: %s", (ct, expected) => {
    expect(isGrpcContentType(ct)).toBe(expected);
  });

  it("grpc-message is percent-encoded UTF-8", () => {
    expect(encodeGrpcMessage("plain text")).toBe("plain text");
    expect(encodeGrpcMessage("100% «ok»\n")).toBe("100%25 %C2%ABok%C2%BB%0A");
  });

  it("a local reply is text/plain with flags, or trailers-only gRPC with the mapped status", () => {
    expect(localReply(503, "no healthy upstream for api", "UF", false)).toEqual({
      status: 503,
      headers: {
        "x-weft-response-flags": "UF",
        "content-type": "text/plain; charset=utf-8",
        "content-length": "27",
      },
      body: "no healthy upstream for api",
      endStream: false,
    });
    expect(localReply(504, "upstream request timeout", "UT", true)).toEqual({
      status: 200,
      headers: {
        "x-weft-response-flags": "UT",
        "content-type": "application/grpc",
        "grpc-status": "4",
        "grpc-message": "upstream request timeout",
      },
      body: "",
      endStream: true,
    });
    expect(localReply(413, "too large", "-", false).headers["x-weft-response-flags"]).toBeUndefined();
  });

  it("flags render as Envoy does", () => {
    expect(new FlagSet().toString()).toBe("-");
    expect(new FlagSet().add("UF").add("UF").add("URX").toString()).toBe("UF,URX");
    expect(new FlagSet().add("").add("-").toString()).toBe("-");
  });
});
