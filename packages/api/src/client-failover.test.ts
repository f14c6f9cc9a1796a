/**
 * WeftClient with several control-plane addresses: a connection failure
 * moves on to the next address (and it stays first afterwards), an HTTP
 * error answer does not; all dead is one WEFT_ERR_UNREACHABLE naming the
 * list; the proxy stream connects to the next replica at once. Real
 * sockets on 127.0.0.1.
 */
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createNetServer, type Server as NetServer } from "node:net";
import { isWeftError } from "@weft/core";
import { afterEach, describe, expect, it } from "vitest";
import { normalizeAddrs, WeftClient } from "./client.js";

const servers: (Server | NetServer)[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    (s as Server).closeAllConnections?.();
    await new Promise((r) => s.close(r));
  }
});

async function listen<T extends Server | NetServer>(s: T): Promise<string> {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return `127.0.0.1:${(s.address() as { port: number }).port}`;
}

/** An address nothing listens on (a server bound, then closed). */
async function deadAddr(): Promise<string> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return `127.0.0.1:${port}`;
}

/** Accepts and resets every connection; counts them. */
async function resetting(): Promise<{ addr: string; hits: () => number }> {
  let hits = 0;
  const s = createNetServer((sock) => {
    hits++;
    sock.resetAndDestroy(); // an RST: a plain close before the request makes fetch wait for its timeout
  });
  return { addr: await listen(s), hits: () => hits };
}

function api(status = 200): Promise<string> {
  return listen(
    createHttpServer((req, res) => {
      if (req.url?.startsWith("/v1/proxy/stream/")) {
        res.writeHead(200, { "content-type": "application/x-ndjson" });
        res.end(`${JSON.stringify({ type: "close", reason: "test" })}\n`);
        return;
      }
      const body =
        status === 200
          ? { version: "t", backend: "etcd", store: "etcd", leader: false, revision: 1, dev: true }
          : { error: { code: "WEFT_ERR_STORE_FAILED", message: "store down" } };
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    }),
  );
}

describe("WeftClient with several addresses", () => {
  it("parses a comma-separated list (deduplicated) and refuses empty entries", () => {
    expect(normalizeAddrs("a:1, http://b:2/ ,a:1")).toEqual(["http://a:1", "http://b:2"]);
    expect(() => normalizeAddrs("a:1,,b:2")).toThrow(/empty entry/);
    expect(normalizeAddrs("127.0.0.1:7400")).toEqual(["http://127.0.0.1:7400"]);
  });

  it("moves to the next address on a connection failure and keeps using it", async () => {
    const bad = await resetting();
    const good = await api();
    const c = new WeftClient({ addr: `${bad.addr},${good}` });
    expect((await c.status()).leader).toBe(false);
    expect(c.baseUrl).toBe(`http://${good}`);
    expect(bad.hits()).toBeGreaterThanOrEqual(1);
    const before = bad.hits();
    await c.status();
    expect(bad.hits()).toBe(before); // the answering replica is now first
  });

  it("a 503 (a replica that cannot serve) moves on too; another HTTP error is returned as is", async () => {
    const failing = await api(503);
    const good = await api();
    const c = new WeftClient({ addr: `${failing},${good}` });
    expect((await c.status()).leader).toBe(false);
    expect(c.baseUrl).toBe(`http://${good}`);
    // All 503: the last answer, as is.
    const both = new WeftClient({ addr: `${failing},${await api(503)}` });
    const err = await both.status().catch((e: unknown) => e);
    expect(isWeftError(err) ? err.code : err).toBe("WEFT_ERR_STORE_FAILED");
    // A 400-class answer comes from a live replica that refused the request: no failover.
    const refusing = await api(409);
    const c2 = new WeftClient({ addr: `${refusing},${good}` });
    const err2 = await c2.status().catch((e: unknown) => e);
    expect((err2 as { status?: number }).status).toBe(409);
    expect(c2.baseUrl).toBe(`http://${refusing}`);
  });

  it("all addresses dead: WEFT_ERR_UNREACHABLE after trying each once", async () => {
    const a = await resetting();
    const b = await deadAddr();
    const c = new WeftClient({ addr: `${a.addr},${b}` });
    const err = await c.status().catch((e: unknown) => e);
    expect(isWeftError(err) ? err.code : err).toBe("WEFT_ERR_UNREACHABLE");
    expect(a.hits()).toBe(1);
  });

  it("one address: the error names it as given (unchanged behaviour)", async () => {
    const b = await deadAddr();
    const c = new WeftClient({ addr: b });
    const err = await c.status().catch((e: unknown) => e);
    expect(isWeftError(err) ? err.code : err).toBe("WEFT_ERR_UNREACHABLE");
    expect(String((err as Error).message)).toContain(b);
    expect(c.baseUrl).toBe(`http://${b}`);
  });

  it("the proxy stream connects to the next replica at once when the first refuses", async () => {
    const dead = await deadAddr();
    const good = await api();
    const c = new WeftClient({ addr: `${dead},${good}` });
    const msgs: unknown[] = [];
    for await (const m of c.proxyStream("web-1", { idleMs: 5_000 })) msgs.push(m);
    expect(msgs).toEqual([{ type: "close", reason: "test" }]);
    expect(c.baseUrl).toBe(`http://${good}`);
  });
});
