import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { IDLE_MS, nodeFetch } from "./node-fetch.js";

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** A server counting the connections it accepted; `handle` answers. */
async function serve(handle: Parameters<typeof createServer>[1]) {
  const server = createServer(handle);
  const sockets: Socket[] = [];
  server.on("connection", (s) => sockets.push(s));
  servers.push(server);
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  server.unref();
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, sockets };
}

describe("nodeFetch (the control-plane client's transport)", () => {
  it("sends method, headers and body; reads status, headers and text; reuses one connection, even across a long answer", async () => {
    const { base, sockets } = await serve((req, res) => {
      let body = "";
      req.setEncoding("utf8").on("data", (c) => {
        body += c;
      });
      req.on("end", () => {
        const answer = () => {
          res.writeHead(req.url === "/missing" ? 404 : 200, { "x-echo": req.headers["x-test"] ?? "-" });
          res.end(`${req.method} ${req.url} ${req.headers["content-length"] ?? "-"} ${body}`);
        };
        // Longer than the client's idle timeout: a connection in use is never closed for idleness.
        if (req.url === "/slow") setTimeout(answer, IDLE_MS + 500);
        else answer();
      });
    });
    const a = await nodeFetch(new URL(`${base}/a`), { headers: { "x-test": "1" } });
    expect([a.ok, a.status, a.headers.get("X-Echo"), await a.text()]).toEqual([true, 200, "1", "GET /a - "]);
    const b = await nodeFetch(new URL(`${base}/b`), { method: "POST", body: "héllo" });
    expect(await b.text()).toBe("POST /b 6 héllo");
    const c = await nodeFetch(new URL(`${base}/missing`), {});
    expect([c.ok, c.status, c.headers.get("x-absent")]).toEqual([false, 404, null]);
    await c.text();
    const slow = await nodeFetch(new URL(`${base}/slow`), {});
    expect(await slow.text()).toBe("GET /slow - ");
    expect(sockets.length).toBe(1);
  }, 15_000);

  it("streams the body as it comes; an abort ends the read with an error and closes the connection", async () => {
    const { base, sockets } = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.write('{"n":1}\n');
    });
    const ac = new AbortController();
    const res = await nodeFetch(new URL(`${base}/stream`), { signal: ac.signal });
    const it = res.body?.[Symbol.asyncIterator]();
    const first = await it?.next();
    expect(Buffer.from(first?.value ?? []).toString()).toBe('{"n":1}\n');
    const next = it?.next();
    ac.abort();
    await expect(next).rejects.toThrow();
    await expect.poll(() => sockets[0]?.destroyed).toBe(true);
  });

  it("rejects at once on an aborted signal, and with the socket's code when nothing listens", async () => {
    const ac = new AbortController();
    ac.abort(new Error("stopped"));
    await expect(nodeFetch(new URL("http://127.0.0.1:1/"), { signal: ac.signal })).rejects.toThrow("stopped");
    await expect(nodeFetch(new URL("http://127.0.0.1:1/"), {})).rejects.toMatchObject({
      code: "ECONNREFUSED",
    });
  });
});
