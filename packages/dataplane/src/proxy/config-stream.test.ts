/**
 * The proxy's config stream client against scripted control-plane answers
 * (the real stream endpoint is covered in the control plane's tests and the
 * e2e suites): a bad snapshot is refused and the last good one kept, an
 * apply that throws is a refusal too, a broken stream reconnects, a 404
 * makes the proxy register again, and a silent stream counts as dead.
 */
import { WeftClient } from "@weft/api/client";
import type { ProxySnapshot, ProxyStreamMessage } from "@weft/api/snapshot";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigStream } from "./config-stream.js";

function snapshot(version: string, endpoints = 1): ProxySnapshot {
  return {
    format: 1,
    version,
    proxy: {
      service: "web",
      instanceId: "web-1",
      datacenter: "dc1",
      spiffeId: "spiffe://t/ns/default/svc/web",
    },
    mesh: { trustDomain: "t", defaultPolicy: "deny" },
    inbound: { protocol: "http", authz: { defaultAction: "deny", intention: false, sources: [] } },
    upstreams: [{ service: "api", localPort: 9101, protocol: "http", cluster: "api" }],
    clusters: {
      api: {
        name: "api",
        service: "api",
        protocol: "http",
        spiffeId: "spiffe://t/ns/default/svc/api",
        lb: { policy: "round_robin" },
        connectTimeoutMs: 5000,
        idleTimeoutMs: 3_600_000,
        circuitBreaker: { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 },
        endpoints: Array.from({ length: endpoints }, (_, i) => ({
          id: `api-${i}`,
          address: "127.0.0.1",
          port: 20000 + i,
          weight: 1,
          health: "passing" as const,
        })),
      },
    },
  };
}

type Answer = Response | { lines: (ProxyStreamMessage | string)[]; end?: boolean };
type Script = (attempt: number) => Answer;

/** A fetch that answers each stream attempt from the script; an abort errors the body, as undici's does. */
function scriptedClient(script: Script): { client: WeftClient; attempts: () => number } {
  let attempts = 0;
  const fetchImpl = (async (_url: URL, init?: RequestInit) => {
    const a = script(attempts++);
    if (a instanceof Response) return a;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (const l of a.lines) {
          c.enqueue(new TextEncoder().encode(`${typeof l === "string" ? l : JSON.stringify(l)}\n`));
        }
        if (a.end) c.close();
        init?.signal?.addEventListener("abort", () => c.error(new Error("aborted")));
      },
    });
    return new Response(body, { status: 200, headers: { "content-type": "application/x-ndjson" } });
  }) as typeof fetch;
  return { client: new WeftClient({ addr: "127.0.0.1:1", fetch: fetchImpl }), attempts: () => attempts };
}

/** A stream answer with these lines, which stays open (like a real stream) unless `end`. */
function ndjson(lines: (ProxyStreamMessage | string)[], end = false): Answer {
  return { lines, end };
}

const streams: ConfigStream[] = [];
afterEach(async () => {
  await Promise.all(streams.splice(0).map((s) => s.stop()));
});

function start(script: Script, opts: { applyThrowsFor?: string; idleMs?: number } = {}) {
  const { client, attempts } = scriptedClient(script);
  const applied: string[] = [];
  let lost = 0;
  const s = new ConfigStream({
    client,
    instanceId: () => "web-1",
    apply: (snap) => {
      if (snap.version === opts.applyThrowsFor) throw new Error("cannot apply this one");
      applied.push(snap.version);
    },
    onInstanceLost: async () => {
      lost++;
    },
    random: () => 0,
    ...(opts.idleMs ? { idleMs: opts.idleMs } : {}),
  });
  streams.push(s);
  s.start();
  return { s, applied, attempts, lost: () => lost };
}

describe("ConfigStream", () => {
  it("applies good snapshots, refuses a bad one and keeps the last good", async () => {
    const bad = {
      ...snapshot("v2"),
      upstreams: [{ service: "api", localPort: 9101, protocol: "http", cluster: "nope" }],
    };
    const { s, applied } = start(() =>
      ndjson([
        { type: "snapshot", snapshot: snapshot("v1") },
        { type: "snapshot", snapshot: bad as ProxySnapshot },
        { type: "heartbeat" },
      ]),
    );
    await s.firstSnapshot();
    await expect.poll(() => s.state.lastRejected?.version).toBe("v2");
    expect(applied).toEqual(["v1"]);
    expect(s.snapshot?.version).toBe("v1");
    expect(s.state.lastRejected?.error).toMatch(/no cluster "nope"/);
    expect(s.state.connected).toBe(true);
  });

  it("treats an apply that throws as a refusal", async () => {
    const { s, applied } = start(
      () =>
        ndjson([
          { type: "snapshot", snapshot: snapshot("v1") },
          { type: "snapshot", snapshot: snapshot("v2", 2) },
          { type: "snapshot", snapshot: snapshot("v3", 3) },
        ]),
      { applyThrowsFor: "v2" },
    );
    await expect.poll(() => applied).toEqual(["v1", "v3"]);
    expect(s.state.lastRejected).toMatchObject({ version: "v2", error: "cannot apply this one" });
  });

  it("reconnects when the stream ends or breaks, keeping its snapshot meanwhile", async () => {
    const { s, applied, attempts } = start((n) => {
      if (n === 0)
        return ndjson([
          { type: "snapshot", snapshot: snapshot("v1") },
          { type: "close", reason: "drain" },
        ]);
      if (n === 1) return ndjson(["{not json"], true);
      return ndjson([{ type: "snapshot", snapshot: snapshot("v2", 2) }]);
    });
    await expect.poll(() => applied, { timeout: 5_000 }).toEqual(["v1", "v2"]);
    expect(attempts()).toBe(3);
    expect(s.snapshot?.version).toBe("v2");
  });

  it("registers again when the control plane does not know the instance", async () => {
    const { applied, lost } = start((n) =>
      n === 0
        ? new Response(
            JSON.stringify({ error: { code: "WEFT_ERR_NOT_FOUND", message: 'instance "web-1" not found' } }),
            {
              status: 404,
            },
          )
        : ndjson([{ type: "snapshot", snapshot: snapshot("v1") }]),
    );
    await expect.poll(() => applied, { timeout: 5_000 }).toEqual(["v1"]);
    expect(lost()).toBe(1);
  });

  it("treats a silent stream as dead and reconnects", async () => {
    const { applied, attempts } = start(
      (n) =>
        ndjson(
          n === 0
            ? [{ type: "snapshot", snapshot: snapshot("v1") }]
            : [{ type: "snapshot", snapshot: snapshot("v2", 2) }],
        ),
      { idleMs: 200 },
    );
    await expect.poll(() => applied, { timeout: 5_000 }).toEqual(["v1", "v2"]);
    expect(attempts()).toBeGreaterThanOrEqual(2);
  });
});
