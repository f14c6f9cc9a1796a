import { createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { probe } from "./probe.js";
import { probeTcp } from "./tcp-check.js";

const servers: Server[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
});

async function listen(): Promise<{ port: number; accepted: Socket[] }> {
  const accepted: Socket[] = [];
  const s = createServer((sock) => {
    accepted.push(sock);
    sockets.push(sock);
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const addr = s.address();
  return { port: typeof addr === "object" && addr ? addr.port : 0, accepted };
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const addr = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return typeof addr === "object" && addr ? addr.port : 0;
}

describe("probeTcp", () => {
  it("is passing when the port accepts, and closes the connection", async () => {
    const { port, accepted } = await listen();
    const r = await probe({ kind: "tcp" }, { host: "127.0.0.1", port }, 2_000);
    expect(r).toEqual({ status: "passing", output: `TCP connect 127.0.0.1:${port}: Success` });
    await until(() => accepted.length === 1);
    const peer = accepted[0]!;
    await until(
      () => peer.readableEnded || peer.destroyed,
      () => peer.resume(),
    );
  });

  it("is critical with ECONNREFUSED on a closed port", async () => {
    const port = await closedPort();
    const r = await probe({ kind: "tcp" }, { host: "127.0.0.1", port }, 2_000);
    expect(r.status).toBe("critical");
    expect(r.output).toMatch(new RegExp(`^TCP connect 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  });

  it("is critical, without connecting, for an invalid port", async () => {
    const r = await probe({ kind: "tcp" }, { host: "127.0.0.1", port: 70_000 }, 2_000);
    expect(r).toEqual({ status: "critical", output: "health check target port 70000 is not in 1-65535" });
  });

  it("is critical when already aborted", async () => {
    const { port, accepted } = await listen();
    const ac = new AbortController();
    ac.abort();
    const r = await probeTcp({ host: "127.0.0.1", port }, 2_000, { signal: ac.signal });
    expect(r).toEqual({ status: "critical", output: `TCP connect 127.0.0.1:${port}: cancelled` });
    expect(accepted).toHaveLength(0);
  });
});

async function until(cond: () => boolean, poke?: () => void, realMs = 5_000): Promise<void> {
  const deadline = Date.now() + realMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    poke?.();
    await new Promise((r) => setTimeout(r, 5));
  }
}
