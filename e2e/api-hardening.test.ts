/**
 * The control plane's HTTP API listener against HARDENING.md's attack
 * classes, over raw `node:net` sockets (an HTTP client would sanitise the
 * input): request smuggling, pipelining, oversized and too many headers,
 * slowloris, slow bodies, a streamed oversized body (server RSS bounded),
 * path tricks with a read-only token, random JSON bodies (fast-check) and a
 * connection flood. One real `weft server` process; its listener timeouts
 * are shortened with WEFT_API_HEADERS_TIMEOUT_MS / WEFT_API_REQUEST_TIMEOUT_MS
 * so that the slow cases finish in seconds.
 *
 * Already covered elsewhere (e2e/bad-input.test.ts): malformed / mistyped /
 * oversized (Content-Length) JSON, 401/403, 415, unknown routes.
 */
import { readdirSync, readlinkSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { SERVER_LIMITS } from "@weft/controlplane";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken, http } from "./helpers/http.js";
import { RssSampler } from "./helpers/proc.js";
import { cleanup, startWeftServer, type WeftServer } from "./helpers/weft.js";

const HEADERS_TIMEOUT_MS = 1_500;
const REQUEST_TIMEOUT_MS = 2_500;
/** Node checks held connections against the timeouts this often (server.ts: connectionsCheckingInterval). */
const CHECK_INTERVAL_MS = 1_000;
/** Scheduling slack on a loaded CI machine. */
const SLACK_MS = 1_500;
const MAX_BODY_BYTES = 1024 * 1024;
const MiB = 1024 * 1024;

let server: WeftServer;
let op: string;
let readToken: string;
let readAccessor: string;
let revisionBefore: number;

// --- figures for the summary line ---
let hostile = 0;
let bypasses = 0;
let fiveXX = 0;
let rssStart = 0;
/** The server's RSS, sampled every 100 ms from the end of beforeAll. */
const rss = new RssSampler(() => server.pid);

const sockets = new Set<Socket>();

/** TCP sockets the server process holds open (listener included). */
function serverSockets(): number {
  let n = 0;
  try {
    for (const fd of readdirSync(`/proc/${server.pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${server.pid}/fd/${fd}`).startsWith("socket:")) n++;
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return -1;
  }
  return n;
}

async function waitFor(cond: () => boolean, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(stepMs);
  }
  return cond();
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function open(allowHalfOpen = false): Socket {
  const s = connect({ port: server.port, host: "127.0.0.1", allowHalfOpen });
  s.on("error", () => {});
  sockets.add(s);
  s.once("close", () => sockets.delete(s));
  return s;
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  // biome-ignore lint/suspicious/noExplicitAny: test code reads arbitrary JSON fields
  json: any;
}

/** Splits a byte stream into HTTP/1.1 responses (our server always sends Content-Length). */
function parseResponses(buf: Buffer): RawResponse[] {
  const out: RawResponse[] = [];
  let off = 0;
  while (off < buf.length) {
    const end = buf.indexOf("\r\n\r\n", off);
    if (end < 0) break;
    const [statusLine = "", ...lines] = buf.subarray(off, end).toString("latin1").split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!m) break;
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(":");
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const len = Number(headers["content-length"] ?? 0);
    const start = end + 4;
    if (buf.length < start + len) break;
    const body = buf.subarray(start, start + len).toString("utf8");
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      json = undefined;
    }
    out.push({ status: Number(m[1]), headers, body, json });
    off = start + len;
  }
  return out;
}

interface Exchange {
  responses: RawResponse[];
  /** Status lines seen anywhere in the stream (catches a response the parser above could not frame). */
  statusLines: number;
  raw: string;
  /** The server closed (FIN or reset) before our deadline. */
  closed: boolean;
  ms: number;
}

/** Writes `payload` on a fresh connection; collects until `expect` responses, the server closes, or `timeoutMs`. */
function exchange(
  payload: string | Buffer,
  opts: { expect?: number; timeoutMs?: number } = {},
): Promise<Exchange> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const chunks: Buffer[] = [];
    const sock = open();
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const buf = Buffer.concat(chunks);
      const raw = buf.toString("latin1");
      resolve({
        responses: parseResponses(buf),
        statusLines: (raw.match(/HTTP\/1\.[01] \d{3} /g) ?? []).length,
        raw,
        closed,
        ms: Date.now() - t0,
      });
    };
    const timer = setTimeout(() => finish(false), opts.timeoutMs ?? 3_000);
    sock.on("data", (c: Buffer) => {
      chunks.push(c);
      if (opts.expect !== undefined && parseResponses(Buffer.concat(chunks)).length >= opts.expect) {
        finish(false);
      }
    });
    sock.on("end", () => finish(true));
    sock.on("close", () => finish(true));
    sock.write(payload);
  });
}

/** The error shape of docs/api.md, and nothing a client should never see. */
function expectErrorShape(text: string, json: unknown): void {
  const e = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  expect(typeof e?.code, text).toBe("string");
  expect(e?.code as string, text).toMatch(/^WEFT_ERR_[A-Z_]+$/);
  expect(typeof e?.message, text).toBe("string");
  expect(Object.keys(json as object), text).toEqual(["error"]);
  expect(text).not.toMatch(/\n\s+at |\s{4}at |\.ts:\d+|\.js:\d+|\/work\/|node_modules|file:\/\//);
}

function countStatus(status: number): void {
  if (status >= 500) fiveXX++;
}

beforeAll(async () => {
  server = await startWeftServer({
    env: {
      WEFT_API_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      WEFT_API_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    },
  });
  op = server.token!;
  ({ secretId: readToken, accessorId: readAccessor } = await createToken(
    server.url,
    op,
    ["read"],
    "read only",
  ));
  const a = await http(server.url, "/v1/config/apply", {
    token: op,
    body: { resources: [{ kind: "Intention", name: "keep", sources: [{ name: "web", action: "allow" }] }] },
  });
  expect(a.status, a.text).toBe(200);
  const reg = await http(server.url, "/v1/catalog/instances", {
    token: op,
    method: "PUT",
    body: {
      id: "x",
      service: "api",
      address: "127.0.0.1",
      port: 9001,
      checks: [{ id: "ttl", ttl: "10m", deregisterCriticalAfter: "10m", status: "passing" }],
    },
  });
  expect(reg.status, reg.text).toBe(201);
  const s = await http(server.url, "/v1/status");
  revisionBefore = s.body.revision;
  rssStart = rss.start(100);
});

afterAll(async () => {
  rss.stop();
  for (const s of sockets) s.destroy();
  if (server) {
    const alive = server.proc.exitCode === null && server.proc.signalCode === null;
    console.log(
      `API listener: ${hostile} hostile inputs, ${bypasses} bypasses, ${alive ? 0 : 1} crashes, ${fiveXX} 5xx, ` +
        `RSS ${rssStart.toFixed(0)}→${rss.peak.toFixed(0)} MB`,
    );
  }
  await cleanup();
});

async function revision(): Promise<number> {
  const s = await http(server.url, "/v1/status", { timeoutMs: 2_000 });
  expect(s.status).toBe(200);
  return s.body.revision;
}

async function keepExists(): Promise<boolean> {
  const r = await http(server.url, "/v1/config/intention/keep", { token: op });
  return r.status === 200;
}

// ---------------------------------------------------------------------------

describe("request smuggling (raw sockets)", () => {
  const smuggled = () =>
    `DELETE /v1/config/intention/keep HTTP/1.1\r\nHost: weft\r\nAuthorization: Bearer ${op}\r\n\r\n`;
  const front = (headers: string) =>
    `POST /v1/config/validate HTTP/1.1\r\nHost: weft\r\nAuthorization: Bearer ${op}\r\nContent-Type: application/json\r\n${headers}`;

  const cases: { name: string; payload: () => string }[] = [
    {
      name: "Content-Length + Transfer-Encoding (CL.TE)",
      payload: () =>
        `${front("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")}0\r\n\r\n${smuggled()}`,
    },
    {
      name: "Transfer-Encoding + Content-Length (TE.CL)",
      payload: () => {
        const s = smuggled();
        return `${front(`Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n`)}${s.length.toString(16)}\r\n${s}\r\n0\r\n\r\n`;
      },
    },
    {
      name: "two different Content-Lengths",
      payload: () =>
        `${front(`Content-Length: 0\r\nContent-Length: ${smuggled().length}\r\n\r\n`)}${smuggled()}`,
    },
    {
      name: "Content-Length list '0, N'",
      payload: () => `${front(`Content-Length: 0, ${smuggled().length}\r\n\r\n`)}${smuggled()}`,
    },
    {
      name: "Transfer-Encoding: xchunked",
      payload: () =>
        `${front("Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\n")}0\r\n\r\n${smuggled()}`,
    },
    {
      name: "Transfer-Encoding: chunked, identity",
      payload: () =>
        `${front("Content-Length: 5\r\nTransfer-Encoding: chunked, identity\r\n\r\n")}0\r\n\r\n${smuggled()}`,
    },
    {
      name: "Transfer-Encoding: identity (no CL)",
      payload: () => `${front("Transfer-Encoding: identity\r\n\r\n")}{}${smuggled()}`,
    },
    {
      name: "space before the colon (Transfer-Encoding : chunked)",
      payload: () =>
        `${front("Content-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n")}0\r\n\r\n${smuggled()}`,
    },
    {
      name: "tab before the colon (Transfer-Encoding\\t: chunked)",
      payload: () =>
        `${front("Content-Length: 5\r\nTransfer-Encoding\t: chunked\r\n\r\n")}0\r\n\r\n${smuggled()}`,
    },
    {
      name: "vertical tab in the value (Transfer-Encoding: \\vchunked)",
      payload: () =>
        `${front("Content-Length: 5\r\nTransfer-Encoding: \x0bchunked\r\n\r\n")}0\r\n\r\n${smuggled()}`,
    },
    {
      name: "two Transfer-Encoding headers (chunked, then identity)",
      payload: () =>
        `${front("Content-Length: 5\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n")}0\r\n\r\n${smuggled()}`,
    },
    {
      name: "obs-fold continuation of Transfer-Encoding",
      payload: () =>
        `${front("Content-Length: 5\r\nTransfer-Encoding: identity\r\n chunked\r\n\r\n")}0\r\n\r\n${smuggled()}`,
    },
    {
      name: "obs-fold continuation of an ordinary header",
      payload: () => `GET /v1/status HTTP/1.1\r\nHost: weft\r\nX-A: one\r\n\ttwo\r\n\r\n${smuggled()}`,
    },
    {
      name: "bare LF line endings",
      payload: () => `GET /v1/status HTTP/1.1\nHost: weft\nContent-Length: 0\n\n${smuggled()}`,
    },
    {
      name: "bare LF inside the header block (CL hidden behind LF)",
      payload: () => `${front("X-A: a\nContent-Length: 2\r\n\r\n")}{}${smuggled()}`,
    },
    {
      name: "bare CR inside a header value",
      payload: () =>
        `GET /v1/status HTTP/1.1\r\nHost: weft\r\nX-A: a\rContent-Length: 50\r\n\r\n${smuggled()}`,
    },
    {
      name: "NUL inside a header value",
      payload: () => `GET /v1/status HTTP/1.1\r\nHost: weft\r\nX-A: a\x00b\r\n\r\n${smuggled()}`,
    },
    {
      name: "invalid chunk size",
      payload: () => `${front("Transfer-Encoding: chunked\r\n\r\n")}zz\r\n{}\r\n0\r\n\r\n${smuggled()}`,
    },
    {
      name: "overflowing chunk size",
      payload: () =>
        `${front("Transfer-Encoding: chunked\r\n\r\n")}fffffffffffffffff1\r\n{}\r\n0\r\n\r\n${smuggled()}`,
    },
    {
      name: "negative Content-Length",
      payload: () => `${front("Content-Length: -1\r\n\r\n")}${smuggled()}`,
    },
    {
      name: "Content-Length with a sign",
      payload: () => `${front("Content-Length: +2\r\n\r\n")}{}${smuggled()}`,
    },
    {
      name: "Content-Length in hex",
      payload: () => `${front("Content-Length: 0x2\r\n\r\n")}{}${smuggled()}`,
    },
    {
      name: "HTTP/1.0 with Transfer-Encoding chunked and CL",
      payload: () =>
        `POST /v1/config/validate HTTP/1.0\r\nHost: weft\r\nAuthorization: Bearer ${op}\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled()}`,
    },
  ];

  it.each(cases)("$name -> 400 (or closed), nothing smuggled", async (c) => {
    hostile++;
    const r = await exchange(c.payload(), { timeoutMs: 3_000 });
    for (const res of r.responses) countStatus(res.status);
    // At most one answer, and it is the refusal: never a second (smuggled) response.
    expect(r.statusLines, r.raw).toBeLessThanOrEqual(1);
    if (r.responses.length === 1) {
      const res = r.responses[0] as RawResponse;
      expect(res.status, r.raw).toBe(400);
      expect(res.headers.connection, r.raw).toBe("close");
      expectErrorShape(res.body, res.json);
    } else {
      expect(r.raw, "a response the test could not frame").toBe("");
    }
    // Refused ambiguity also closes the connection.
    expect(r.closed, `server kept the connection open after: ${r.raw}`).toBe(true);
    if (r.statusLines > 1) bypasses++;
  });

  it("no smuggled request was processed: revision unchanged, the intention still exists", async () => {
    expect(await revision()).toBe(revisionBefore);
    expect(await keepExists()).toBe(true);
  });

  it("a clean request behind a refused one on the same connection is not answered either", async () => {
    hostile++;
    // The second request is valid on its own; after a parse error the connection is dead.
    const r = await exchange(
      `GET /v1/status HTTP/1.1\r\nHost: weft\r\nX-A: a\x00b\r\n\r\nGET /v1/status HTTP/1.1\r\nHost: weft\r\n\r\n`,
    );
    expect(r.statusLines, r.raw).toBe(1);
    expect(r.responses[0]?.status).toBe(400);
  });
});

describe("pipelining", () => {
  it("three requests on one connection are answered in order", async () => {
    const r = await exchange(
      "GET /v1/status HTTP/1.1\r\nHost: weft\r\n\r\n" +
        `GET /v1/config/intention HTTP/1.1\r\nHost: weft\r\nAuthorization: Bearer ${readToken}\r\n\r\n` +
        "GET /v1/nothing HTTP/1.1\r\nHost: weft\r\n\r\n",
      { expect: 3 },
    );
    expect(
      r.responses.map((x) => x.status),
      r.raw,
    ).toEqual([200, 200, 404]);
    expect(r.responses[0]?.json.revision).toBe(revisionBefore);
    expect(r.responses[1]?.json.map((x: { name: string }) => x.name)).toEqual(["keep"]);
    expect(r.responses[2]?.json.error.code).toBe("WEFT_ERR_ROUTE_NOT_FOUND");
  });

  it("an early answer (405 before the body was read) closes: a malformed rest draws no second response", async () => {
    hostile++;
    const r = await new Promise<string>((resolve) => {
      const sock = open();
      let data = "";
      sock.on("data", (c: Buffer) => {
        data += c.toString("latin1");
      });
      sock.on("close", () => resolve(data));
      setTimeout(() => sock.destroy(), 3_000);
      sock.write(
        `PUT /v1/config/intention/keep HTTP/1.1\r\nHost: weft\r\nAuthorization: Bearer ${op}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
      );
      // The rest of the "body" arrives after the answer: an invalid chunk, then a smuggled DELETE.
      setTimeout(() => {
        if (!sock.destroyed)
          sock.write(
            `zz\r\n\r\nDELETE /v1/config/intention/keep HTTP/1.1\r\nHost: weft\r\nAuthorization: Bearer ${op}\r\n\r\n`,
          );
      }, 200);
    });
    const rs = parseResponses(Buffer.from(r, "latin1"));
    expect(
      rs.map((x) => x.status),
      r,
    ).toEqual([405]);
    expect(rs[0]?.headers.connection).toBe("close");
    expect((r.match(/HTTP\/1\.1 \d{3} /g) ?? []).length, r).toBe(1);
    expect(await keepExists()).toBe(true);
  });

  it("a pipelined request behind a 413 is not processed", async () => {
    hostile++;
    const r = await exchange(
      `POST /v1/config/validate HTTP/1.1\r\nHost: weft\r\nAuthorization: Bearer ${op}\r\nContent-Type: application/json\r\nContent-Length: ${2 * MiB}\r\n\r\n` +
        `DELETE /v1/config/intention/keep HTTP/1.1\r\nHost: weft\r\nAuthorization: Bearer ${op}\r\n\r\n`,
      { timeoutMs: 3_000 },
    );
    expect(r.statusLines, r.raw).toBe(1);
    expect(r.responses[0]?.status).toBe(413);
    expect(await keepExists()).toBe(true);
  });
});

describe("oversized and too many headers", () => {
  it(`a header over ${SERVER_LIMITS.maxHeaderSize} bytes -> 431`, async () => {
    hostile++;
    const r = await exchange(
      `GET /v1/status HTTP/1.1\r\nHost: weft\r\nX-Big: ${"a".repeat(SERVER_LIMITS.maxHeaderSize + 1024)}\r\n\r\n`,
    );
    expect(
      r.responses.map((x) => x.status),
      r.raw,
    ).toEqual([431]);
    expectErrorShape(r.responses[0]!.body, r.responses[0]!.json);
    expect(r.responses[0]!.json.error.code).toBe("WEFT_ERR_HEADERS_TOO_LARGE");
    expect(r.closed).toBe(true);
  });

  it("many small headers adding up past the limit -> 431", async () => {
    hostile++;
    const headers = Array.from({ length: 60 }, (_, i) => `X-H${i}: ${"b".repeat(400)}\r\n`).join("");
    const r = await exchange(`GET /v1/status HTTP/1.1\r\nHost: weft\r\n${headers}\r\n`);
    expect(
      r.responses.map((x) => x.status),
      r.raw,
    ).toEqual([431]);
  });

  // Node's `maxHeadersCount` alone silently DROPS headers past the count; server.ts refuses instead.
  it(`more than ${SERVER_LIMITS.maxHeadersCount} headers -> 431 WEFT_ERR_HEADERS_TOO_LARGE`, async () => {
    for (const split of [false, true]) {
      hostile++;
      const headers = Array.from(
        { length: SERVER_LIMITS.maxHeadersCount + 10 },
        (_, i) => `X-H${i}: ${i}\r\n`,
      ).join("");
      const payload = `GET /v1/catalog/services HTTP/1.1\r\nHost: weft\r\n${headers}Authorization: Bearer ${readToken}\r\n\r\n`;
      let r: Exchange;
      if (!split) {
        r = await exchange(payload);
      } else {
        // Across several TCP segments (Node's slow path that collects headers in JS).
        r = await new Promise<Exchange>((resolve) => {
          const sock = open();
          const chunks: Buffer[] = [];
          let i = 0;
          const step = setInterval(() => {
            sock.write(payload.slice(i, i + 200));
            i += 200;
            if (i >= payload.length) clearInterval(step);
          }, 2);
          const t = setTimeout(() => sock.destroy(), 3_000);
          sock.on("data", (c: Buffer) => chunks.push(c));
          sock.on("close", () => {
            clearInterval(step);
            clearTimeout(t);
            const raw = Buffer.concat(chunks).toString("latin1");
            resolve({
              responses: parseResponses(Buffer.concat(chunks)),
              statusLines: (raw.match(/HTTP\/1\.[01] \d{3} /g) ?? []).length,
              raw,
              closed: true,
              ms: 0,
            });
          });
        });
      }
      expect(
        r.responses.map((x) => x.status),
        r.raw,
      ).toEqual([431]);
      expectErrorShape(r.responses[0]!.body, r.responses[0]!.json);
      expect(r.responses[0]!.headers.connection).toBe("close");
    }
  });

  it(`exactly ${SERVER_LIMITS.maxHeadersCount} headers are accepted`, async () => {
    const headers = Array.from(
      { length: SERVER_LIMITS.maxHeadersCount - 2 },
      (_, i) => `X-H${i}: ${i}\r\n`,
    ).join("");
    const r = await exchange(
      `GET /v1/catalog/services HTTP/1.1\r\nHost: weft\r\n${headers}Authorization: Bearer ${readToken}\r\n\r\n`,
      { expect: 1 },
    );
    expect(
      r.responses.map((x) => x.status),
      r.raw,
    ).toEqual([200]);
  });

  it("a huge URL -> 431 (the request line counts towards the header limit)", async () => {
    hostile++;
    const r = await exchange(
      `GET /v1/config/intention/${"a".repeat(64 * 1024)} HTTP/1.1\r\nHost: weft\r\n\r\n`,
    );
    expect(
      r.responses.map((x) => x.status),
      r.raw,
    ).toEqual([431]);
    expect(r.closed).toBe(true);
  });
});

describe("slow and idle clients", () => {
  it("slowloris: 50 connections sending headers 1 byte/s do not block others and are cut at the headers timeout", async () => {
    const baseline = serverSockets();
    const line = `GET /v1/status HTTP/1.1\r\nHost: weft\r\nX-Slow: ${"s".repeat(200)}`;
    const conns = Array.from({ length: 50 }, () => {
      hostile++;
      // allowHalfOpen: this client never closes its side, so the server must release the connection itself.
      const sock = open(true);
      const c = { sock, t0: Date.now(), endedAt: 0, data: "" };
      sock.on("data", (d: Buffer) => {
        c.data += d.toString("latin1");
      });
      sock.on("end", () => {
        c.endedAt ||= Date.now();
      });
      sock.on("close", () => {
        c.endedAt ||= Date.now();
      });
      return c;
    });
    let pos = 0;
    const drip = setInterval(() => {
      for (const c of conns)
        if (!c.endedAt && !c.sock.destroyed) c.sock.write(line[pos % line.length] as string);
      pos++;
    }, 1_000);
    try {
      await sleep(300);
      expect(serverSockets()).toBeGreaterThanOrEqual(baseline + 40);
      // While they are held, a normal client is answered at once (a liveness bound, not a benchmark).
      for (let i = 0; i < 3; i++) {
        const t0 = Date.now();
        const s = await http(server.url, "/v1/status", { timeoutMs: 2_000 });
        expect(s.status).toBe(200);
        expect(Date.now() - t0).toBeLessThan(1_000);
        await sleep(200);
      }
      const bound = HEADERS_TIMEOUT_MS + CHECK_INTERVAL_MS + SLACK_MS;
      await waitFor(() => conns.every((c) => c.endedAt > 0), bound + 500);
      for (const c of conns) {
        expect(c.endedAt, "slow connection still open").toBeGreaterThan(0);
        expect(c.endedAt - c.t0).toBeLessThanOrEqual(bound);
        expect(c.endedAt - c.t0).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 100);
        // The server says why (408) when it can.
        if (c.data) expect(c.data).toMatch(/^HTTP\/1\.1 408 /);
      }
      // ...and the server really released them (not just half-closed its side).
      const released = await waitFor(() => serverSockets() <= baseline + 2, 2_000);
      expect(released, `server still holds ${serverSockets() - baseline} sockets`).toBe(true);
    } finally {
      clearInterval(drip);
      for (const c of conns) c.sock.destroy();
    }
  });

  it("slow body: Content-Length 1000 with 10 bytes then a stall is cut at the request timeout", async () => {
    hostile++;
    const baseline = serverSockets();
    const sock = open(true);
    const t0 = Date.now();
    let endedAt = 0;
    let data = "";
    sock.on("data", (d: Buffer) => {
      data += d.toString("latin1");
    });
    sock.on("end", () => {
      endedAt ||= Date.now();
    });
    sock.on("close", () => {
      endedAt ||= Date.now();
    });
    sock.write(
      `PUT /v1/catalog/instances HTTP/1.1\r\nHost: weft\r\nAuthorization: Bearer ${op}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"service"`,
    );
    try {
      await sleep(300);
      const s0 = Date.now();
      const s = await http(server.url, "/v1/status", { timeoutMs: 2_000 });
      expect(s.status).toBe(200);
      expect(Date.now() - s0).toBeLessThan(1_000);
      const bound = REQUEST_TIMEOUT_MS + CHECK_INTERVAL_MS + SLACK_MS;
      await waitFor(() => endedAt > 0, bound + 500);
      expect(endedAt, "slow body still open").toBeGreaterThan(0);
      expect(endedAt - t0).toBeLessThanOrEqual(bound);
      expect(endedAt - t0).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
      const rs = parseResponses(Buffer.from(data, "latin1"));
      expect(rs.length, data).toBeLessThanOrEqual(1);
      if (rs[0]) {
        expect(rs[0].status, data).toBe(408);
        expectErrorShape(rs[0].body, rs[0].json);
      }
      const released = await waitFor(() => serverSockets() <= baseline + 1, 2_000);
      expect(released, `server still holds ${serverSockets() - baseline} sockets`).toBe(true);
      // Nothing was registered from the partial body.
      expect(await revision()).toBe(revisionBefore);
    } finally {
      sock.destroy();
    }
  });

  it("connection flood: 500 idle connections; /v1/status still answers; the server closes them", async () => {
    const baseline = serverSockets();
    const conns = await Promise.all(
      Array.from(
        { length: 500 },
        () =>
          new Promise<{ sock: Socket; t0: number; endedAt: number }>((resolve) => {
            hostile++;
            const sock = open(true);
            const c = { sock, t0: Date.now(), endedAt: 0 };
            sock.on("end", () => {
              c.endedAt ||= Date.now();
            });
            sock.on("close", () => {
              c.endedAt ||= Date.now();
            });
            sock.once("connect", () => resolve(c));
            sock.once("error", () => resolve(c));
          }),
      ),
    );
    try {
      const t0 = Date.now();
      const s = await http(server.url, "/v1/status", { timeoutMs: 2_000 });
      expect(s.status).toBe(200);
      expect(Date.now() - t0).toBeLessThan(1_000);
      const bound = HEADERS_TIMEOUT_MS + CHECK_INTERVAL_MS + SLACK_MS;
      await waitFor(() => conns.every((c) => c.endedAt > 0), bound + 1_000);
      const open_ = conns.filter((c) => c.endedAt === 0).length;
      expect(open_, `${open_} idle connections still open`).toBe(0);
      const late = conns.filter((c) => c.endedAt - c.t0 > bound).length;
      expect(late).toBe(0);
      const released = await waitFor(() => serverSockets() <= baseline + 2, 2_000);
      expect(released, `server still holds ${serverSockets() - baseline} sockets`).toBe(true);
    } finally {
      for (const c of conns) c.sock.destroy();
    }
  });
});

describe("body size", () => {
  /** Streams a chunked body of up to `total` bytes (with backpressure) until the server cuts it off. */
  async function streamChunked(
    total: number,
  ): Promise<{ sent: number; closed: boolean; responses: RawResponse[] }> {
    const sock = open();
    const chunks: Buffer[] = [];
    let closed = false;
    sock.on("data", (c: Buffer) => chunks.push(c));
    sock.on("close", () => {
      closed = true;
    });
    const piece = Buffer.alloc(64 * 1024, 0x20); // JSON whitespace
    const frame = Buffer.concat([
      Buffer.from(`${piece.length.toString(16)}\r\n`),
      piece,
      Buffer.from("\r\n"),
    ]);
    let sent = 0;
    try {
      sock.write(
        `POST /v1/config/apply HTTP/1.1\r\nHost: weft\r\nAuthorization: Bearer ${op}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
      );
      const deadline = Date.now() + 10_000;
      // Like curl, stop uploading once the server has answered (the answer starts with "HTTP/").
      const answered = () => chunks.length > 0;
      while (sent < total && !closed && !answered() && !sock.destroyed && Date.now() < deadline) {
        sent += piece.length;
        if (!sock.write(frame)) {
          await new Promise<void>((r) => {
            const done = () => {
              clearTimeout(t);
              sock.off("drain", done);
              sock.off("close", done);
              r();
            };
            const t = setTimeout(done, 500);
            sock.on("drain", done);
            sock.on("close", done);
          });
        }
      }
      if (answered() && !closed) sock.end();
      await waitFor(() => closed, 5_000);
      return { sent, closed, responses: parseResponses(Buffer.concat(chunks)) };
    } finally {
      sock.destroy();
    }
  }

  it("chunked bodies streaming 50 MB in all get 413, are cut off, and are not buffered", async () => {
    const total = 50 * MiB;
    const before = rss.sample();
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rss.sample());
    }, 10);
    let pushed = 0;
    let attempts = 0;
    try {
      // Each connection stops at its 413 (a little over 1 MiB), so keep attacking until 50 MB went out.
      while (pushed < total && attempts < 120) {
        attempts++;
        hostile++;
        const r = await streamChunked(20 * MiB);
        pushed += r.sent;
        expect(r.responses[0]?.status).toBe(413);
        expectErrorShape(r.responses[0]!.body, r.responses[0]!.json);
        expect(r.responses[0]!.json.error.code).toBe("WEFT_ERR_BODY_TOO_LARGE");
        expect(r.closed, "the server closes after the 413").toBe(true);
        expect(r.sent).toBeGreaterThan(MAX_BODY_BYTES);
        // The server cut the upload off: it did not read on to the end.
        expect(r.sent).toBeLessThan(20 * MiB);
      }
      await sleep(200);
      peak = Math.max(peak, rss.sample());
      expect(pushed).toBeGreaterThanOrEqual(total);
      expect(peak - before, `RSS ${before.toFixed(0)} -> ${peak.toFixed(0)} MB`).toBeLessThan(50);
    } finally {
      clearInterval(sampler);
    }
  });
});

describe("path tricks with a read-only token", () => {
  const tricks = [
    "/v1/config/intention/..%2f..%2facl%2ftokens",
    "/v1/config/intention/..%2F..%2Facl%2Ftokens",
    "/v1/config/intention/%2e%2e/%2e%2e/acl/tokens",
    "/v1/catalog/instances/..%2f..%2facl%2ftokens",
    "/v1/health/service/..%2f..%2facl%2ftokens",
    "//v1/acl/tokens",
    "/v1//acl/tokens",
    "/v1/acl/tokens/../tokens",
    "/v1/acl/./tokens",
    "/v1/acl/tokens/",
    "/v1/acl/tokens%2f",
    "/v1/acl%2ftokens",
    "/v1/acl/%74okens",
    "/v1/acl/tokens%00",
    "/v1/acl/tokens/%00",
    "/v1/acl/tokens%00/x",
    "/v1/config/intention/keep%00",
    "/v1/ACL/TOKENS",
    "/V1/acl/tokens",
    "/v1/acl/tokens;x=1",
    "/v1/acl/tokens;/..",
    "/v1/acl/tokens#frag",
    "/v1/acl/tokens%23",
    "/v1/acl/tokens%5c",
    "/v1\\acl\\tokens",
    "/v1/acl/tokens%20",
    "/v1/acl/tokens%",
    "/v1/acl/tokens%zz",
    "/v1/acl/token/self/../../tokens",
    "/v1/acl/token/..%2ftokens",
    "http://weft/v1/acl/tokens",
    "*",
    `/v1/config/intention/${"a".repeat(4000)}`,
    `/v1/catalog/instances/${"x".repeat(4000)}`,
    `/v1/health/service/${"%61".repeat(2000)}`,
    "/v1/config/intention/%C3%A9t%C3%A9",
    "/v1/config/intention/\u00e9t\u00e9",
    "/v1/health/service/%F0%9F%98%80",
    "/v1/config/%E2%80%AEnoitnetni",
    "/v1/config/intention/k%C4%B1ep",
    "/v1/config/INTENTION/KEEP",
    "/v1/config/intention/%ff%fe",
    `/v1/acl/tokens/${"%2e%2e%2f".repeat(50)}`,
  ];

  it.each(tricks.map((p) => ({ p, shown: p.length > 60 ? `${p.slice(0, 60)}...` : p })))(
    "GET $shown: no operator route, no token data, error shape",
    async ({ p }) => {
      hostile++;
      const r = await exchange(
        Buffer.from(
          `GET ${p} HTTP/1.1\r\nHost: weft\r\nAuthorization: Bearer ${readToken}\r\nConnection: close\r\n\r\n`,
          "utf8",
        ),
        { expect: 1 },
      );
      expect(r.responses.length, r.raw).toBe(1);
      const res = r.responses[0] as RawResponse;
      countStatus(res.status);
      const leaked =
        /secretId|accessorId/.test(res.body) || res.body.includes(op) || res.body.includes(readAccessor);
      if ((res.status >= 200 && res.status < 300) || leaked) bypasses++;
      expect([400, 403, 404, 405], res.body).toContain(res.status);
      expect(leaked, res.body).toBe(false);
      expectErrorShape(res.body, res.json);
    },
  );

  it("controls: the read token is refused the real token list (403) and can read config (200)", async () => {
    const denied = await http(server.url, "/v1/acl/tokens", { token: readToken });
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe("WEFT_ERR_PERMISSION_DENIED");
    const ok = await http(server.url, "/v1/config/intention/keep", { token: readToken });
    expect(ok.status).toBe(200);
    // Writes through tricks with DELETE are refused too, and nothing moved.
    for (const p of [
      "/v1/config/intention/..%2fkeep",
      "/v1/config/intention/keep/",
      "//v1/config/intention/keep",
    ]) {
      hostile++;
      const r = await exchange(`DELETE ${p} HTTP/1.1\r\nHost: weft\r\nAuthorization: Bearer ${op}\r\n\r\n`, {
        expect: 1,
      });
      expect([400, 404, 405], r.raw).toContain(r.responses[0]?.status);
    }
    expect(await keepExists()).toBe(true);
    expect(await revision()).toBe(revisionBefore);
  });
});

describe("random JSON bodies (fast-check)", () => {
  const endpoints = [
    { method: "PUT", path: "/v1/catalog/instances" },
    { method: "POST", path: "/v1/config/apply" },
    { method: "POST", path: "/v1/config/validate" },
    { method: "PUT", path: "/v1/catalog/instances/x/checks/ttl" },
  ] as const;
  const kinds = ["Mesh", "ServiceDefaults", "Intention", "Route", "Split", "Resolver", "Gateway", "Workload"];

  /** Arbitrary JSON, fc.anything() through JSON, and near-valid shapes that reach deeper validation. */
  const body = fc.oneof(
    fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
    fc.anything({ maxDepth: 3 }).map((v) => {
      try {
        return JSON.stringify(v) ?? "null";
      } catch {
        return "null";
      }
    }),
    fc
      .record({
        resources: fc.array(
          fc.record(
            {
              kind: fc.constantFrom(...kinds),
              name: fc.oneof(fc.constantFrom("api", "web", "keep", "a-b"), fc.string({ maxLength: 70 })),
              sources: fc.jsonValue({ maxDepth: 3 }),
              rules: fc.jsonValue({ maxDepth: 3 }),
              spec: fc.jsonValue({ maxDepth: 3 }),
            },
            { requiredKeys: ["kind", "name"] },
          ),
          { maxLength: 4 },
        ),
      })
      .map((v) => JSON.stringify(v)),
    fc
      .record(
        {
          service: fc.oneof(fc.constant("api"), fc.string({ maxLength: 70 })),
          address: fc.oneof(fc.constant("127.0.0.1"), fc.string({ maxLength: 300 })),
          port: fc.oneof(fc.integer({ min: -10, max: 70_000 }), fc.double()),
          checks: fc.jsonValue({ maxDepth: 3 }),
          status: fc.constantFrom("passing", "warning", "critical", "dead", ""),
          output: fc.string({ maxLength: 5_000 }),
        },
        { requiredKeys: [] },
      )
      .map((v) => JSON.stringify(v)),
  );

  it("300 random bodies: always 2xx or 4xx with the error shape, never 5xx, never > 5 s", async () => {
    const seen = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...endpoints), body, async (ep, text) => {
        hostile++;
        const t0 = Date.now();
        const r = await http(server.url, ep.path, {
          method: ep.method,
          token: op,
          body: text,
          timeoutMs: 5_000,
        });
        seen.set(r.status, (seen.get(r.status) ?? 0) + 1);
        countStatus(r.status);
        expect(Date.now() - t0).toBeLessThan(5_000);
        expect(r.status, `${ep.method} ${ep.path} ${text.slice(0, 300)} -> ${r.text}`).toBeGreaterThanOrEqual(
          200,
        );
        expect(r.status, `${ep.method} ${ep.path} ${text.slice(0, 300)} -> ${r.text}`).toBeLessThan(500);
        if (r.status >= 400) expectErrorShape(r.text, r.body);
      }),
      { numRuns: 300 },
    );
    // Mostly refusals, as expected of random input.
    expect([...seen.keys()].every((s) => s < 500)).toBe(true);
    // Afterwards the server is alive.
    expect(server.proc.exitCode).toBeNull();
    const s = await http(server.url, "/v1/status");
    expect(s.status).toBe(200);
  });
});

describe("afterwards", () => {
  it("the server is still running and answers", async () => {
    expect(server.proc.exitCode).toBeNull();
    expect(server.proc.signalCode).toBeNull();
    const s = await http(server.url, "/v1/status");
    expect(s.status).toBe(200);
    expect(await keepExists()).toBe(true);
    // No stack traces or raw parser errors went to the server's stderr for client errors.
    expect(server.stderr()).not.toMatch(/\n\s+at .*\(/);
  });
});
