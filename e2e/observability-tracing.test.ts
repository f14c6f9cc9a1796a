/**
 * Distributed tracing and access logs over real sidecars. Three services
 * call each other in a chain, a -> b -> c, each app (trace-app.mjs)
 * passing on the trace headers it received, as an instrumented app would.
 * The Mesh sends spans to an OTLP/HTTP receiver run by this test (the
 * exporter speaks JSON); each sidecar writes its access log to a file
 * (`weft proxy --access-log FILE`).
 *
 * Tracing: one request with the test's own traceparent gives one trace
 * with the chain client(a->b) -> server(b) -> client(b->c) -> server(c),
 * its root the test's span (the app's context continued, not replaced);
 * each app receives the context of its sidecar's server span; B3 is
 * answered in B3; a request without trace headers starts a new trace; an
 * incoming "not sampled" is honoured (propagated, nothing exported).
 *
 * Access logs: the lines of known requests (a chain call, a call denied by
 * intentions, a timeout, a retried 503) carry the expected fields and
 * flags; a credential sent in `authorization` and in the query string
 * appears in no log and no span; a ServiceDefaults switch turns one
 * service's logs off.
 */
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import {
  type App,
  adminJson,
  allowFrom,
  applyResources,
  meshCleanup,
  type SidecarProc,
  startApp,
  startProxy,
  waitEndpoints,
  waitFor,
} from "./helpers/mesh.js";
import { startWeftServer, tempDir, type WeftServer } from "./helpers/weft.js";

// biome-ignore lint/suspicious/noExplicitAny: OTLP JSON and access-log lines, read field by field
type Json = any;

interface OtlpSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  kind: number;
  name: string;
  attributes: Record<string, unknown>;
}

const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;
const SECRET = "SECRET-7f3a9c";

let receiver: Server;
const bodies: Json[] = [];
let cp: WeftServer;
const apps = new Map<string, App>();
const sidecars = new Map<string, SidecarProc>();
const logFiles = new Map<string, string>();
/** Local upstream ports: a's sidecar reaches b and c, b's reaches c. */
const port = { aToB: 0, aToC: 0, bToC: 0 };

function spans(): OtlpSpan[] {
  const out: OtlpSpan[] = [];
  for (const b of bodies) {
    for (const rs of b.resourceSpans ?? []) {
      const service = rs.resource?.attributes?.find((a: Json) => a.key === "service.name")?.value
        ?.stringValue;
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          const attributes: Record<string, unknown> = {};
          for (const a of s.attributes ?? []) attributes[a.key] = Object.values(a.value ?? {})[0];
          out.push({
            service,
            traceId: s.traceId,
            spanId: s.spanId,
            parentSpanId: s.parentSpanId || undefined,
            kind: s.kind,
            name: s.name,
            attributes,
          });
        }
      }
    }
  }
  return out;
}

function accessLines(service: string): Json[] {
  let text = "";
  try {
    text = readFileSync(logFiles.get(service) as string, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l))
    .filter((l) => l.msg === "access");
}

function randomHex(bytes: number): string {
  let s = "";
  for (let i = 0; i < bytes; i++)
    s += Math.floor(Math.random() * 256)
      .toString(16)
      .padStart(2, "0");
  return s;
}

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method === "POST" && req.url === "/v1/traces") {
        bodies.push(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
  const otlp = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/traces`;

  cp = await startWeftServer({ store: "memory", dev: true });
  port.aToB = await freePort();
  port.aToC = await freePort();
  port.bToC = await freePort();
  await applyResources(cp.addr, [
    // Tracing before the sidecars start: each loads its exporter before it says ready.
    { kind: "Mesh", name: "mesh", tracing: { endpoint: otlp, sampling: 1 } },
    allowFrom("b", "a"),
    // No intention lets a call c: a's calls to c are denied at c's inbound.
    allowFrom("c", "b"),
    { kind: "ServiceDefaults", name: "b", protocol: "http" },
    {
      kind: "ServiceDefaults",
      name: "c",
      protocol: "http",
      timeouts: { request: "400ms" },
      retries: {
        numRetries: 2,
        retryOn: ["5xx"],
        backoff: { baseInterval: "1ms", maxInterval: "5ms" },
      },
    },
  ]);
  const logDir = tempDir("weft-access-");
  const start = async (service: string, nextPort: number | undefined, upstreams: Record<string, number>) => {
    const app = await startApp("trace-app.mjs", {
      env: { NAME: service, ...(nextPort !== undefined ? { NEXT_PORT: String(nextPort) } : {}) },
    });
    apps.set(service, app);
    const file = join(logDir, `${service}.log`);
    logFiles.set(service, file);
    const sidecar = await startProxy({
      service,
      appPort: app.port,
      protocol: "http",
      health: { http: "/healthz" },
      upstreams,
      server: cp.addr,
      args: ["--access-log", file],
    });
    sidecars.set(service, sidecar);
  };
  await Promise.all([
    start("a", port.aToB, { b: port.aToB, c: port.aToC }),
    start("b", port.bToC, { c: port.bToC }),
    start("c", undefined, {}),
  ]);
  const a = sidecars.get("a") as SidecarProc;
  const b = sidecars.get("b") as SidecarProc;
  await waitEndpoints(a.adminPort, "b", 1);
  await waitEndpoints(a.adminPort, "c", 1);
  await waitEndpoints(b.adminPort, "c", 1);
}, 120_000);

afterAll(async () => {
  await meshCleanup();
  await new Promise<void>((r) => receiver?.close(() => r()));
});

const appUrl = (service: string) => `http://127.0.0.1:${(apps.get(service) as App).port}`;

/** The spans of one trace, once `n` have arrived. */
async function traceSpans(traceId: string, n: number): Promise<OtlpSpan[]> {
  return waitFor(
    () => {
      const s = spans().filter((x) => x.traceId === traceId);
      return s.length >= n ? s : undefined;
    },
    20_000,
    { what: `${n} spans of trace ${traceId}`, intervalMs: 100 },
  );
}

/** The four spans of a chain call, each checked as the child of the one before. */
function chainOf(all: OtlpSpan[], rootParent: string | undefined) {
  const one = (service: string, kind: number) => {
    const found = all.filter((s) => s.service === service && s.kind === kind);
    expect(found, `${service} ${kind === SPAN_KIND_CLIENT ? "client" : "server"} spans`).toHaveLength(1);
    return found[0] as OtlpSpan;
  };
  const clientAB = one("a", SPAN_KIND_CLIENT);
  const serverB = one("b", SPAN_KIND_SERVER);
  const clientBC = one("b", SPAN_KIND_CLIENT);
  const serverC = one("c", SPAN_KIND_SERVER);
  expect(all).toHaveLength(4);
  expect(clientAB.parentSpanId).toBe(rootParent);
  expect(serverB.parentSpanId).toBe(clientAB.spanId);
  expect(clientBC.parentSpanId).toBe(serverB.spanId);
  expect(serverC.parentSpanId).toBe(clientBC.spanId);
  return { clientAB, serverB, clientBC, serverC };
}

describe("tracing across a -> b -> c", () => {
  const T = randomHex(16);
  const parent = randomHex(8);
  let chain: ReturnType<typeof chainOf>;
  let answer: Json;

  it("continues the app's traceparent through both hops with the client/server chain", async () => {
    // First, a request the caller decided not to sample: passed on, never exported.
    const unsampledTrace = randomHex(16);
    const u = await http(appUrl("a"), "/chain/unsampled", {
      headers: { traceparent: `00-${unsampledTrace}-${randomHex(8)}-00` },
    });
    expect(u.status).toBe(200);
    expect(u.body.next.body.next.body.received.traceparent).toMatch(
      new RegExp(`^00-${unsampledTrace}-[0-9a-f]{16}-00$`),
    );

    const r = await http(appUrl("a"), `/chain/orders?token=${SECRET}`, {
      headers: {
        traceparent: `00-${T}-${parent}-01`,
        tracestate: "vendor=abc",
        authorization: `Bearer ${SECRET}`,
      },
    });
    expect(r.status).toBe(200);
    answer = r.body;
    chain = chainOf(await traceSpans(T, 4), parent);
    console.log(
      `trace ${T}: ${[chain.clientAB, chain.serverB, chain.clientBC, chain.serverC]
        .map(
          (s) =>
            `${s.service}/${s.kind === SPAN_KIND_CLIENT ? "client" : "server"} ${s.spanId}<-${s.parentSpanId}`,
        )
        .join(", ")}`,
    );
    // The batch with the unsampled request's spans (had there been any) went out before these.
    expect(spans().filter((s) => s.traceId === unsampledTrace)).toEqual([]);
  });

  it("gives each app its sidecar's server span as parent, tracestate passed on unchanged", () => {
    const atB = answer.next.body.received;
    const atC = answer.next.body.next.body.received;
    expect(atB.traceparent).toBe(`00-${T}-${chain.serverB.spanId}-01`);
    expect(atC.traceparent).toBe(`00-${T}-${chain.serverC.spanId}-01`);
    expect(atB.tracestate).toBe("vendor=abc");
    expect(atC.tracestate).toBe("vendor=abc");
    // No B3 added to a request that came without it.
    expect(atC.b3).toBeUndefined();
  });

  it("records the request's attributes, never its query", () => {
    expect(chain.clientAB.attributes).toMatchObject({
      "http.request.method": "GET",
      "url.path": "/chain/orders",
      "http.response.status_code": 200,
      "peer.service": "b",
      "weft.upstream.cluster": "b",
      "weft.response_flags": "-",
    });
    expect(chain.serverC.attributes).toMatchObject({ "peer.service": "b", "http.response.status_code": 200 });
    expect(JSON.stringify(bodies)).not.toContain(SECRET);
  });

  it("answers B3 in B3 and keeps the trace id", async () => {
    const t = randomHex(16);
    const b3Parent = randomHex(8);
    const r = await http(appUrl("a"), "/chain/b3", { headers: { b3: `${t}-${b3Parent}-1` } });
    expect(r.status).toBe(200);
    const atC = r.body.next.body.next.body.received;
    const { serverC } = chainOf(await traceSpans(t, 4), b3Parent);
    expect(atC.b3).toMatch(new RegExp(`^${t}-${serverC.spanId}-1-[0-9a-f]{16}$`));
    expect(atC.traceparent).toBe(`00-${t}-${serverC.spanId}-01`);
  });

  it("starts a new trace for a request without trace headers", async () => {
    const r = await http(appUrl("a"), "/chain/new");
    expect(r.status).toBe(200);
    const tp = r.body.next.body.received.traceparent as string;
    const traceId = tp.split("-")[1] as string;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    chainOf(await traceSpans(traceId, 4), undefined);
  });
});

describe("access logs", () => {
  const direct = (local: number) => `http://127.0.0.1:${local}`;

  it("logs the chain call on every sidecar, with identities, trace id and no credential", async () => {
    const t = randomHex(16);
    const r = await http(appUrl("a"), `/chain/log?token=${SECRET}`, {
      headers: { traceparent: `00-${t}-${randomHex(8)}-01`, authorization: `Bearer ${SECRET}` },
    });
    expect(r.status).toBe(200);
    const line = (service: string, direction: string) =>
      waitFor(() => accessLines(service).find((l) => l.traceId === t && l.direction === direction), 10_000, {
        what: `${service} ${direction} access-log line`,
      });
    const aOut = await line("a", "outbound");
    expect(aOut).toMatchObject({
      msg: "access",
      type: "http",
      direction: "outbound",
      source: { service: "a", spiffeId: "spiffe://weft.local/ns/default/svc/a" },
      destination: { service: "b", spiffeId: "spiffe://weft.local/ns/default/svc/b" },
      method: "GET",
      authority: `127.0.0.1:${port.aToB}`,
      path: "/chain/log",
      status: 200,
      flags: "-",
      cluster: "b",
      traceId: t,
    });
    console.log(`a's access-log line: ${JSON.stringify(aOut)}`);
    expect(typeof aOut.time).toBe("string");
    expect(aOut.durationMs).toBeGreaterThan(0);
    expect(aOut.upstream).toBe(
      (await adminJson(sidecars.get("b")?.adminPort as number, "/config")).instanceId,
    );
    const bIn = await line("b", "inbound");
    expect(bIn).toMatchObject({
      source: { service: "a", spiffeId: "spiffe://weft.local/ns/default/svc/a" },
      destination: { service: "b" },
      path: "/chain/log",
      status: 200,
      traceId: t,
    });
    await line("b", "outbound");
    await line("c", "inbound");
    // Only the listed fields: no header of the request made it into a line.
    expect(Object.keys(aOut).sort()).toEqual(
      [
        "authority",
        "cluster",
        "destination",
        "direction",
        "durationMs",
        "flags",
        "level",
        "method",
        "msg",
        "path",
        "source",
        "status",
        "time",
        "traceId",
        "type",
        "upstream",
      ].sort(),
    );
  });

  it("logs a denied call, a timeout and a retried failure with their flags", async () => {
    // a -> c: no intention allows it; c's inbound refuses (RBAC) and a's outbound relays the 403.
    const denied = await http(direct(port.aToC), "/denied");
    expect(denied.status).toBe(403);
    const cDenied = await waitFor(
      () => accessLines("c").find((l) => l.path === "/denied" && l.direction === "inbound"),
      10_000,
      { what: "c's line for the denied call" },
    );
    expect(cDenied).toMatchObject({ source: { service: "a" }, status: 403, flags: "RBAC" });
    const aDenied = await waitFor(() => accessLines("a").find((l) => l.path === "/denied"), 10_000);
    expect(aDenied).toMatchObject({ direction: "outbound", destination: { service: "c" }, status: 403 });

    // b -> c: c's ServiceDefaults give a 400 ms request timeout.
    const slow = await http(direct(port.bToC), "/slow?delay=3000");
    expect(slow.status).toBe(504);
    const bTimeout = await waitFor(() => accessLines("b").find((l) => l.path === "/slow"), 10_000);
    expect(bTimeout).toMatchObject({ direction: "outbound", status: 504, flags: "UT" });

    // b -> c: a 503 retried twice (c's retry policy), the last failure answered.
    const failing = await http(direct(port.bToC), "/fail?status=503");
    expect(failing.status).toBe(503);
    const bRetry = await waitFor(() => accessLines("b").find((l) => l.path === "/fail"), 10_000);
    expect(bRetry).toMatchObject({ direction: "outbound", status: 503, retries: 2, flags: "URX" });
    const cTries = await waitFor(
      () => {
        const l = accessLines("c").filter((x) => x.path === "/fail");
        return l.length === 3 ? l : undefined;
      },
      10_000,
      { what: "c's three lines for the retried request" },
    );
    expect(cTries.map((l) => l.status)).toEqual([503, 503, 503]);
    for (const l of [cDenied, aDenied, bTimeout, bRetry]) console.log(`flags line: ${JSON.stringify(l)}`);
  });

  it("turns a service's access logs off from ServiceDefaults", async () => {
    await applyResources(cp.addr, [
      { kind: "ServiceDefaults", name: "b", protocol: "http", accessLogs: { enabled: false } },
    ]);
    const b = sidecars.get("b") as SidecarProc;
    await waitFor(
      async () => (await adminJson(b.adminPort, "/config")).snapshot?.accessLog?.enabled === false,
      10_000,
      {
        what: "b's snapshot with access logs off",
      },
    );
    const t = randomHex(16);
    const r = await http(appUrl("a"), "/chain/quiet", {
      headers: { traceparent: `00-${t}-${randomHex(8)}-01` },
    });
    expect(r.status).toBe(200);
    await waitFor(() => accessLines("c").find((l) => l.traceId === t), 10_000, { what: "c's line" });
    await waitFor(() => accessLines("a").find((l) => l.traceId === t), 10_000, { what: "a's line" });
    // b's lines, had it written any, would have been flushed before a's (its requests end first); margin anyway.
    await new Promise((r) => setTimeout(r, 300));
    expect(accessLines("b").filter((l) => l.traceId === t)).toEqual([]);
  });

  it("never writes a credential to any log", () => {
    for (const service of ["a", "b", "c"]) {
      const s = sidecars.get(service) as SidecarProc;
      const text = readFileSync(logFiles.get(service) as string, "utf8");
      expect(text.length).toBeGreaterThan(0);
      expect(text).not.toContain(SECRET);
      expect(s.stderr()).not.toContain(SECRET);
      expect(s.stdout()).not.toContain(SECRET);
    }
  });
});
