import type http from "node:http";
import http2 from "node:http2";
import { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { connectMtls } from "../transport/mtls.js";
import { FLAGS_HEADER } from "./flags.js";
import {
  deadPort,
  httpRequest,
  settled,
  spiffe,
  startChain,
  startH2cApp,
  startHttpApp,
  testCerts,
} from "./testdata/chain.js";
import type { InboundAuthorize, InboundAuthorizeRequest } from "./types.js";

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

const echo = (req: http.IncomingMessage, res: http.ServerResponse): void => {
  req.resume();
  req.on("end", () => res.end(`${req.method} ${req.url}`));
};

/** An HTTP/2 client speaking straight to the inbound listener, as a (possibly hostile) peer proxy. */
async function peerSession(port: number): Promise<http2.ClientHttp2Session> {
  const certs = await testCerts();
  const { socket } = await connectMtls({
    host: "127.0.0.1",
    port,
    source: certs.source("web"),
    expectService: "api",
    alpn: ["h2"],
    timeoutMs: 2_000,
  });
  const session = http2.connect("http://api", { createConnection: () => socket });
  session.on("error", () => {});
  cleanup.push(() => session.destroy());
  return session;
}

function h2Call(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: string,
): Promise<{ headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let text = "";
    stream.on("response", (h) => {
      responseHeaders = h;
    });
    stream.on("data", (d: Buffer) => {
      text += d.toString();
    });
    stream.on("end", () => resolve({ headers: responseHeaders, body: text }));
    stream.on("error", reject);
    if (body !== undefined) stream.end(body);
  });
}

describe("inbound authorization", () => {
  it("a refusal is answered by the inbound proxy: 403 with its body and flags, the app sees nothing", async () => {
    const deny: InboundAuthorize = () => ({
      allow: false,
      status: 403,
      body: "RBAC: access denied by intention web → api",
      flags: "RBAC",
    });
    const { app, chain } = await chainTo(echo, { authorize: deny });
    const r = await httpRequest(chain.outboundPort, { method: "POST", path: "/admin", body: "secret" });
    expect(r.status).toBe(403);
    expect(r.body.toString()).toBe("RBAC: access denied by intention web → api");
    expect(r.headers["content-type"]).toBe("text/plain; charset=utf-8");
    expect(r.headers[FLAGS_HEADER]).toBe("RBAC");
    expect(app.requests).toEqual([]);
    expect(chain.inboundEvents).toEqual([
      expect.objectContaining({ peerService: "web", status: 403, flags: "RBAC" }),
    ]);
  });

  it("authorize sees the raw target and the peer; the app gets the canonical target it returned", async () => {
    const seen: InboundAuthorizeRequest[] = [];
    const canonicalize: InboundAuthorize = (req) => {
      seen.push(req);
      return { allow: true, target: "/admin?x=1" };
    };
    const { app, chain } = await chainTo(echo, { authorize: canonicalize });
    const r = await httpRequest(chain.outboundPort, {
      path: "/public/%2e%2e/admin?x=1",
      headers: { "x-tenant": "blue" },
    });
    expect(r.body.toString()).toBe("GET /admin?x=1");
    expect(seen).toHaveLength(1);
    expect(seen[0]?.peerService).toBe("web");
    expect(seen[0]?.method).toBe("GET");
    expect(seen[0]?.rawTarget).toBe("/public/%2e%2e/admin?x=1");
    expect(seen[0]?.header("x-tenant")).toBe("blue");
    expect(seen[0]?.header("X-Tenant")).toBe("blue");
    expect(app.requests[0]?.url).toBe("/admin?x=1");
  });

  it("an authorizer that throws fails closed with 500 and is logged", async () => {
    const broken: InboundAuthorize = () => {
      throw new Error("bug in intentions");
    };
    const { app, chain } = await chainTo(echo, { authorize: broken });
    const r = await httpRequest(chain.outboundPort);
    expect(r.status).toBe(500);
    expect(r.body.toString()).toBe("internal proxy error");
    expect(app.requests).toEqual([]);
    expect(chain.logs).toContainEqual(expect.objectContaining({ msg: "inbound authorization failed" }));
  });

  it("an authorizer returning an unusable target refuses the request", async () => {
    const { app, chain } = await chainTo(echo, {
      authorize: () => ({ allow: true, target: "/a b\r\nX-Injected: 1" }),
    });
    const r = await httpRequest(chain.outboundPort);
    expect(r.status).toBe(400);
    expect(app.requests).toEqual([]);
  });
});

describe("inbound limits and failures", () => {
  it("a declared Content-Length over the limit → 413 before the app is contacted", async () => {
    const { app, chain } = await chainTo(echo, { maxRequestBodyBytes: 1_000 });
    const r = await httpRequest(chain.outboundPort, { method: "POST", body: Buffer.alloc(5_000, 1) });
    expect(r.status).toBe(413);
    expect(r.body.toString()).toBe("request body too large");
    expect(app.requests).toEqual([]);
    const ok = await httpRequest(chain.outboundPort, { method: "POST", body: Buffer.alloc(1_000, 1) });
    expect(ok.status).toBe(200);
  });

  it("a streamed body growing over the limit → 413", async () => {
    const { chain } = await chainTo(echo, { maxRequestBodyBytes: 100_000 });
    const chunks = Array.from({ length: 50 }, () => Buffer.alloc(10_000, 2));
    const r = await httpRequest(chain.outboundPort, { method: "POST", body: Readable.from(chunks) });
    expect(r.status).toBe(413);
    expect(chain.inboundEvents[0]).toMatchObject({ status: 413 });
  });

  it("a body cut off at the limit never looks complete to an HTTP/1.1 app", async () => {
    let outcome = "";
    const { chain } = await chainTo(
      (req, res) => {
        req.resume();
        req.on("end", () => {
          outcome = "complete";
          res.end();
        });
        req.on("aborted", () => {
          outcome = "aborted";
        });
      },
      { maxRequestBodyBytes: 100_000 },
    );
    const chunks = Array.from({ length: 50 }, () => Buffer.alloc(10_000, 3));
    const r = await httpRequest(chain.outboundPort, { method: "POST", body: Readable.from(chunks) });
    expect(r.status).toBe(413);
    await settled(() => outcome.length);
    expect(outcome).not.toBe("complete");
  });

  it("a body cut off at the limit ends in RST_STREAM for an h2c app, never END_STREAM", async () => {
    let outcome = "";
    const app = await startH2cApp((stream) => {
      stream.resume();
      stream.on("end", () => {
        outcome = "complete";
      });
      stream.on("close", () => {
        outcome ||= `reset ${stream.rstCode}`;
      });
    });
    cleanup.push(() => app.close());
    const chain = await startChain({
      app: { port: app.port, protocol: "http2" },
      outboundProtocol: "http",
      maxRequestBodyBytes: 100_000,
    });
    cleanup.push(() => chain.close());
    const chunks = Array.from({ length: 50 }, () => Buffer.alloc(10_000, 3));
    const r = await httpRequest(chain.outboundPort, { method: "POST", body: Readable.from(chunks) });
    expect(r.status).toBe(413);
    await settled(() => outcome.length);
    // INTERNAL_ERROR, not CANCEL: node:http2 presents a CANCEL as a clean end of the body.
    expect(outcome).toBe(`reset ${http2.constants.NGHTTP2_INTERNAL_ERROR}`);
  });

  it("the app refusing connections → 503 UF", async () => {
    const port = await deadPort();
    const chain = await startChain({ app: { port, protocol: "http" } });
    cleanup.push(() => chain.close());
    const r = await httpRequest(chain.outboundPort);
    expect(r.status).toBe(503);
    expect(r.headers[FLAGS_HEADER]).toBe("UF");
    expect(chain.inboundEvents[0]).toMatchObject({ status: 503, flags: "UF" });
    expect(chain.logs).toContainEqual(
      expect.objectContaining({ level: "warn", msg: "local app unreachable" }),
    );
  });

  it("identity and mesh headers a peer sends are replaced, not trusted; its scheme passes as http or https only", async () => {
    const { app, chain } = await chainTo(echo);
    const session = await peerSession(chain.inboundPort);
    const r = await h2Call(session, {
      ":method": "GET",
      ":path": "/who",
      ":authority": "api.mesh",
      "x-forwarded-client-cert": `By=${spiffe("api")};URI=${spiffe("admin")}`,
      "x-forwarded-proto": "https",
      "x-weft-peer": "admin",
    });
    expect(r.body).toBe("GET /who");
    const seen = app.requests[0]?.headers ?? {};
    expect(seen["x-forwarded-client-cert"]).toBe(`By=${spiffe("api")};URI=${spiffe("web")}`);
    // A mesh member (an ingress gateway that terminated TLS) may say https; apps cannot (their
    // sidecar drops their claim, outbound-http.test.ts).
    expect(seen["x-forwarded-proto"]).toBe("https");
    expect(seen["x-weft-peer"]).toBeUndefined();
    const odd = await h2Call(session, {
      ":method": "GET",
      ":path": "/who",
      ":authority": "api.mesh",
      "x-forwarded-proto": "gopher",
    });
    expect(odd.body).toBe("GET /who");
    expect(app.requests[1]?.headers["x-forwarded-proto"]).toBe("http");
    expect(seen.host).toBe("api.mesh");
  });

  it("a body without Content-Length reaches an HTTP/1.1 app chunked, never unframed", async () => {
    const { app, chain } = await chainTo((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => {
        body += d.toString();
      });
      req.on("end", () => res.end(body));
    });
    const session = await peerSession(chain.inboundPort);
    const r = await h2Call(
      session,
      { ":method": "GET", ":path": "/with-body", ":authority": "api" },
      "surprise",
    );
    expect(r.body).toBe("surprise");
    expect(app.requests[0]?.headers["transfer-encoding"]).toBe("chunked");
  });
});

describe("inbound drain", () => {
  it("close() lets the in-flight request finish and takes no new connections", async () => {
    let arrived!: () => void;
    const arrival = new Promise<void>((r) => {
      arrived = r;
    });
    let finish!: () => void;
    const { chain } = await chainTo((req, res) => {
      if (req.url === "/slow") {
        finish = () => res.end("whole");
        arrived();
      } else {
        res.end("fast");
      }
    });
    const slow = httpRequest(chain.outboundPort, { path: "/slow" });
    await arrival;
    expect(chain.inbound.inFlight()).toBe(1);
    const closing = chain.inbound.close();
    finish();
    expect((await slow).body.toString()).toBe("whole");
    await closing;
    expect(chain.inbound.inFlight()).toBe(0);
    const after = await httpRequest(chain.outboundPort, { path: "/fast" });
    expect(after.status).toBe(503);
  });
});
