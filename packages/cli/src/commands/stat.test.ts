/**
 * `weft stat` and `weft top --once` in-process against a real control plane
 * (memory store, dev mode) fed with stats reports as sidecars send them.
 * e2e/observability-golden.test.ts checks the figures against real sidecars.
 */
import { tmpdir } from "node:os";
import { bucketIndex, GOLDEN_BUCKET_COUNT, WeftClient } from "@weft/api/client";
import { type RunningServer, startServer } from "@weft/controlplane";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "../exit-codes.js";
import { runCaptured } from "../run-captured.suite.js";
import { latencyCell, rpsCell, successCell } from "./stat.js";

let srv: RunningServer;
let addr: string;

function buckets(n: number, ms: number): number[] {
  const b = new Array<number>(GOLDEN_BUCKET_COUNT).fill(0);
  b[bucketIndex(ms)] = n;
  return b;
}

beforeAll(async () => {
  srv = await startServer({
    listen: "127.0.0.1:0",
    storeSpec: "memory",
    dev: true,
    logger: pino({ level: "silent" }),
  });
  addr = srv.url;
  const c = new WeftClient({ addr });
  await c.registerInstance({ id: "api-1", service: "api", address: "127.0.0.1", port: 1001 });
  await c.registerInstance({ id: "web-1", service: "web", address: "127.0.0.1", port: 1002 });
  await c.registerInstance({ id: "db-1", service: "db", address: "127.0.0.1", port: 1003 });
  await c.pushProxyStats("api-1", {
    session: "a",
    seq: 1,
    edges: [
      {
        direction: "inbound",
        source: "web",
        destination: "api",
        requests: 40,
        success: 38,
        buckets: buckets(40, 7),
      },
      {
        direction: "outbound",
        source: "api",
        destination: "db",
        requests: 10,
        success: 10,
        buckets: buckets(10, 1),
      },
    ],
  });
  await c.pushProxyStats("web-1", {
    session: "w",
    seq: 1,
    edges: [
      {
        direction: "outbound",
        source: "web",
        destination: "api",
        requests: 40,
        success: 38,
        buckets: buckets(40, 8),
      },
    ],
  });
});
afterAll(async () => {
  await srv.close();
});

const weft = (...args: string[]) => runCaptured([...args, "--addr", addr], tmpdir());

describe("weft stat", () => {
  it("prints the service's figures, then its callers and what it calls", async () => {
    const r = await weft("stat", "api");
    expect(r.err).toBe("");
    expect(r.code).toBe(EXIT.OK);
    const [head, row] = r.out.split("\n");
    expect(head).toMatch(/^SERVICE\s+RPS\s+SUCCESS\s+P50\s+P95\s+P99\s+REQUESTS$/);
    expect(row).toMatch(/^api\s+\S+\s+95\.00%\s+\S+ms\s+\S+ms\s+\S+ms\s+40$/);
    expect(r.out).toMatch(/inbound \(callers of api\):\nSOURCE\s+DESTINATION[^\n]*\nweb\s+api\s+.*\s40\n/);
    expect(r.out).toMatch(
      /outbound \(called by api\):\nSOURCE\s+DESTINATION[^\n]*\napi\s+db\s+\S+\s+100\.00%.*\s10\n/,
    );
    expect(r.out).toMatch(/window: last \d+(\.\d+)?s/);
  });

  it("--json prints the API answer", async () => {
    const r = await weft("stat", "api", "--json");
    expect(r.code).toBe(EXIT.OK);
    const body = JSON.parse(r.out);
    expect(body.service).toMatchObject({ service: "api", requests: 40, success: 38, successRate: 0.95 });
    expect(body.service.latencyMs.p50).toBeGreaterThan(5);
    expect(body.service.latencyMs.p50).toBeLessThanOrEqual(10);
  });

  it("an unknown service is not found (exit non-zero, one line)", async () => {
    const r = await weft("stat", "ghost");
    expect(r.code).not.toBe(EXIT.OK);
    expect(r.err).toMatch(/^error: service "ghost".*not found \(WEFT_ERR_NOT_FOUND\)\n$/);
  });
});

describe("weft top", () => {
  it("--once prints one frame of every service, idle ones with zeros", async () => {
    const r = await weft("top", "--once");
    expect(r.code).toBe(EXIT.OK);
    const lines = r.out.split("\n");
    expect(lines[0]).toMatch(/^SERVICE\s+RPS\s+SUCCESS/);
    expect(lines.slice(1, 4).map((l) => l.split(/\s+/)[0])).toEqual(["api", "db", "web"]);
    expect(lines[2]).toMatch(/^db\s+0\s+-\s+-\s+-\s+-\s+0$/);
    expect(r.out).toMatch(/services \(inbound\), last/);
  });

  it("--edges --once prints the edges as the callers saw them", async () => {
    const r = await weft("top", "--edges", "--once");
    expect(r.code).toBe(EXIT.OK);
    expect(r.out).toMatch(/^SOURCE\s+DESTINATION\s+RPS/);
    expect(r.out).toMatch(/\napi\s+db\s.*\s10\n/);
    expect(r.out).toMatch(/\nweb\s+api\s.*\s40\n/);
  });

  it("--json prints one API answer; a bad --interval is a usage error", async () => {
    const r = await weft("top", "--json", "--edges");
    expect(JSON.parse(r.out).edges).toHaveLength(2);
    const bad = await weft("top", "--interval", "1ms");
    expect(bad.code).toBe(EXIT.USAGE);
    expect(bad.err).toContain("--interval");
  });
});

describe("cells", () => {
  it("format rates, success and latency readably", () => {
    expect(rpsCell(0)).toBe("0");
    expect(rpsCell(0.6667)).toBe("0.667");
    expect(rpsCell(12.34)).toBe("12.3");
    expect(successCell(null, false)).toBe("-");
    expect(successCell(0.995, false)).toBe("99.50%");
    expect(latencyCell(null)).toBe("-");
    expect(latencyCell(3.456)).toBe("3.46ms");
    expect(latencyCell(1500)).toBe("1.50s");
  });
});
