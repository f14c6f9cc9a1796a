import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { MAX_HTTP_BODY_BYTES, probeHttp } from "./http-check.js";
import { probe } from "./probe.js";
import { MAX_OUTPUT_CHARS } from "./result.js";

const servers: Server[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<number> {
  const s = createServer(handler);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return (s.address() as AddressInfo).port;
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const target = (port: number) => ({ host: "127.0.0.1", port });

describe("probeHttp", () => {
  it("is passing on 200 and puts the status line and body in the output", async () => {
    const port = await serve((_req, res) => res.end("all good"));
    const r = await probe({ kind: "http", path: "/healthz" }, target(port), 2_000);
    expect(r).toEqual({
      status: "passing",
      output: `HTTP GET http://127.0.0.1:${port}/healthz: 200 OK Output: all good`,
    });
  });

  it("sends Host, User-Agent and no keep-alive, with the path and query as given", async () => {
    let seen: IncomingMessage | undefined;
    const port = await serve((req, res) => {
      seen = req;
      res.end();
    });
    const r = await probe({ kind: "http", path: "/health?full=1" }, target(port), 2_000);
    expect(r.status).toBe("passing");
    expect(seen?.method).toBe("GET");
    expect(seen?.url).toBe("/health?full=1");
    expect(seen?.headers.host).toBe(`127.0.0.1:${port}`);
    expect(seen?.headers["user-agent"]).toBe("weft-health/1");
    expect(seen?.headers.connection).toBe("close");
  });

  it("is passing on a redirect, which is not followed", async () => {
    let hits = 0;
    const port = await serve((req, res) => {
      hits++;
      if (req.url === "/old") res.writeHead(302, { location: "/broken" }).end();
      else res.writeHead(500).end();
    });
    const r = await probe({ kind: "http", path: "/old" }, target(port), 2_000);
    expect(r.status).toBe("passing");
    expect(r.output).toContain(": 302 Found");
    expect(hits).toBe(1);
  });

  it("is warning on 429 and critical on 500 and 404", async () => {
    const port = await serve((req, res) => {
      const code = Number(req.url?.slice(1));
      res.writeHead(code).end(`code ${code}`);
    });
    expect(await probe({ kind: "http", path: "/429" }, target(port), 2_000)).toEqual({
      status: "warning",
      output: `HTTP GET http://127.0.0.1:${port}/429: 429 Too Many Requests Output: code 429`,
    });
    const r500 = await probe({ kind: "http", path: "/500" }, target(port), 2_000);
    expect(r500.status).toBe("critical");
    expect(r500.output).toContain(": 500 Internal Server Error Output: code 500");
    expect((await probe({ kind: "http", path: "/404" }, target(port), 2_000)).status).toBe("critical");
  });

  it("is critical with a timeout when the app never answers", async () => {
    let closed = false;
    const port = await serve((req) => {
      req.socket.on("close", () => {
        closed = true;
      });
    });
    const r = await probe({ kind: "http", path: "/hang" }, target(port), 100);
    expect(r).toEqual({
      status: "critical",
      output: `HTTP GET http://127.0.0.1:${port}/hang: timed out after 100 ms`,
    });
    // The probe's socket is gone, not left dangling.
    await until(() => closed);
  });

  it("times out when the body never ends, keeping the status it saw out of the verdict", async () => {
    const port = await serve((_req, res) => {
      res.writeHead(200);
      res.write("partial");
    });
    const r = await probe({ kind: "http", path: "/slow-body" }, target(port), 150);
    expect(r.status).toBe("critical");
    expect(r.output).toContain("timed out after 150 ms");
  });

  it("reads at most 4 KiB of a huge body and keeps the output within 4096 characters", async () => {
    let written = 0;
    let socketClosed = false;
    const port = await serve((req, res) => {
      req.socket.on("close", () => {
        socketClosed = true;
      });
      res.writeHead(200, { "content-type": "text/plain" });
      const chunk = Buffer.alloc(64 * 1024, "x");
      const pump = () => {
        while (written < 64 * 1024 * 1024 && !res.destroyed) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
      };
      pump();
    });
    const r = await probe({ kind: "http", path: "/big" }, target(port), 5_000);
    expect(r.status).toBe("passing");
    expect(r.output.length).toBeLessThanOrEqual(MAX_OUTPUT_CHARS);
    expect(r.output.endsWith("…")).toBe(true);
    const body = r.output.slice(r.output.indexOf("Output: ") + "Output: ".length, -1);
    expect(body.length).toBeLessThanOrEqual(MAX_HTTP_BODY_BYTES);
    expect(body).toMatch(/^x+$/);
    await until(() => socketClosed);
    expect(written).toBeLessThan(64 * 1024 * 1024);
  });

  it("is critical with the error when nothing listens", async () => {
    const port = await closedPort();
    const r = await probe({ kind: "http", path: "/" }, target(port), 2_000);
    expect(r.status).toBe("critical");
    expect(r.output).toMatch(new RegExp(`^HTTP GET http://127\\.0\\.0\\.1:${port}/: .*ECONNREFUSED`));
  });

  it("is critical when the connection drops before a response", async () => {
    const port = await serve((req) => req.socket.destroy());
    const r = await probe({ kind: "http", path: "/" }, target(port), 2_000);
    expect(r.status).toBe("critical");
    expect(r.output).toMatch(/socket hang up|ECONNRESET/);
  });

  it("stops at once when aborted", async () => {
    const port = await serve(() => {});
    const ac = new AbortController();
    const p = probeHttp("/", target(port), 60_000, { signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    expect(await p).toEqual({ status: "critical", output: `HTTP GET http://127.0.0.1:${port}/: cancelled` });
  });

  it.each(["healthz", "http://evil.example/", "/a b", "/a\r\nX-Injected: 1", ""])(
    "refuses the path %j without sending anything",
    async (path) => {
      let hits = 0;
      const port = await serve((_req, res) => {
        hits++;
        res.end();
      });
      const r = await probe({ kind: "http", path }, target(port), 2_000);
      expect(r.status).toBe("critical");
      expect(r.output).toContain("path");
      expect(hits).toBe(0);
    },
  );
});

async function until(cond: () => boolean, realMs = 5_000): Promise<void> {
  const deadline = Date.now() + realMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}
