import http2 from "node:http2";
import net from "node:net";
import type { TLSSocket } from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { clearSvidCache } from "../identity/svid.js";
import { createMtlsServer, isPeerRefused } from "../transport/mtls.js";
import { Http2PeerPool } from "./h2-peer-pool.js";
import { deadPort, listen, settled, testCerts, trackSockets } from "./testdata/chain.js";

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
  clearSvidCache();
});

/** An "api" peer answering every stream with 200 and counting the mTLS connections it accepted. */
async function peer() {
  const certs = await testCerts();
  const h2 = http2.createServer();
  const sessions: http2.ServerHttp2Session[] = [];
  h2.on("session", (s) => {
    sessions.push(s);
    s.on("error", () => {});
  });
  h2.on("stream", (stream) => {
    stream.respond({ ":status": 200 });
    stream.end("ok");
  });
  const accepted: TLSSocket[] = [];
  const server = createMtlsServer({
    source: certs.source("api"),
    alpn: ["h2"],
    onConnection: (socket) => {
      accepted.push(socket);
      h2.emit("connection", socket);
    },
  });
  const sockets = trackSockets(server, "secureConnection");
  const port = await listen(server);
  cleanup.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port, accepted, sessions };
}

async function pool(idleTimeoutMs?: number) {
  const certs = await testCerts();
  const p = new Http2PeerPool({
    source: certs.source("web"),
    ...(idleTimeoutMs !== undefined ? { idleTimeoutMs } : {}),
  });
  cleanup.push(() => p.destroy());
  return p;
}

function get(session: http2.ClientHttp2Session): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ":path": "/" });
    s.on("response", (h) => resolve(Number(h[":status"])));
    s.on("error", reject);
    s.resume();
  });
}

describe("Http2PeerPool", () => {
  it("concurrent callers share one pending connect and one session", async () => {
    const srv = await peer();
    const p = await pool();
    const ep = { address: "127.0.0.1", port: srv.port };
    const sessions = await Promise.all(Array.from({ length: 10 }, () => p.session(ep, "api", 2_000)));
    expect(new Set(sessions).size).toBe(1);
    // (In TLS 1.3 the client is done before the server has accepted: a request settles that.)
    expect(await get(sessions[0] as http2.ClientHttp2Session)).toBe(200);
    expect(srv.accepted).toHaveLength(1);
    expect(srv.accepted[0]?.alpnProtocol).toBe("h2");
    expect(await p.session(ep, "api", 2_000)).toBe(sessions[0]);
    expect(p.size).toBe(1);
  });

  it("a session whose connection dies is evicted; the next caller connects anew", async () => {
    const srv = await peer();
    const p = await pool();
    const ep = { address: "127.0.0.1", port: srv.port };
    const first = await p.session(ep, "api", 2_000);
    await get(first);
    srv.accepted[0]?.destroy();
    await settled(() => p.size);
    expect(p.size).toBe(0);
    const second = await p.session(ep, "api", 2_000);
    expect(second).not.toBe(first);
    expect(await get(second)).toBe(200);
    expect(srv.accepted).toHaveLength(2);
  });

  it("a GOAWAY from the peer evicts the session", async () => {
    const srv = await peer();
    const p = await pool();
    const ep = { address: "127.0.0.1", port: srv.port };
    const first = await p.session(ep, "api", 2_000);
    await get(first);
    srv.sessions[0]?.goaway();
    await settled(() => p.size);
    const second = await p.session(ep, "api", 2_000);
    expect(second).not.toBe(first);
  });

  it("refuses a peer with another identity, a refused port and a silent one, with distinct errors", async () => {
    const srv = await peer();
    const p = await pool();
    const wrong = await p
      .session({ address: "127.0.0.1", port: srv.port }, "db", 2_000)
      .catch((e: unknown) => e);
    expect(isPeerRefused(wrong)).toBe(true);
    expect(wrong).toMatchObject({ reason: "identity-mismatch" });

    const refused = await p
      .session({ address: "127.0.0.1", port: await deadPort() }, "api", 2_000)
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: "WEFT_ERR_UNAVAILABLE" });

    const silent = net.createServer(() => {});
    const silentSockets = trackSockets(silent);
    const silentPort = await listen(silent);
    cleanup.push(() => {
      for (const s of silentSockets) s.destroy();
      silent.close();
    });
    const timedOut = await p
      .session({ address: "127.0.0.1", port: silentPort }, "api", 200)
      .catch((e: unknown) => e);
    expect(timedOut).toMatchObject({ code: "WEFT_ERR_TIMEOUT" });
    expect(p.size).toBe(0);
  });

  it("an idle session is closed after the idle timeout", async () => {
    const srv = await peer();
    const p = await pool(200);
    await p.session({ address: "127.0.0.1", port: srv.port }, "api", 2_000);
    expect(p.size).toBe(1);
    await settled(() => p.size, 100, 3_000);
    expect(p.size).toBe(0);
  });

  it("close() waits for sessions to close; afterwards no session is handed out", async () => {
    const srv = await peer();
    const p = await pool();
    const s = await p.session({ address: "127.0.0.1", port: srv.port }, "api", 2_000);
    await p.close();
    expect(s.closed).toBe(true);
    const after = await p
      .session({ address: "127.0.0.1", port: srv.port }, "api", 2_000)
      .catch((e: unknown) => e);
    expect(after).toMatchObject({ code: "WEFT_ERR_UNAVAILABLE" });
  });
});
