import http2 from "node:http2";
import { afterEach, describe, expect, it } from "vitest";
import { FLAGS_HEADER } from "./flags.js";
import { settled, startChain, startH2cApp } from "./testdata/chain.js";

/** Hostile HTTP/2 from the app side (h2c outbound listener): bounded, refused, never a crash. */

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function setup() {
  const app = await startH2cApp((stream, headers) => {
    stream.respond({ ":status": 200 });
    stream.end(`app saw ${headers[":method"]} ${headers[":path"]}`);
  });
  cleanup.push(() => app.close());
  const chain = await startChain({ app: { port: app.port, protocol: "http2" } });
  cleanup.push(() => chain.close());
  return { app, chain };
}

function client(port: number): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  cleanup.push(() => session.destroy());
  return session;
}

function call(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders) {
  return new Promise<{
    status?: number;
    headers?: http2.IncomingHttpHeaders;
    body: string;
    rstCode?: number;
  }>((resolve) => {
    const stream = session.request(headers);
    let body = "";
    let h: http2.IncomingHttpHeaders | undefined;
    stream.on("response", (r) => {
      h = r;
    });
    stream.on("data", (d: Buffer) => {
      body += d.toString();
    });
    stream.on("error", () => {});
    stream.on("close", () =>
      resolve({
        ...(h ? { status: Number(h[":status"]), headers: h } : {}),
        body,
        rstCode: stream.rstCode,
      }),
    );
  });
}

describe("hostile HTTP/2 clients", () => {
  it("an oversized header list is refused with a stream reset; nothing reaches the app", async () => {
    const { app, chain } = await setup();
    const session = client(chain.outboundPort);
    // The first exchange makes sure our SETTINGS are acknowledged (they bind only from then on).
    expect((await call(session, { ":path": "/first" })).status).toBe(200);
    const big = await call(session, { ":path": "/big", "x-big": "a".repeat(32 * 1024) });
    expect(big.status).toBeUndefined();
    expect(big.rstCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(app.streams.map((h) => h[":path"])).toEqual(["/first"]);
    // The connection is still usable for others' well-formed requests.
    expect((await call(session, { ":path": "/after" })).status).toBe(200);
  });

  it("too many header fields are refused", async () => {
    const { app, chain } = await setup();
    const session = client(chain.outboundPort);
    await call(session, { ":path": "/first" });
    const headers: http2.OutgoingHttpHeaders = { ":path": "/many" };
    for (let i = 0; i < 300; i++) headers[`x-h${i}`] = "v";
    const r = await call(session, headers);
    expect(r.status).toBeUndefined();
    expect(app.streams.map((h) => h[":path"])).toEqual(["/first"]);
  });

  it("CONNECT is refused with 405", async () => {
    const { app, chain } = await setup();
    const r = await call(client(chain.outboundPort), { ":method": "CONNECT", ":authority": "admin:443" });
    expect(r.status).toBe(405);
    expect(r.headers?.[FLAGS_HEADER]).toBe("DPE");
    expect(app.streams).toEqual([]);
  });

  it("a stream idle for longer than the idle timeout is reset, and the app's request cancelled", async () => {
    let appClosed!: () => void;
    const closed = new Promise<void>((r) => {
      appClosed = r;
    });
    const app = await startH2cApp((stream) => {
      stream.once("close", appClosed);
    });
    cleanup.push(() => app.close());
    const chain = await startChain({
      app: { port: app.port, protocol: "http2" },
      limits: { idleTimeoutMs: 300 },
    });
    cleanup.push(() => chain.close());
    const r = await call(client(chain.outboundPort), { ":path": "/stuck" });
    expect(r.status).toBeUndefined();
    expect(r.rstCode).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
    await closed;
    await settled(() => chain.outbound.inFlight() + chain.inbound.inFlight());
    expect(chain.outbound.inFlight()).toBe(0);
    expect(chain.inbound.inFlight()).toBe(0);
  });

  it("rapid reset: streams opened and cancelled at once leave nothing behind and others are served", async () => {
    const { chain } = await setup();
    const attacker = client(chain.outboundPort);
    for (let i = 0; i < 300; i++) {
      const s = attacker.request({ ":path": `/r/${i}` });
      s.on("error", () => {});
      s.close(http2.constants.NGHTTP2_CANCEL);
    }
    await settled(() => chain.outbound.inFlight() + chain.inbound.inFlight());
    expect(chain.outbound.inFlight()).toBe(0);
    expect(chain.inbound.inFlight()).toBe(0);
    const r = await call(client(chain.outboundPort), { ":path": "/victim" });
    expect(r.status).toBe(200);
    expect(r.body).toBe("app saw GET /victim");
  });
});
