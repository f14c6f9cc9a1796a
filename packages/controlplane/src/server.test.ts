import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { isLoopback, parseListen, startServer } from "./server.js";
import { MemoryStore } from "./store/memory.js";

const logger = pino({ level: "silent" });
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("startServer", () => {
  it("parses listen addresses", () => {
    expect(parseListen("127.0.0.1:0")).toEqual({ host: "127.0.0.1", port: 0 });
    expect(parseListen("[::1]:7400")).toEqual({ host: "::1", port: 7400 });
    expect(parseListen(":7400")).toEqual({ host: "127.0.0.1", port: 7400 });
    expect(() => parseListen("nope")).toThrow(expect.objectContaining({ code: "WEFT_ERR_USAGE" }));
    expect(() => parseListen("h:99999")).toThrow(expect.objectContaining({ code: "WEFT_ERR_USAGE" }));
    expect(isLoopback("127.0.0.1")).toBe(true);
    expect(isLoopback("0.0.0.0")).toBe(false);
  });

  it("--dev: anonymous is operator on loopback; refused elsewhere; an unknown token is still 401", async () => {
    await expect(startServer({ listen: "0.0.0.0:0", dev: true, logger })).rejects.toMatchObject({
      code: "WEFT_ERR_USAGE",
    });
    const srv = await startServer({ listen: "127.0.0.1:0", dev: true, logger });
    cleanups.push(() => srv.close());
    const r = await fetch(`${srv.url}/v1/acl/tokens`);
    expect(r.status).toBe(200);
    expect(((await (await fetch(`${srv.url}/v1/status`)).json()) as { dev: boolean }).dev).toBe(true);
    const bad = await fetch(`${srv.url}/v1/acl/tokens`, { headers: { authorization: "Bearer nope" } });
    expect(bad.status).toBe(401);
  });

  it("writes <dataDir>/bootstrap-token 0600 on the first start only", async () => {
    const dir = await mkdtemp(join(tmpdir(), "weft-server-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const a = await startServer({ listen: "127.0.0.1:0", dataDir: dir, logger });
    expect(a.bootstrapToken).toBeDefined();
    expect(a.store.backend).toBe("sqlite");
    const file = join(dir, "bootstrap-token");
    expect((await readFile(file, "utf8")).trim()).toBe(a.bootstrapToken);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const reg = await fetch(`${a.url}/v1/catalog/instances`, {
      method: "PUT",
      headers: { authorization: `Bearer ${a.bootstrapToken}`, "content-type": "application/json" },
      body: JSON.stringify({ id: "p-1", service: "persist", address: "10.0.0.1", port: 80 }),
    });
    expect(reg.status).toBe(201);
    await a.close();
    const b = await startServer({ listen: "127.0.0.1:0", storeSpec: dir, logger });
    cleanups.push(() => b.close());
    expect(b.bootstrapToken).toBeUndefined();
    const r = await fetch(`${b.url}/v1/catalog/instances/p-1`, {
      headers: { authorization: `Bearer ${a.bootstrapToken}` },
    });
    expect(r.status).toBe(200);
  });

  it("close() answers held long-polls with their current state, then closes the store", async () => {
    const store = new MemoryStore();
    const srv = await startServer({ listen: "127.0.0.1:0", store, logger });
    const h = { authorization: `Bearer ${srv.bootstrapToken}` };
    const first = await fetch(`${srv.url}/v1/catalog/services`, { headers: h });
    const index = first.headers.get("x-weft-index");
    const held = fetch(`${srv.url}/v1/catalog/services?index=${index}&wait=1m`, { headers: h });
    await new Promise((r) => setTimeout(r, 50));
    expect(srv.blockingQueries()).toBe(1);
    const t0 = performance.now();
    await srv.close();
    const r = await held;
    expect(r.status).toBe(200);
    expect(r.headers.get("x-weft-index")).toBe(index);
    expect(performance.now() - t0).toBeLessThan(1_000);
    await expect(store.revision()).rejects.toMatchObject({ code: "WEFT_ERR_STORE_CLOSED" });
  });

  it("caps held blocking queries (503 beyond)", async () => {
    const srv = await startServer({
      listen: "127.0.0.1:0",
      store: new MemoryStore(),
      logger,
      maxBlockingQueries: 1,
    });
    cleanups.push(() => srv.close());
    const h = { authorization: `Bearer ${srv.bootstrapToken}` };
    const index = (await fetch(`${srv.url}/v1/catalog/services`, { headers: h })).headers.get("x-weft-index");
    const held = fetch(`${srv.url}/v1/catalog/services?index=${index}&wait=1m`, { headers: h });
    await new Promise((r) => setTimeout(r, 50));
    const second = await fetch(`${srv.url}/v1/catalog/services?index=${index}&wait=1m`, { headers: h });
    expect(second.status).toBe(503);
    expect(((await second.json()) as { error: { code: string } }).error.code).toBe("WEFT_ERR_UNAVAILABLE");
    await srv.close();
    expect((await held).status).toBe(200);
  });

  it("an unexpected error is a 500 with a reference, no stack", async () => {
    const lines: string[] = [];
    const capture = pino({ level: "error" }, { write: (s: string) => void lines.push(s) });
    const store = new MemoryStore();
    const srv = await startServer({ listen: "127.0.0.1:0", store, logger: capture });
    cleanups.push(() => srv.close());
    store.revision = () => {
      throw new TypeError("boom at secret place");
    };
    const r = await fetch(`${srv.url}/v1/status`);
    expect(r.status).toBe(500);
    const body = (await r.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("WEFT_ERR_INTERNAL");
    expect(JSON.stringify(body)).not.toContain("boom");
    const ref = /reference ([0-9a-f]{12})/.exec(body.error.message)?.[1];
    expect(ref).toBeDefined();
    expect(lines.some((l) => l.includes(ref as string) && l.includes("boom at secret place"))).toBe(true);
  });
});
