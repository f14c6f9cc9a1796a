import { type ProxySnapshot, type ProxyStreamMessage, WeftClient } from "@weft/api";
import { afterEach, describe, expect, it } from "vitest";
import { type RunningServer, startServer } from "../server.js";

/**
 * The proxy config stream over real HTTP: the first snapshot at once, a
 * pushed update after each relevant change (and none after an irrelevant
 * one), coalescing of bursts, the ACL, and the end of the stream when the
 * instance goes away.
 */

let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(): Promise<{ client: WeftClient }> {
  server = await startServer({ listen: "127.0.0.1:0", storeSpec: "memory", dev: true, logger: silent() });
  return { client: new WeftClient({ addr: server.url }) };
}

function silent() {
  // biome-ignore lint/suspicious/noExplicitAny: a minimal pino stand-in for the server.
  const log: any = { info() {}, warn() {}, error() {}, debug() {}, trace() {}, fatal() {} };
  log.child = () => log;
  return log;
}

const reg = (
  id: string,
  service: string,
  port: number,
  upstreams: { service: string; localPort: number }[] = [],
) => ({
  id,
  service,
  address: "127.0.0.1",
  port,
  checks: [{ id: "app", ttl: "1h", status: "passing" as const }],
  proxy: { protocol: "http" as const, upstreams },
});

/** Reads stream messages into a queue that tests can await. */
function reader(client: WeftClient, id: string) {
  const ac = new AbortController();
  const got: ProxyStreamMessage[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  let error: unknown;
  void (async () => {
    try {
      for await (const m of client.proxyStream(id, { signal: ac.signal, idleMs: 60_000 })) {
        got.push(m);
        wake?.();
      }
    } catch (e) {
      error = e;
    }
    ended = true;
    wake?.();
  })();
  return {
    got,
    get ended() {
      return ended;
    },
    get error() {
      return error;
    },
    async next(timeoutMs = 5_000): Promise<ProxyStreamMessage> {
      const deadline = Date.now() + timeoutMs;
      while (got.length === 0) {
        if (ended) throw new Error(`stream ended: ${String(error)}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error("no stream message in time");
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, left);
        });
      }
      return got.shift() as ProxyStreamMessage;
    },
    async snapshot(timeoutMs = 5_000): Promise<ProxySnapshot> {
      for (;;) {
        const m = await this.next(timeoutMs);
        if (m.type === "snapshot") return m.snapshot;
      }
    },
    stop: () => ac.abort(),
  };
}

describe("proxy config stream", () => {
  it("sends the snapshot at once, then each relevant change, and nothing for unrelated ones", async () => {
    const { client } = await start();
    await client.registerInstance(reg("web-1", "web", 21000, [{ service: "api", localPort: 9101 }]));
    const r = reader(client, "web-1");
    const first = await r.snapshot();
    expect(first.proxy.service).toBe("web");
    expect(first.upstreams).toEqual([{ service: "api", localPort: 9101, protocol: "tcp", cluster: "api" }]);
    expect(first.clusters.api?.endpoints).toEqual([]);
    expect(first.inbound.authz.defaultAction).toBe("deny");

    // An api instance appears: the web proxy gets it.
    await client.registerInstance(reg("api-1", "api", 21001));
    const second = await r.snapshot();
    expect(second.clusters.api?.endpoints.map((e) => e.id)).toEqual(["api-1"]);
    expect(second.clusters.api?.protocol).toBe("http");

    // An intention for web changes web's inbound authz.
    const t0 = performance.now();
    await client.applyConfig([
      { kind: "Intention", name: "web", sources: [{ name: "lb", action: "allow" }] },
    ]);
    const third = await r.snapshot();
    const ms = performance.now() - t0;
    expect(third.inbound.authz.sources).toEqual([{ name: "lb", action: "allow" }]);
    console.log(`proxy stream: intention applied -> snapshot received in ${ms.toFixed(1)} ms`);

    // Unrelated: another service's instance and another service's intention.
    await client.registerInstance(reg("db-1", "db", 21002));
    await client.applyConfig([
      { kind: "Intention", name: "db", sources: [{ name: "api", action: "allow" }] },
    ]);
    await expect.poll(() => server?.proxies.stats.unchanged).toBeGreaterThan(0);
    // A relevant change afterwards arrives as the very next message: nothing was sent in between.
    await client.deregisterInstance("api-1");
    const fourth = await r.snapshot();
    expect(fourth.clusters.api?.endpoints).toEqual([]);
    expect(r.got.filter((m) => m.type === "snapshot")).toEqual([]);
    r.stop();
  });

  it("coalesces a burst of changes into few pushes, ending at the final state", async () => {
    const { client } = await start();
    await client.registerInstance(reg("web-1", "web", 21000, [{ service: "api", localPort: 9101 }]));
    const r = reader(client, "web-1");
    await r.snapshot();
    const before = server?.proxies.stats.pushes ?? 0;
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.registerInstance(reg(`api-${i}`, "api", 22000 + i))),
    );
    // Wait for the final state.
    let last: ProxySnapshot | undefined;
    while (last?.clusters.api?.endpoints.length !== 20) last = await r.snapshot();
    const pushes = (server?.proxies.stats.pushes ?? 0) - before;
    expect(pushes).toBeLessThan(20);
    r.stop();
  });

  it("ends the stream with a close message when the instance is deregistered", async () => {
    const { client } = await start();
    await client.registerInstance(reg("web-1", "web", 21000));
    const r = reader(client, "web-1");
    await r.snapshot();
    await client.deregisterInstance("web-1");
    const m = await r.next();
    expect(m).toMatchObject({ type: "close" });
    await expect.poll(() => r.ended).toBe(true);
    expect(server?.proxies.stats.streams).toBe(0);
  });

  it("refuses an unknown instance (404) and a token that may not write the service (403)", async () => {
    server = await startServer({ listen: "127.0.0.1:0", storeSpec: "memory", logger: silent() });
    const admin = new WeftClient({ addr: server.url, token: server.bootstrapToken });
    await admin.registerInstance(reg("web-1", "web", 21000));
    const other = await admin.createToken({ policies: ["service:api:write"] });
    const unknown = reader(admin, "nope-1");
    await expect.poll(() => unknown.ended).toBe(true);
    expect(unknown.error).toMatchObject({ code: "WEFT_ERR_NOT_FOUND" });
    const denied = reader(new WeftClient({ addr: server.url, token: other.secretId }), "web-1");
    await expect.poll(() => denied.ended).toBe(true);
    expect(denied.error).toMatchObject({ code: "WEFT_ERR_PERMISSION_DENIED" });
  });

  it("releases the watch when the proxy disconnects", async () => {
    const { client } = await start();
    await client.registerInstance(reg("web-1", "web", 21000));
    const r = reader(client, "web-1");
    await r.snapshot();
    expect(server?.proxies.stats.streams).toBe(1);
    r.stop();
    await expect.poll(() => server?.proxies.stats.streams).toBe(0);
  });
});
