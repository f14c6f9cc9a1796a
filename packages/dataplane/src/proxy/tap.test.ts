import { type ClientRequest, createServer, type IncomingMessage, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { TapHub } from "./tap.js";

let server: Server | undefined;
const clients: ClientRequest[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

async function serve(hub: TapHub): Promise<number> {
  server = createServer((req, res) => hub.handle(req, res));
  await new Promise<void>((r) => server?.listen(0, "127.0.0.1", () => r()));
  return (server.address() as AddressInfo).port;
}

function open(port: number): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/tap" }, resolve);
    req.on("error", reject);
    clients.push(req);
    req.end();
  });
}

/** Reads NDJSON objects (blank keep-alive lines skipped) until `n` arrived. */
function lines(res: IncomingMessage, n: number): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const out: Record<string, unknown>[] = [];
    let buf = "";
    res.setEncoding("utf8");
    res.on("data", (c: string) => {
      buf += c;
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf("\n");
        if (line.trim() === "") continue;
        out.push(JSON.parse(line));
        if (out.length === n) resolve(out);
      }
    });
    res.on("error", reject);
  });
}

const until = async (cond: () => boolean) => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
};

describe("TapHub", () => {
  it("streams one record per request: no query string, no bodies, flags and endpoint kept", async () => {
    const hub = new TapHub();
    const port = await serve(hub);
    hub.record("inbound", "web", "api", { status: 200, flags: "-", durationMs: 1 }); // nobody listens yet
    const res = await open(port);
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("application/x-ndjson");
    await until(() => hub.subscribers === 1);
    const got = lines(res, 2);
    hub.record("inbound", "web", "api", {
      status: 403,
      flags: "RBAC",
      durationMs: 1.23456,
      method: "GET",
      path: "/admin/x?token=secret",
    });
    hub.record("outbound", "web", "api", { status: 503, flags: "UF", durationMs: 2, endpointId: "api-1" });
    const [a, b] = await got;
    expect(a).toMatchObject({
      direction: "inbound",
      source: "web",
      destination: "api",
      method: "GET",
      path: "/admin/x",
      status: 403,
      latencyMs: 1.235,
      flags: "RBAC",
    });
    expect(JSON.stringify(a)).not.toContain("secret");
    expect(Number.isNaN(Date.parse(String(a?.time)))).toBe(false);
    expect(b).toMatchObject({ direction: "outbound", status: 503, flags: "UF", endpoint: "api-1" });
    expect(b).not.toHaveProperty("method");
  });

  it("a slow reader loses records (counted) and is told how many once it catches up", async () => {
    const hub = new TapHub({ maxBufferedBytes: 4 * 1024 });
    const port = await serve(hub);
    const res = await open(port);
    await until(() => hub.subscribers === 1);
    res.pause();
    const path = `/${"x".repeat(200)}`;
    for (let i = 0; i < 20_000; i++)
      hub.record("inbound", "web", "api", { status: 200, flags: "-", durationMs: 1, path });
    expect(hub.droppedTotal).toBeGreaterThan(0);
    // Memory stayed bounded: far less than 20,000 records are buffered.
    const dropped = hub.droppedTotal;
    expect(dropped).toBeGreaterThan(10_000);
    const seen: Record<string, unknown>[] = [];
    let buf = "";
    res.setEncoding("utf8");
    res.on("data", (c: string) => {
      buf += c;
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf("\n");
        if (line.trim()) seen.push(JSON.parse(line));
      }
    });
    res.resume();
    await until(() => seen.length >= 20_000 - dropped);
    // Caught up: the next record is preceded by the drop notice.
    hub.record("inbound", "web", "api", { status: 200, flags: "-", durationMs: 1 });
    await until(() => seen.some((s) => "dropped" in s));
    expect(seen.find((s) => "dropped" in s)).toEqual({ dropped });
  });

  it("refuses streams past the limit, and close() ends every stream", async () => {
    const hub = new TapHub({ maxSubscribers: 1 });
    const port = await serve(hub);
    const first = await open(port);
    await until(() => hub.subscribers === 1);
    const second = await open(port);
    expect(second.statusCode).toBe(503);
    second.resume();
    const ended = new Promise<void>((r) => first.on("end", () => r()));
    first.resume();
    hub.close();
    await ended;
    expect(hub.subscribers).toBe(0);
  });
});
