/**
 * `weft tap` in-process: a real control plane (dev mode) names the
 * instances and their admin ports; stand-in admin listeners serve `/tap` as
 * the sidecar does (NDJSON). e2e/observability-golden.test.ts taps real
 * sidecars.
 */
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { type TapRecord, WeftClient } from "@weft/api/client";
import { type RunningServer, startServer } from "@weft/controlplane";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "../exit-codes.js";
import { runCaptured } from "../run-captured.suite.js";
import { formatTapRecord } from "./tap.js";

let srv: RunningServer;
let admin: Server;
const streams = new Set<ServerResponse>();

const rec = (i: number): TapRecord => ({
  time: `2026-01-02T03:04:05.${String(100 + i).padStart(3, "0")}Z`,
  direction: "inbound",
  source: "web",
  destination: "api",
  method: "GET",
  path: `/item/${i}`,
  status: 200,
  latencyMs: 1.5,
  flags: "-",
});

beforeAll(async () => {
  srv = await startServer({
    listen: "127.0.0.1:0",
    storeSpec: "memory",
    dev: true,
    logger: pino({ level: "silent" }),
  });
  // The stand-in sidecar admin: on connect, a drop notice then five records, then holds the stream open.
  admin = createServer((req, res) => {
    if (req.url !== "/tap") {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    streams.add(res);
    res.on("close", () => streams.delete(res));
    res.write(`${JSON.stringify({ dropped: 7 })}\n\n`);
    for (let i = 0; i < 5; i++) res.write(`${JSON.stringify(rec(i))}\n`);
  });
  await new Promise<void>((r) => admin.listen(0, "127.0.0.1", () => r()));
  const adminPort = (admin.address() as AddressInfo).port;
  const c = new WeftClient({ addr: srv.url });
  await c.registerInstance({
    id: "api-1",
    service: "api",
    address: "127.0.0.1",
    port: 1001,
    ports: { admin: adminPort },
  });
  // A second instance whose admin listener is gone.
  const dead = await new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
  await c.registerInstance({
    id: "api-2",
    service: "api",
    address: "127.0.0.1",
    port: 1002,
    ports: { admin: dead },
  });
  await c.registerInstance({ id: "bare-1", service: "bare", address: "127.0.0.1", port: 1003 });
});
afterAll(async () => {
  for (const s of streams) s.destroy();
  admin.closeAllConnections();
  await new Promise<void>((r) => admin.close(() => r()));
  await srv.close();
});

const weft = (...args: string[]) => runCaptured([...args, "--addr", srv.url], tmpdir());

describe("weft tap", () => {
  it("--json --limit N: N records as NDJSON from the reachable sidecars, the others reported", async () => {
    const r = await weft("tap", "api", "--json", "--limit", "3");
    expect(r.code).toBe(EXIT.OK);
    const lines = r.out.trimEnd().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines.map((l) => JSON.parse(l).path)).toEqual(["/item/0", "/item/1", "/item/2"]);
    expect(r.err).toMatch(/tap: api-2: cannot connect to http:\/\/127\.0\.0\.1:\d+\/tap: ECONNREFUSED/);
    expect(r.err).toContain("tapping 1 of 2 sidecars of api");
    expect(r.err).toContain("tap: api-1 dropped 7 records (this reader was too slow)");
  });

  it("prints one readable line per request", async () => {
    const r = await weft("tap", "api", "--limit", "1");
    expect(r.code).toBe(EXIT.OK);
    expect(r.out).toBe("03:04:05.100  in   web -> api  GET /item/0  200  1.50ms  -\n");
  });

  it("formats an outbound record with its endpoint, and a record without method and path", () => {
    const line = formatTapRecord({
      time: "2026-01-02T03:04:05.678Z",
      direction: "outbound",
      source: "web",
      destination: "api",
      status: 503,
      latencyMs: 250.4,
      flags: "UF,URX",
      endpoint: "api-1",
    });
    expect(line).toBe("03:04:05.678  out  web -> api (api-1)  - -  503  250ms  UF,URX");
  });

  it("a service without sidecar admin ports, or without instances, is not found; a bad --limit is usage", async () => {
    const bare = await weft("tap", "bare");
    expect(bare.code).not.toBe(EXIT.OK);
    expect(bare.err).toMatch(/a sidecar admin port for "bare" not found \(WEFT_ERR_NOT_FOUND\)/);
    const none = await weft("tap", "nothing");
    expect(none.err).toMatch(/instances of "nothing" not found/);
    const bad = await weft("tap", "api", "--limit", "0");
    expect(bad.code).toBe(EXIT.USAGE);
  });
});
