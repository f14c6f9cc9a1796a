import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { isWeftError } from "@weft/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorFromResponse, normalizeAddr, WeftApiError, WeftClient } from "./client.js";

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

let server: Server;
let addr: string;
const seen: Seen[] = [];
let handler: (req: IncomingMessage, res: ServerResponse, body: string) => void = () => {};

function json(res: ServerResponse, status: number, body: unknown, index?: number) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (index !== undefined) headers["x-weft-index"] = String(index);
  res.writeHead(status, headers);
  res.end(JSON.stringify(body));
}

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      body += c;
    });
    req.on("end", () => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe("normalizeAddr", () => {
  it.each([
    ["127.0.0.1:7400", "http://127.0.0.1:7400"],
    [":7400", "http://127.0.0.1:7400"],
    ["localhost:8080", "http://localhost:8080"],
    ["http://10.0.0.1:7400/", "http://10.0.0.1:7400"],
    ["https://cp.example.com", "https://cp.example.com"],
    ["[::1]:7400", "http://[::1]:7400"],
  ])("%s -> %s", (input, want) => {
    expect(normalizeAddr(input)).toBe(want);
  });

  it.each(["", "ftp://x:1", "http://"])("refuses %j with WEFT_ERR_USAGE", (input) => {
    expect(() => normalizeAddr(input)).toThrow(expect.objectContaining({ code: "WEFT_ERR_USAGE" }));
  });
});

describe("WeftClient", () => {
  it("sends the bearer token and JSON body, and returns the typed result", async () => {
    handler = (_req, res, body) => {
      const parsed = JSON.parse(body) as { resources: unknown[] };
      json(res, 200, {
        applied: parsed.resources.map(() => ({ kind: "Intention", name: "api", action: "created" })),
        revision: 7,
      });
    };
    const c = new WeftClient({ addr, token: "s3cret" });
    const r = await c.applyConfig([{ kind: "Intention", name: "api", sources: [] }]);
    expect(r).toEqual({ applied: [{ kind: "Intention", name: "api", action: "created" }], revision: 7 });
    const last = seen.at(-1)!;
    expect(last.method).toBe("POST");
    expect(last.url).toBe("/v1/config/apply");
    expect(last.headers.authorization).toBe("Bearer s3cret");
    expect(last.headers["content-type"]).toBe("application/json");
  });

  it("sends no authorization header without a token", async () => {
    handler = (_req, res) => json(res, 200, { version: "0.1.0", backend: "memory", revision: 1, dev: false });
    const c = new WeftClient({ addr: `http://${addr}` });
    expect((await c.status()).backend).toBe("memory");
    expect(seen.at(-1)!.headers.authorization).toBeUndefined();
  });

  it("turns an error body into a WeftApiError with the server's code, message and status", async () => {
    handler = (_req, res) =>
      json(res, 403, {
        error: { code: "WEFT_ERR_PERMISSION_DENIED", message: "token lacks service:api:write" },
      });
    const c = new WeftClient({ addr, token: "t" });
    const err = await c.registerInstance({ service: "api", address: "127.0.0.1", port: 1 }).catch((e) => e);
    expect(err).toBeInstanceOf(WeftApiError);
    expect(isWeftError(err, "WEFT_ERR_PERMISSION_DENIED")).toBe(true);
    expect(err.message).toBe("token lacks service:api:write");
    expect(err.status).toBe(403);
  });

  it("maps an unknown server code by status and keeps the original", () => {
    const e = errorFromResponse(
      404,
      { error: { code: "WEFT_ERR_SOMETHING_NEW", message: "gone" } },
      "GET /x",
    );
    expect(e.code).toBe("WEFT_ERR_NOT_FOUND");
    expect(e.serverCode).toBe("WEFT_ERR_SOMETHING_NEW");
    const e2 = errorFromResponse(502, "<html>", "GET /x");
    expect(e2.code).toBe("WEFT_ERR_INTERNAL");
    expect(e2.message).toContain("502");
  });

  it("reports 201 as created on register", async () => {
    handler = (_req, res) => json(res, 201, { id: "a1", service: "api" });
    const c = new WeftClient({ addr });
    const r = await c.registerInstance({ service: "api", address: "127.0.0.1", port: 1 });
    expect(r.created).toBe(true);
    expect(r.instance.id).toBe("a1");
  });

  it("encodes path segments and passes blocking query parameters", async () => {
    handler = (_req, res) => json(res, 200, { service: "api", index: 12, instances: [] }, 12);
    const c = new WeftClient({ addr });
    const r = await c.healthService("api", { index: 11, wait: "2s", status: "any" });
    expect(r.index).toBe(12);
    const u = new URL(seen.at(-1)!.url, "http://x");
    expect(u.pathname).toBe("/v1/health/service/api");
    expect(u.searchParams.get("index")).toBe("11");
    expect(u.searchParams.get("wait")).toBe("2s");
    expect(u.searchParams.get("status")).toBe("any");

    handler = (_req, res) => json(res, 200, { deleted: true });
    await c.deregisterInstance("a/b c");
    expect(seen.at(-1)!.url).toBe("/v1/catalog/instances/a%2Fb%20c");
  });

  it("returns the X-Weft-Index of list reads", async () => {
    handler = (_req, res) => json(res, 200, [{ name: "api", instances: 1 }], 42);
    const c = new WeftClient({ addr });
    const r = await c.listServices();
    expect(r.index).toBe(42);
    expect(r.value[0]?.name).toBe("api");
  });

  it("watchService yields on every index change and stops on abort", async () => {
    let idx = 5;
    handler = (req, res) => {
      const q = new URL(req.url ?? "", "http://x").searchParams;
      const asked = Number(q.get("index") ?? 0);
      // Simulate the server: answer at once when behind, else "change" after 20 ms.
      if (asked < idx) return json(res, 200, { service: "api", index: idx, instances: [] }, idx);
      setTimeout(() => {
        idx++;
        json(res, 200, { service: "api", index: idx, instances: [] }, idx);
      }, 20);
    };
    const c = new WeftClient({ addr });
    const ac = new AbortController();
    const got: number[] = [];
    for await (const r of c.watchService("api", { wait: "1s", signal: ac.signal })) {
      got.push(r.index);
      if (got.length === 3) ac.abort();
    }
    expect(got).toEqual([5, 6, 7]);
  });

  it("connection failure becomes WEFT_ERR_UNREACHABLE naming the address", async () => {
    // Bind then close to get a port that refuses connections.
    const tmp = createServer();
    await new Promise<void>((r) => tmp.listen(0, "127.0.0.1", r));
    const port = (tmp.address() as AddressInfo).port;
    await new Promise<void>((r) => tmp.close(() => r()));
    const c = new WeftClient({ addr: `127.0.0.1:${port}` });
    const err = await c.status().catch((e) => e);
    expect(isWeftError(err, "WEFT_ERR_UNREACHABLE")).toBe(true);
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).toContain("connection refused");
  });

  it("a request past its deadline becomes WEFT_ERR_TIMEOUT", async () => {
    handler = (_req, res) => setTimeout(() => json(res, 200, {}), 500);
    const c = new WeftClient({ addr, timeoutMs: 50 });
    const err = await c.status().catch((e) => e);
    expect(isWeftError(err, "WEFT_ERR_TIMEOUT")).toBe(true);
  });
});
