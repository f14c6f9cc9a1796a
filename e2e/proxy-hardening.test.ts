/**
 * The sidecar's three listeners against HARDENING.md's attack classes, with
 * real `weft proxy` processes: a control plane (`--store memory --dev`), an
 * `api` sidecar in front of a recording app that lives in this process (it
 * keeps every request it receives: method, target, headers), and a `web`
 * sidecar whose outbound listener for `api` plays the app side. The
 * intention on `api` lets `web` do GET under /public and nothing else, so
 * every request the app sees must be a GET under /public: anything else is
 * counted as a bypass, and so is any request that was hidden
 * (`/public/smuggled`, which the rule would allow: it must only ever travel
 * as body bytes).
 *
 * 1. Outbound listener (plain, from the app): smuggling, pipelining,
 *    normalization bypass attempts, spoofed mesh headers, oversized and too
 *    many headers, upgrades (h2c, WebSocket), h2c prior knowledge on an
 *    HTTP/1.1 upstream, binary garbage, a connection flood.
 * 2. Inbound mTLS listener: refused handshakes (no certificate, self-signed,
 *    TLS 1.2, garbage, no ALPN), the TCP ALPN under an L7-only intention, a
 *    peer with a valid certificate of a service without an intention, the
 *    HTTP/1.1 ALPN with the smuggling and normalization tables, and a
 *    hostile HTTP/2 peer with a real mesh certificate for `web` (raw frames,
 *    e2e/helpers/hostile.ts): :path tricks, malformed header blocks, forged
 *    XFCC, frame-level garbage, more than 100 concurrent streams, rapid
 *    reset while legitimate clients are served, CONTINUATION floods, SETTINGS
 *    and PING floods, zero windows and a peer that never reads.
 * 3. Admin listener: methods, huge URLs and headers, unknown paths, no
 *    secrets in /config or /metrics.
 * Slow clients on all three run together (the timeouts are the sidecar's
 * defaults: 10 s for headers and TLS handshakes, so that group takes ~12 s).
 *
 * Throughout, both sidecars' RSS is sampled; at the end they must be alive,
 * under RSS_BOUND_MB, and serve a legitimate request. The figure per
 * listener: "N hostile inputs on L: 0 bypasses, 0 crashes, 0 5xx, RSS ≤ X MB".
 * 501 (a transfer-coding the proxy refuses to relay) is a deliberate refusal
 * and not counted as a 5xx.
 *
 * "A peer that never reads, then resets" covers a Node 20 bug (an HTTP/2
 * session over TLS never learns of the reset): the sidecar's liveness PING
 * (http/liveness.ts) releases the streams and app connections. Observed
 * but not asserted (default limits, printed): a body trickled at 1 byte/s
 * and an idle keep-alive connection are still open after 12 s; the admin
 * listener's slowloris lasts up to ~35 s (node's 30 s sweep).
 */
import { readFileSync } from "node:fs";
import http, { type IncomingHttpHeaders, type ServerResponse } from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import { join, posix } from "node:path";
import type { Duplex } from "node:stream";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  alive,
  FrameFlag,
  FrameType,
  frame,
  H2Error,
  headersFrame,
  hpack,
  pingFrame,
  type RawH2,
  type RawH2Options,
  rawExchange,
  rawH2Tls,
  requestBlock,
  rstFrame,
  Setting,
  settingsFrame,
  sleep,
  socketCount,
  statusLines,
  type TlsClientOptions,
  tcp,
  tlsSocket,
  until,
  windowUpdateFrame,
} from "./helpers/hostile.js";
import { http as httpCall } from "./helpers/http.js";
import { applyResources, meshCleanup, type SidecarProc, startProxy, waitEndpoints } from "./helpers/mesh.js";
import { openssl, opensslCsr } from "./helpers/openssl.js";
import { processRssMb, RssSampler } from "./helpers/proc.js";
import { startWeftServer, tempDir, type WeftServer } from "./helpers/weft.js";

/**
 * A sidecar idles at ~65-85 MB (Node itself is ~45 MB). The limits under
 * attack add: HTTP/1.1 heads of 16 KiB and socket buffers for 500 flooding
 * connections (~20 MB), an HTTP/2 session's nghttp2 state capped at 32 MB
 * (maxSessionMemory), one hostile session at a time; and V8's heap, which a
 * rapid reset grows with the garbage of thousands of streams a second: we
 * measured a plateau at 155-195 MB (10,000 and 40,000 reset streams alike),
 * given back only slowly. 256 MB is that plus slack on a loaded machine. It
 * is not a leak bound: unbounded buffering (an unread 1 GiB response held in
 * memory, a body kept whole) would pass it within a second or two.
 */
const RSS_BOUND_MB = 256;
const MiB = 1024 * 1024;
/** The sidecar's defaults (http/types.ts DEFAULT_LIMITS, transport/mtls.ts). */
const HEADERS_TIMEOUT_MS = 10_000;
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** node:http sweeps for header timeouts every min(1 s, headersTimeout / 2) (http/listener.ts). */
const SWEEP_MS = 1_000;
/** Scheduling slack on two busy cores. */
const SLACK_MS = 3_000;

let cp: WeftServer;
let api: SidecarProc;
let web: SidecarProc;
let apiLocal: number;
let td = "weft.local";
let rootsPem: string[] = [];
const certs: Record<"web" | "evil", { key: string; chain: string }> = {
  web: { key: "", chain: "" },
  evil: { key: "", chain: "" },
};
let selfSigned = { key: "", cert: "" };
const spiffe = (svc: string) => `spiffe://${td}/ns/default/svc/${svc}`;

// ------------------------------------------------------------------ the recording app

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}
/** Every request the api app received, in order. */
const seen: Seen[] = [];
/** Responses to /public/hold, answered when a test releases them. */
const held: ServerResponse[] = [];
const big = { written: 0, active: 0 };
let appServer: http.Server;
let webAppServer: http.Server;
const appSockets = new Set<net.Socket>();

function startRecordingApp(): Promise<number> {
  appServer = http.createServer((req, res) => {
    seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    req.on("error", () => {});
    res.on("error", () => {});
    const path = (req.url ?? "").split("?")[0];
    if (path === "/public/hold") {
      held.push(res);
      req.resume();
      return;
    }
    if (path === "/public/big") {
      req.resume();
      streamBig(res);
      return;
    }
    let bytes = 0;
    req.on("data", (c: Buffer) => {
      bytes += c.length;
    });
    req.on("end", () => {
      const body = `${JSON.stringify({ method: req.method, url: req.url, bytes })}\n`;
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
  });
  appServer.on("connection", (s: net.Socket) => {
    appSockets.add(s);
    s.once("close", () => appSockets.delete(s));
  });
  return new Promise((resolve) =>
    appServer.listen(0, "127.0.0.1", () => resolve((appServer.address() as AddressInfo).port)),
  );
}

/** Up to 1 GiB with backpressure, for as long as someone reads: `big.written` shows how far it got. */
function streamBig(res: ServerResponse): void {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let sent = 0;
  big.active++;
  res.once("close", () => {
    big.active--;
  });
  res.writeHead(200, { "content-type": "application/octet-stream" });
  const pump = () => {
    while (!res.destroyed && sent < 1024 * MiB) {
      sent += chunk.length;
      big.written += chunk.length;
      if (!res.write(chunk)) {
        res.once("drain", pump);
        return;
      }
    }
    if (!res.destroyed) res.end();
  };
  pump();
}

/**
 * Why a request the app received should never have reached it, or
 * undefined. The rule allows GET with a path under /public, compared on the
 * canonical form; the app decodes once (as node apps do) and we resolve dot
 * segments and backslashes the way a lenient router would.
 */
function deniedReached(s: Seen): string | undefined {
  if (s.method !== "GET") return `method ${s.method}`;
  const raw = s.url.split(/[?#]/)[0] ?? "";
  let p = raw;
  try {
    p = decodeURIComponent(raw);
  } catch {
    // Not UTF-8 once decoded: the app would keep it as sent.
  }
  p = posix.normalize(p.replace(/\\/g, "/"));
  if (!raw.startsWith("/public") || !p.startsWith("/public")) return `path ${s.url}`;
  if (raw.includes("smuggled")) return `smuggled request ${s.url}`;
  return undefined;
}

// ------------------------------------------------------------------ figures

type Listener = "outbound" | "inbound" | "admin";
const fig: Record<Listener, { inputs: number; bypasses: number; fiveXX: number; list: string[] }> = {
  outbound: { inputs: 0, bypasses: 0, fiveXX: 0, list: [] },
  inbound: { inputs: 0, bypasses: 0, fiveXX: 0, list: [] },
  admin: { inputs: 0, bypasses: 0, fiveXX: 0, list: [] },
};
const rssWeb = new RssSampler(() => web.pid);
const rssApi = new RssSampler(() => api.pid);

/** Counts one hostile input on `l` and the 5xx among its answers (501 is a deliberate refusal). */
function hostile(l: Listener, statuses: readonly number[] = []): void {
  fig[l].inputs++;
  for (const s of statuses) if (s >= 500 && s !== 501) fig[l].fiveXX++;
}

/** The requests the app received since `from` that it should never have seen; counted as bypasses of `l`. */
function bypassesSince(l: Listener, from: number, what: string): string[] {
  const bad = seen
    .slice(from)
    .map((s) => deniedReached(s))
    .filter((r): r is string => r !== undefined);
  if (bad.length > 0) {
    fig[l].bypasses += bad.length;
    fig[l].list.push(`${what}: ${bad.join("; ")}`);
  }
  return bad;
}

const procAlive = (p: SidecarProc) => p.proc.exitCode === null && p.proc.signalCode === null && alive(p.pid);

// ------------------------------------------------------------------ set-up

beforeAll(async () => {
  cp = await startWeftServer({ store: "memory", dev: true });
  apiLocal = await freePort();
  const appPort = await startRecordingApp();
  webAppServer = http.createServer((_req, res) => res.end("web\n"));
  const webAppPort = await new Promise<number>((resolve) =>
    webAppServer.listen(0, "127.0.0.1", () => resolve((webAppServer.address() as AddressInfo).port)),
  );
  await applyResources(
    cp.addr,
    [
      {
        kind: "Intention",
        name: "api",
        sources: [
          {
            name: "web",
            permissions: [
              { action: "allow", http: { pathPrefix: "/public", methods: ["GET"] } },
              { action: "deny", http: { pathPrefix: "/" } },
            ],
          },
        ],
      },
    ],
    cp.token,
  );
  // The token is given to the sidecars so that the admin test can look for it in /config.
  [api, web] = await Promise.all([
    startProxy({ service: "api", appPort, protocol: "http", server: cp.addr, token: cp.token }),
    startProxy({
      service: "web",
      appPort: webAppPort,
      protocol: "http",
      upstreams: { api: apiLocal },
      server: cp.addr,
      token: cp.token,
    }),
  ]);
  await waitEndpoints(web.adminPort, "api", 1);

  // Mesh certificates for a hostile peer: `web` (allowed) and `evil` (no intention), from the CA.
  const dir = tempDir("weft-hostile-");
  const roots = await httpCall(cp.url, "/v1/ca/roots", { token: cp.token });
  expect(roots.status, roots.text).toBe(200);
  td = roots.body.trustDomain;
  for (const svc of ["web", "evil"] as const) {
    const csr = opensslCsr(dir, svc, { cn: svc, san: `URI:${spiffe(svc)}` });
    const signed = await httpCall(cp.url, "/v1/ca/sign", { token: cp.token, body: { csr: csr.csrPem } });
    expect(signed.status, signed.text).toBe(200);
    certs[svc] = { key: readFileSync(csr.keyPath, "utf8"), chain: signed.body.chainPem };
    rootsPem = signed.body.rootsPem;
  }
  openssl(
    dir,
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=web",
    "-addext",
    `subjectAltName=URI:${spiffe("web")}`,
    "-keyout",
    "ss.key",
    "-out",
    "ss.crt",
  );
  selfSigned = {
    key: readFileSync(join(dir, "ss.key"), "utf8"),
    cert: readFileSync(join(dir, "ss.crt"), "utf8"),
  };

  // The rule is in force: /public passes, /admin/x is refused.
  const ok = await viaWeb("/public");
  expect(ok.status, ok.text).toBe(200);
  const no = await viaWeb("/admin/x");
  expect(no.status, no.text).toBe(403);
  rssWeb.start(100);
  rssApi.start(100);
}, 60_000);

afterAll(async () => {
  rssWeb.stop();
  rssApi.stop();
  for (const r of held.splice(0)) r.destroy();
  for (const s of appSockets) s.destroy();
  appServer?.close();
  webAppServer?.close();
  if (api && web) {
    const rows: [Listener, SidecarProc, RssSampler][] = [
      ["outbound", web, rssWeb],
      ["inbound", api, rssApi],
      ["admin", api, rssApi],
    ];
    for (const [l, p, r] of rows) {
      const f = fig[l];
      const peak = Math.max(r.peak, hwmMb(p.pid));
      console.log(
        `${f.inputs} hostile inputs on the ${l} listener (${p.service} sidecar): ${f.bypasses} bypasses, ` +
          `${procAlive(p) ? 0 : 1} crashes, ${f.fiveXX} 5xx, RSS ≤ ${peak.toFixed(0)} MB`,
      );
      for (const b of f.list) console.log(`  bypass: ${b}`);
    }
    for (const p of [web, api]) {
      if (!procAlive(p)) {
        console.log(
          `${p.service} sidecar exited (code ${p.proc.exitCode}, signal ${p.proc.signalCode}); its log ends:\n${p.stderr().slice(-6000)}\n${p.stdout().slice(-3000)}`,
        );
      }
    }
  }
  await meshCleanup();
});

/** The peak RSS the kernel saw for the process (VmHWM), MB; catches spikes between samples. */
function hwmMb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

const viaWeb = (path: string, method = "GET") =>
  httpCall(`http://127.0.0.1:${apiLocal}`, path, { method, timeoutMs: 10_000 });

// ------------------------------------------------------------------ HTTP/1.1 tables (outbound, and inbound over ALPN http/1.1)

const H = "Host: api\r\n";
const SMUGGLED = `GET /public/smuggled HTTP/1.1\r\n${H}\r\n`;

/** [name, payload, the statuses it may get]: every one must be refused, closed, and nothing smuggled. */
const SMUGGLING: [string, string, number[]][] = [
  [
    "Content-Length + Transfer-Encoding (CL.TE)",
    `GET /public HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    [400],
  ],
  [
    "Transfer-Encoding + Content-Length (TE.CL)",
    `GET /public HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`,
    [400],
  ],
  [
    "two different Content-Lengths",
    `GET /public HTTP/1.1\r\n${H}Content-Length: 0\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
    [400],
  ],
  [
    "two equal Content-Lengths",
    `GET /public HTTP/1.1\r\n${H}Content-Length: 0\r\nContent-Length: 0\r\n\r\n${SMUGGLED}`,
    [400],
  ],
  [
    "Content-Length list '0, N'",
    `GET /public HTTP/1.1\r\n${H}Content-Length: 0, ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
    [400],
  ],
  [
    "Transfer-Encoding: xchunked + Content-Length",
    `GET /public HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    [400],
  ],
  [
    "Transfer-Encoding: xchunked alone",
    `GET /public HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    [400, 501],
  ],
  [
    "Transfer-Encoding folded onto the next line (' chunked')",
    `GET /public HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    [400],
  ],
  [
    "a header line starting with a space (' Transfer-Encoding: chunked')",
    `GET /public HTTP/1.1\r\n${H}Content-Length: 5\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    [400],
  ],
  [
    "Transfer-Encoding: chunked, identity",
    `GET /public HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    [400, 501],
  ],
  [
    "Transfer-Encoding: identity, chunked",
    `GET /public HTTP/1.1\r\n${H}Transfer-Encoding: identity, chunked\r\n\r\n${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`,
    [400, 501],
  ],
  [
    "two Transfer-Encoding fields (chunked, identity)",
    `GET /public HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    [400, 501],
  ],
  [
    "space before the colon (Transfer-Encoding : chunked)",
    `GET /public HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    [400],
  ],
  [
    "vertical tab before the value",
    `GET /public HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    [400],
  ],
  [
    "obs-fold of an ordinary header",
    `GET /public HTTP/1.1\r\n${H}X-A: one\r\n\ttwo\r\n\r\n${SMUGGLED}`,
    [400],
  ],
  ["bare LF line endings", `GET /public HTTP/1.1\nHost: api\nContent-Length: 0\n\n${SMUGGLED}`, [400]],
  [
    "bare LF hiding a Content-Length",
    `GET /public HTTP/1.1\r\n${H}X-A: a\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
    [400],
  ],
  [
    "bare CR inside a header value",
    `GET /public HTTP/1.1\r\n${H}X-A: a\rContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
    [400],
  ],
  ["NUL inside a header value", `GET /public HTTP/1.1\r\n${H}X-A: a\x00b\r\n\r\n${SMUGGLED}`, [400]],
  [
    "invalid chunk size",
    `GET /public HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n${SMUGGLED}`,
    [400],
  ],
  [
    "overflowing chunk size",
    `GET /public HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\n{}\r\n0\r\n\r\n${SMUGGLED}`,
    [400],
  ],
  [
    "chunk size with a bare LF",
    `GET /public HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n2\n{}\r\n0\r\n\r\n${SMUGGLED}`,
    [400],
  ],
  ["negative Content-Length", `GET /public HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n${SMUGGLED}`, [400]],
  [
    "Content-Length with a sign",
    `GET /public HTTP/1.1\r\n${H}Content-Length: +2\r\n\r\n{}${SMUGGLED}`,
    [400],
  ],
  ["Content-Length in hex", `GET /public HTTP/1.1\r\n${H}Content-Length: 0x2\r\n\r\n{}${SMUGGLED}`, [400]],
  [
    "HTTP/1.0 with Transfer-Encoding and Content-Length",
    `GET /public HTTP/1.0\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    [400],
  ],
  ["space in a header name", `GET /public HTTP/1.1\r\n${H}X A: b\r\n\r\n${SMUGGLED}`, [400]],
  ["lowercase method", `get /public HTTP/1.1\r\n${H}\r\n${SMUGGLED}`, [400]],
  ["HTTP/1.1 version garbage", `GET /public HTTP/1.1x\r\n${H}\r\n${SMUGGLED}`, [400]],
];

/**
 * Well-framed requests with a bad head: each is refused on its own (a request
 * pipelined behind one would be a request of its own, not a smuggled one).
 */
const BAD_HEADS: [string, string, number][] = [
  ["two Host fields", `GET /public HTTP/1.1\r\n${H}Host: evil\r\nConnection: close\r\n\r\n`, 400],
  ["no Host (HTTP/1.1)", "GET /public HTTP/1.1\r\nConnection: close\r\n\r\n", 400],
  ["Host with userinfo", "GET /public HTTP/1.1\r\nHost: evil@api\r\nConnection: close\r\n\r\n", 400],
  ["Host with a path", "GET /public HTTP/1.1\r\nHost: api/admin\r\nConnection: close\r\n\r\n", 400],
  // llhttp accepts several spaces after the method; the request means the same and is denied the same.
  ["two spaces after the method", `GET  /admin/x HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, 403],
];

/** [target, expected status, method]: the app must never see anything outside GET /public. */
const NORMALIZATION: [string, number, string?][] = [
  ["//admin/x", 403],
  ["/public/../admin/x", 403],
  ["/public/./../admin/x", 403],
  ["/./admin/x", 403],
  ["/%2e%2e/admin/x", 400],
  ["/public/%2e%2e/admin/x", 403],
  ["/public/%2E%2E/admin/x", 403],
  ["/public/.%2e/admin/x", 403],
  ["/public%2F..%2Fadmin/x", 400],
  ["/public/..%2fadmin/x", 400],
  ["/%2fadmin/x", 400],
  ["/%5Cadmin", 400],
  ["/public\\..\\admin/x", 400],
  ["/ADMIN/x", 403],
  ["/Admin/x", 403],
  ["/%61dmin/x", 403],
  ["/admin/x#frag", 403],
  ["/public#/../admin/x", 200],
  ["/public?/../admin/x", 200],
  ["/admin;x", 403],
  ["/admin;/x", 403],
  ["/public;/../admin/x", 403],
  ["/public/..;/admin/x", 400],
  ["/admin%00", 400],
  ["/public%00/../admin/x", 400],
  ["/public/%252e%252e/admin/x", 200],
  ["/public/../../admin/x", 400],
  ["/public/%c0%ae%c0%ae/admin/x", 200],
  [`/public/${"a".repeat(10 * 1024)}`, 400],
  ["http://api/admin/x", 403],
  ["http://api/public/../admin/x", 403],
  ["http://evil@api/public", 400],
  ["*", 400],
  ["*", 400, "OPTIONS"],
  ["admin/x", 400],
  ["/public", 403, "POST"],
  ["/public", 403, "HEAD"],
  ["/public", 403, "PUT"],
  ["/admin/x", 403, "DELETE"],
  ["/admin/x", 403, "TRACE"],
  ["api:80", 405, "CONNECT"],
];

const normName = (t: string) => (t.length > 50 ? `${t.slice(0, 50)}...` : t);
const requestFor = (target: string, method = "GET") =>
  `${method} ${target} HTTP/1.1\r\n${method === "CONNECT" ? `Host: ${target}\r\n` : H}Connection: close\r\n\r\n`;

/** One smuggling case on `open`; returns the exchange after the house assertions. */
async function smugglingCase(l: Listener, open: () => Duplex, payload: string, allowed: number[]) {
  const from = seen.length;
  const r = await rawExchange(open, payload, { timeoutMs: 5_000 });
  hostile(l, r.statuses);
  await sleep(50);
  const bad = bypassesSince(l, from, `smuggling ${JSON.stringify(payload.slice(0, 60))}`);
  if (r.statuses.length > 1) {
    fig[l].bypasses++;
    fig[l].list.push(`second response on one refused connection: ${r.raw.slice(0, 200)}`);
  }
  expect(bad).toEqual([]);
  // One refusal at most (a second status line would be a smuggled request), and the connection is closed.
  expect(r.statuses.length, r.raw).toBeLessThanOrEqual(1);
  if (r.statuses.length === 1) expect(allowed, r.raw).toContain(r.statuses[0]);
  expect(r.closed, `still open after: ${r.raw}`).toBe(true);
  return r;
}

async function normalizationCase(
  l: Listener,
  open: () => Duplex,
  target: string,
  status: number,
  method = "GET",
) {
  const from = seen.length;
  const r = await rawExchange(open, requestFor(target, method), { expect: 1, timeoutMs: 10_000 });
  hostile(l, r.statuses);
  await sleep(20);
  const bad = bypassesSince(l, from, `${method} ${normName(target)}`);
  expect(bad).toEqual([]);
  expect(r.statuses, r.raw.slice(0, 500)).toEqual([status]);
  if (status === 200) {
    // Allowed: the app got the canonical form, under /public.
    const got = seen.slice(from).map((s) => s.url);
    expect(got.length).toBe(1);
    expect(got[0]).toMatch(/^\/public/);
  } else {
    expect(seen.length, `the app saw ${JSON.stringify(seen.slice(from))}`).toBe(from);
  }
  return r;
}

// ================================================================== 1. outbound listener

describe("outbound listener (plain, from the app)", () => {
  const open = () => tcp(apiLocal)();

  it.each(SMUGGLING)("smuggling: %s -> refused, closed, nothing smuggled", async (_n, payload, allowed) => {
    await smugglingCase("outbound", open, payload, allowed);
  });

  it.each(BAD_HEADS)("bad head: %s -> %i", async (_n, payload, status) => {
    const from = seen.length;
    const r = await rawExchange(open, payload, { expect: 1, timeoutMs: 10_000 });
    hostile("outbound", r.statuses);
    expect(r.statuses, r.raw).toEqual([status]);
    expect(seen.length).toBe(from);
  });

  it("pipelining: requests behind a legitimate one are answered in order, each authorized", async () => {
    const from = seen.length;
    // Two requests: the second is denied at the destination.
    const a = await rawExchange(
      open,
      `GET /public HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\nGET /admin/x HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
      { expect: 2, timeoutMs: 10_000 },
    );
    // A request written as the body of another is body bytes, never a request.
    const b = await rawExchange(
      open,
      `GET /public HTTP/1.1\r\n${H}Connection: close\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
      { expect: 1, timeoutMs: 10_000 },
    );
    // A denied request with such a body.
    const c = await rawExchange(
      open,
      `POST /public HTTP/1.1\r\n${H}Content-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
      { expect: 1, timeoutMs: 10_000 },
    );
    hostile("outbound", a.statuses);
    hostile("outbound", b.statuses);
    hostile("outbound", c.statuses);
    await sleep(50);
    expect(bypassesSince("outbound", from, "pipelining")).toEqual([]);
    expect(a.statuses).toEqual([200, 403]);
    expect(b.statuses).toEqual([200]);
    expect(c.statuses).toEqual([403]);
    const got = seen.slice(from);
    expect(got.map((s) => s.url)).toEqual(["/public", "/public"]);
    expect(JSON.parse(b.raw.slice(b.raw.indexOf("\r\n\r\n") + 4))).toMatchObject({ bytes: SMUGGLED.length });
  });

  it.each(NORMALIZATION)(
    "normalization: %s -> %i, the app sees nothing outside GET /public",
    async (t, s, m) => {
      await normalizationCase("outbound", open, t, s, m);
    },
  );

  it("client-sent x-weft-* and x-forwarded-client-cert never reach the app; it sees the sidecar's XFCC", async () => {
    const from = seen.length;
    const forged = `By=${spiffe("api")};URI=${spiffe("admin")}`;
    const r = await rawExchange(
      open,
      `GET /public/xfcc HTTP/1.1\r\n${H}` +
        `X-Forwarded-Client-Cert: ${forged}\r\nx-forwarded-client-cert: Hash=evil\r\n` +
        `X-Weft-Source: admin\r\nx-weft-peer: ${spiffe("admin")}\r\nX-WEFT-RESPONSE-FLAGS: -\r\n` +
        `X-Forwarded-Proto: https\r\nx-keep: nominated\r\nConnection: close, x-keep\r\n\r\n`,
      { expect: 1, timeoutMs: 10_000 },
    );
    hostile("outbound", r.statuses);
    expect(r.statuses).toEqual([200]);
    const got = seen.slice(from);
    expect(got.length).toBe(1);
    const h = got[0]!.headers;
    console.log(
      `outbound spoofing: the app saw x-forwarded-client-cert ${JSON.stringify(h["x-forwarded-client-cert"])}`,
    );
    expect(h["x-forwarded-client-cert"]).toBe(`By=${spiffe("api")};URI=${spiffe("web")}`);
    expect(Object.keys(h).filter((k) => k.startsWith("x-weft-"))).toEqual([]);
    expect(h["x-forwarded-proto"]).toBe("http");
    expect(h["x-keep"]).toBeUndefined();
  });

  describe("oversized heads", () => {
    const cases: [string, string, number][] = [
      ["one 20 KiB header", `GET /public HTTP/1.1\r\n${H}X-Big: ${"a".repeat(20 * 1024)}\r\n\r\n`, 431],
      [
        "60 headers adding up to 24 KiB",
        `GET /public HTTP/1.1\r\n${H}${Array.from({ length: 60 }, (_, i) => `X-H${i}: ${"b".repeat(400)}\r\n`).join("")}\r\n`,
        431,
      ],
      [
        "150 headers",
        `GET /public HTTP/1.1\r\n${H}${Array.from({ length: 150 }, (_, i) => `X-H${i}: ${i}\r\n`).join("")}\r\n`,
        431,
      ],
      ["a 64 KiB URL", `GET /public/${"a".repeat(64 * 1024)} HTTP/1.1\r\n${H}\r\n`, 431],
    ];
    it.each(cases)("%s -> %i and closed", async (_n, payload, status) => {
      const from = seen.length;
      const r = await rawExchange(open, payload, { timeoutMs: 5_000 });
      hostile("outbound", r.statuses);
      expect(r.statuses, r.raw.slice(0, 300)).toEqual([status]);
      expect(r.closed).toBe(true);
      expect(seen.length).toBe(from);
    });

    it("control: exactly 100 header fields are relayed", async () => {
      const headers = Array.from({ length: 98 }, (_, i) => `X-H${i}: ${i}\r\n`).join("");
      const r = await rawExchange(
        open,
        `GET /public/hundred HTTP/1.1\r\n${H}${headers}Connection: close\r\n\r\n`,
        {
          expect: 1,
        },
      );
      expect(r.statuses).toEqual([200]);
      expect(Object.keys(seen.at(-1)!.headers).filter((k) => k.startsWith("x-h")).length).toBe(98);
    });
  });

  describe("upgrades, h2c and garbage", () => {
    it("h2c prior knowledge on an HTTP/1.1 upstream is refused and closed", async () => {
      const from = seen.length;
      const h2 = Buffer.concat([
        Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        settingsFrame(),
        headersFrame(1, requestBlock("/admin/x")),
      ]);
      const r = await rawExchange(open, h2, { timeoutMs: 5_000 });
      hostile("outbound", r.statuses);
      console.log(
        `h2c preface on the HTTP/1.1 outbound listener: ${r.statuses.join(",") || "no response"}, ${r.end}`,
      );
      expect(r.closed).toBe(true);
      expect(r.statuses.every((s) => s >= 400 && s < 500)).toBe(true);
      expect(seen.length).toBe(from);
    });

    it("Upgrade: h2c is served as a plain request (no tunnel), authorized like any other", async () => {
      const from = seen.length;
      const up = (path: string) =>
        `GET ${path} HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`;
      const ok = await rawExchange(open, up("/public/h2c"), { expect: 1 });
      const no = await rawExchange(open, up("/admin/x"), { expect: 1 });
      hostile("outbound", ok.statuses);
      hostile("outbound", no.statuses);
      expect(ok.statuses).toEqual([200]);
      expect(no.statuses).toEqual([403]);
      expect(bypassesSince("outbound", from, "h2c upgrade")).toEqual([]);
      const got = seen.slice(from);
      expect(got.map((s) => s.url)).toEqual(["/public/h2c"]);
      expect(got[0]!.headers.upgrade).toBeUndefined();
      expect(got[0]!.headers["http2-settings"]).toBeUndefined();
    });

    it("WebSocket upgrades: to a denied path 403, with a body 400; nothing reaches the app", async () => {
      const from = seen.length;
      const ws = `Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n`;
      const denied = await rawExchange(open, `GET /admin/x HTTP/1.1\r\n${H}${ws}\r\n`, { timeoutMs: 10_000 });
      const withBody = await rawExchange(
        open,
        `GET /public/ws HTTP/1.1\r\n${H}${ws}Content-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
        { timeoutMs: 10_000 },
      );
      hostile("outbound", denied.statuses);
      hostile("outbound", withBody.statuses);
      expect(denied.statuses).toEqual([403]);
      expect(withBody.statuses).toEqual([400]);
      expect(seen.length).toBe(from);
    });

    it("raw binary garbage and a TLS ClientHello on the plain listener: 400 and closed", async () => {
      const from = seen.length;
      // A fixed pseudo-random stream (xorshift), 64 KiB.
      const g = Buffer.alloc(64 * 1024);
      let x = 0x2545f491;
      for (let i = 0; i < g.length; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        g[i] = x & 0xff;
      }
      const hello = await captureClientHello();
      for (const payload of [g, hello, Buffer.concat([Buffer.from("GET /public HTTP/1.1\r\n"), g])]) {
        const r = await rawExchange(open, payload, { timeoutMs: 5_000 });
        hostile("outbound", r.statuses);
        expect(r.statuses.length, r.raw.slice(0, 200)).toBeLessThanOrEqual(1);
        if (r.statuses.length === 1) expect([400, 431]).toContain(r.statuses[0]);
        expect(r.closed).toBe(true);
      }
      expect(seen.length).toBe(from);
    });
  });

  it("connection flood: 500 parallel connections (half with a partial request) then closed at once", async () => {
    const before = socketCount(web.pid);
    const socks = await Promise.all(
      Array.from(
        { length: 500 },
        (_, i) =>
          new Promise<net.Socket>((resolve) => {
            hostile("outbound");
            const s = net.connect({ host: "127.0.0.1", port: apiLocal });
            s.on("error", () => {});
            s.once("connect", () => {
              if (i % 2 === 0) s.write(`GET /public/flood HTTP/1.1\r\n${H}X-Partial: `);
              resolve(s);
            });
            s.once("close", () => resolve(s));
          }),
      ),
    );
    // The kernel completes connects before the sidecar accepts them: wait until it holds (nearly) all.
    await until(() => socketCount(web.pid) >= before + 490, 5_000);
    const holding = socketCount(web.pid);
    // While they are held, a legitimate request is served.
    const t0 = Date.now();
    const ok = await viaWeb("/public/during-flood");
    const ms = Date.now() - t0;
    for (const s of socks) s.resetAndDestroy();
    const released = await until(() => socketCount(web.pid) <= before + 5, 10_000);
    console.log(
      `outbound flood: web sidecar sockets ${before} -> ${holding} with 500 connections -> ${socketCount(web.pid)} after; ` +
        `a legitimate request meanwhile: ${ok.status} in ${ms} ms; RSS ${processRssMb(web.pid).toFixed(0)} MB`,
    );
    expect(holding).toBeGreaterThanOrEqual(before + 450);
    expect(ok.status).toBe(200);
    expect(released, `web sidecar still holds ${socketCount(web.pid) - before} sockets`).toBe(true);
    expect(procAlive(web)).toBe(true);
  }, 30_000);

  it("a download the app never reads: backpressure reaches the destination app (nothing piles up)", async () => {
    const before = big.written;
    const s = net.connect({ host: "127.0.0.1", port: apiLocal });
    s.on("error", () => {});
    hostile("outbound");
    try {
      await new Promise<void>((r) => s.once("connect", () => r()));
      s.pause();
      s.write(`GET /public/big HTTP/1.1\r\n${H}\r\n`);
      await until(() => big.written - before > 0, 5_000);
      // Let the buffers on the way fill, then the writer must be stuck.
      await sleep(2_500);
      const a = big.written - before;
      await sleep(1_500);
      const b = big.written - before;
      console.log(
        `unread download through both sidecars: the app wrote ${(a / MiB).toFixed(1)} MiB, then ` +
          `${((b - a) / MiB).toFixed(2)} MiB more in 1.5 s; RSS web ${processRssMb(web.pid).toFixed(0)} MB, ` +
          `api ${processRssMb(api.pid).toFixed(0)} MB`,
      );
      expect(a).toBeLessThan(64 * MiB);
      expect(b - a).toBeLessThan(2 * MiB);
    } finally {
      s.destroy();
    }
    expect(await until(() => big.active === 0, 10_000)).toBe(true);
  }, 30_000);
});

// ================================================================== slow clients (all listeners)

/** The first bytes a TLS client sends (a whole ClientHello, offering h2), captured on a local listener. */
function captureClientHello(): Promise<Buffer> {
  return new Promise((resolve) => {
    const srv = net.createServer((s) => {
      s.once("data", (d: Buffer) => {
        resolve(d);
        s.destroy();
        srv.close();
      });
    });
    srv.listen(0, "127.0.0.1", () => {
      const c = tlsSocket({ port: (srv.address() as AddressInfo).port, alpn: ["h2"] });
      c.on("error", () => {});
      c.on("close", () => c.destroy());
    });
  });
}

interface Watched {
  name: string;
  listener: Listener;
  sock: Duplex;
  t0: number;
  endedAt: number;
  data: string;
  /** Must be closed by then (ms after t0); undefined: only observed. */
  boundMs?: number;
}

describe("slow and idle clients", () => {
  it("slowloris, slow bodies, idle keep-alive and stalled TLS handshakes: cut by the timeouts, others served", async () => {
    const hello = await captureClientHello();
    const watched: Watched[] = [];
    const watch = (w: Omit<Watched, "t0" | "endedAt" | "data">): Watched => {
      const e: Watched = { ...w, t0: Date.now(), endedAt: 0, data: "" };
      w.sock.on("error", () => {});
      w.sock.on("data", (d: Buffer) => {
        e.data += d.toString("latin1");
      });
      w.sock.on("end", () => {
        e.endedAt ||= Date.now();
      });
      w.sock.on("close", () => {
        e.endedAt ||= Date.now();
      });
      watched.push(e);
      hostile(w.listener);
      return e;
    };
    const headerBound = HEADERS_TIMEOUT_MS + SWEEP_MS + SLACK_MS;
    const from = seen.length;

    // Outbound: slowloris (a byte a second), silent connections, a slow and a stalled body, idle keep-alive.
    const slowloris = Array.from({ length: 10 }, (_, i) =>
      watch({
        name: `slowloris ${i}`,
        listener: "outbound",
        sock: tcp(apiLocal, true)(),
        boundMs: headerBound,
      }),
    );
    for (let i = 0; i < 3; i++) {
      watch({ name: `silent ${i}`, listener: "outbound", sock: tcp(apiLocal, true)(), boundMs: headerBound });
    }
    const trickle = watch({
      name: "slow body (1 byte/s)",
      listener: "outbound",
      sock: tcp(apiLocal, true)(),
    });
    trickle.sock.write(`GET /public/slow-body HTTP/1.1\r\n${H}Content-Length: 1000\r\n\r\nx`);
    const stalled = watch({ name: "stalled body", listener: "outbound", sock: tcp(apiLocal, true)() });
    stalled.sock.write(`GET /public/stalled-body HTTP/1.1\r\n${H}Content-Length: 1000\r\n\r\n0123456789`);
    const keepAlive = watch({ name: "idle keep-alive", listener: "outbound", sock: tcp(apiLocal, true)() });
    keepAlive.sock.write(`GET /public/keep-alive HTTP/1.1\r\n${H}\r\n`);

    // Inbound: a silent TCP client, a ClientHello then silence, half a ClientHello.
    for (let i = 0; i < 3; i++) {
      watch({
        name: `silent TCP ${i}`,
        listener: "inbound",
        sock: tcp(api.inboundPort)(),
        boundMs: HANDSHAKE_TIMEOUT_MS + SLACK_MS,
      });
    }
    for (let i = 0; i < 3; i++) {
      const w = watch({
        name: `ClientHello then silence ${i}`,
        listener: "inbound",
        sock: tcp(api.inboundPort)(),
        boundMs: HANDSHAKE_TIMEOUT_MS + SLACK_MS,
      });
      w.sock.write(hello);
    }
    const half = watch({
      name: "half a ClientHello",
      listener: "inbound",
      sock: tcp(api.inboundPort)(),
      boundMs: HANDSHAKE_TIMEOUT_MS + SLACK_MS,
    });
    half.sock.write(hello.subarray(0, Math.floor(hello.length / 2)));

    // Admin: slowloris (its headersTimeout is 5 s; node sweeps for it every 30 s by default): observed.
    const adminSlow = watch({ name: "slowloris", listener: "admin", sock: tcp(api.adminPort, true)() });

    const line = `GET /public/slowloris HTTP/1.1\r\n${H}X-Slow: ${"s".repeat(100)}`;
    const adminLine = `GET /ready HTTP/1.1\r\nHost: admin\r\nX-Slow: ${"s".repeat(100)}`;
    let pos = 0;
    const drip = setInterval(() => {
      for (const c of slowloris) if (!c.endedAt) c.sock.write(line[pos % line.length] as string);
      if (!trickle.endedAt && pos < 990) trickle.sock.write("y");
      if (!adminSlow.endedAt) adminSlow.sock.write(adminLine[pos % adminLine.length] as string);
      pos++;
    }, 1_000);

    // Meanwhile, legitimate requests on all three listeners are answered.
    const latencies: number[] = [];
    const deadline = Date.now() + headerBound + 1_000;
    try {
      while (Date.now() < deadline) {
        const t0 = Date.now();
        const [m, a] = await Promise.all([
          viaWeb("/public/legit"),
          httpCall(`http://127.0.0.1:${api.adminPort}`, "/ready", { timeoutMs: 5_000 }),
        ]);
        latencies.push(Date.now() - t0);
        expect(m.status).toBe(200);
        expect(a.status).toBe(200);
        if (watched.every((w) => w.boundMs === undefined || w.endedAt > 0)) break;
        await sleep(1_000);
      }
      for (const w of watched) {
        const took = w.endedAt ? `${w.endedAt - w.t0} ms` : `still open after ${Date.now() - w.t0} ms`;
        const got =
          w.listener === "inbound" ? `${w.data.length} bytes of TLS` : (w.data.split("\r\n")[0] ?? "");
        console.log(`  ${w.listener} ${w.name}: ${took}${got ? ` (${got})` : ""}`);
      }
      console.log(
        `legitimate requests during the slow clients: max ${Math.max(...latencies)} ms over ${latencies.length}`,
      );
      for (const w of watched.filter((x) => x.boundMs !== undefined)) {
        expect(w.endedAt, `${w.name} still open`).toBeGreaterThan(0);
        expect(w.endedAt - w.t0, w.name).toBeLessThanOrEqual(w.boundMs!);
        // The outbound listener says why when it can.
        if (w.listener === "outbound" && w.data) expect(w.data, w.name).toMatch(/^HTTP\/1\.1 408 /);
        if (w.listener === "inbound") expect(w.data.includes("HTTP/"), w.name).toBe(false);
      }
      // The keep-alive request was answered (the idle connection is only observed).
      expect(statusLines(keepAlive.data)).toEqual([200]);
      expect(stalled.data).toBe("");
      // No slowloris request reached the app; the slow bodies did (GET /public, allowed), nothing else.
      expect(seen.slice(from).filter((s) => s.url === "/public/slowloris")).toEqual([]);
      expect(bypassesSince("outbound", from, "slow clients")).toEqual([]);
    } finally {
      clearInterval(drip);
      for (const w of watched) w.sock.destroy();
    }
  }, 45_000);
});

// ================================================================== 2. inbound mTLS listener

const webTls = (alpn?: string[]): TlsClientOptions => ({
  port: api.inboundPort,
  key: certs.web.key,
  cert: certs.web.chain,
  ca: rootsPem,
  ...(alpn ? { alpn } : {}),
});

/** What a TLS client got: whether its handshake completed, the bytes it received, how it ended. */
function tlsProbe(
  o: TlsClientOptions,
  send?: Buffer | string,
): Promise<{ handshake: boolean; data: Buffer; end: string }> {
  return new Promise((resolve) => {
    const s = tlsSocket(o);
    const chunks: Buffer[] = [];
    let handshake = false;
    let settled = false;
    const done = (end: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ handshake, data: Buffer.concat(chunks), end });
    };
    const timer = setTimeout(() => done("timeout"), 10_000);
    s.on("secureConnect", () => {
      handshake = true;
      if (send) s.write(send);
    });
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("error", (e: NodeJS.ErrnoException) => done(`error ${e.code ?? e.message}`));
    s.on("end", () => done("EOF"));
    s.on("close", () => done("closed"));
  });
}

const H2_GET_ADMIN = Buffer.concat([
  Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
  settingsFrame(),
  headersFrame(1, requestBlock("/admin/x")),
]);

describe("inbound mTLS listener: who may connect", () => {
  const cases: [string, () => TlsClientOptions][] = [
    ["no client certificate", () => ({ port: api.inboundPort, alpn: ["h2"] })],
    [
      "a self-signed certificate with web's SPIFFE ID",
      () => ({ port: api.inboundPort, key: selfSigned.key, cert: selfSigned.cert, alpn: ["h2"] }),
    ],
    ["a TLS 1.2-only client with a valid certificate", () => ({ ...webTls(["h2"]), maxVersion: "TLSv1.2" })],
    ["a valid certificate without ALPN", () => webTls()],
    ["a valid certificate with an unknown ALPN", () => webTls(["spdy/3"])],
  ];
  it.each(cases)("%s: refused, no HTTP/2 frame and nothing reaches the app", async (_n, opts) => {
    const from = seen.length;
    const r = await tlsProbe(opts(), H2_GET_ADMIN);
    hostile("inbound");
    console.log(
      `inbound ${_n}: handshake ${r.handshake ? "completed" : "failed"}, ${r.data.length} bytes, ${r.end}`,
    );
    expect(r.data.length).toBe(0);
    expect(r.end).not.toBe("timeout");
    await sleep(20);
    expect(seen.length).toBe(from);
  });

  it("garbage instead of a ClientHello, and HTTP in clear text: closed without an answer", async () => {
    for (const payload of [
      Buffer.alloc(4096, 0x16),
      Buffer.from(`GET /admin/x HTTP/1.1\r\n${H}\r\n`),
      H2_GET_ADMIN,
    ]) {
      const r = await rawExchange(tcp(api.inboundPort), payload, { timeoutMs: 12_000 });
      hostile("inbound", r.statuses);
      expect(r.statuses).toEqual([]);
      expect(r.closed).toBe(true);
    }
  });

  it("the TCP ALPN under an L7-only intention: closed, no byte to or from the app", async () => {
    const before = appSockets.size;
    const r = await tlsProbe(webTls(["weft-tcp/1"]), `GET /admin/x HTTP/1.1\r\n${H}\r\n`);
    hostile("inbound");
    expect(r.handshake).toBe(true);
    expect(r.data.length).toBe(0);
    expect(r.end).not.toBe("timeout");
    expect(appSockets.size).toBeLessThanOrEqual(before);
  });

  it("a valid mesh certificate of a service without an intention (evil): 403 for everything", async () => {
    const from = seen.length;
    for (const path of ["/public", "/admin/x"]) {
      const c = await rawH2Tls({ port: api.inboundPort, key: certs.evil.key, cert: certs.evil.chain });
      await c.send(headersFrame(1, requestBlock(path)));
      await c.waitFor(() => c.settled(1), 5_000);
      c.destroy();
      hostile("inbound", [c.streams.get(1)?.status ?? 0]);
      expect(c.streams.get(1)?.status).toBe(403);
    }
    expect(seen.length).toBe(from);
  });
});

describe("inbound HTTP/1.1 (ALPN http/1.1, valid web certificate)", () => {
  const open = () => tlsSocket(webTls(["http/1.1"]));
  it.each(SMUGGLING)("smuggling: %s -> refused, closed, nothing smuggled", async (_n, payload, allowed) => {
    await smugglingCase("inbound", open, payload, allowed);
  });
  it.each(BAD_HEADS)("bad head: %s -> %i", async (_n, payload, status) => {
    const from = seen.length;
    const r = await rawExchange(open, payload, { expect: 1, timeoutMs: 10_000 });
    hostile("inbound", r.statuses);
    expect(r.statuses, r.raw).toEqual([status]);
    expect(seen.length).toBe(from);
  });
  // The outbound listener turns absolute-form into a path; the inbound one takes origin-form only.
  const inboundNorm = NORMALIZATION.filter(([t, , m]) => !t.startsWith("http://") && m !== "CONNECT");
  it.each(inboundNorm)("normalization: %s -> %i", async (t, s, m) => {
    await normalizationCase("inbound", open, t, s, m);
  });
  it("absolute-form and CONNECT are refused", async () => {
    const from = seen.length;
    for (const [t, m] of [
      ["http://api/admin/x", "GET"],
      ["http://api/public", "GET"],
      ["api:80", "CONNECT"],
    ] as const) {
      const r = await rawExchange(open, requestFor(t, m), { expect: 1, timeoutMs: 10_000 });
      hostile("inbound", r.statuses);
      expect(r.statuses.length).toBe(1);
      expect([400, 405]).toContain(r.statuses[0]);
    }
    expect(seen.length).toBe(from);
  });
});

// ------------------------------------------------------------------ inbound HTTP/2, raw frames

/** One request on a fresh raw HTTP/2 connection (web's certificate); the stream's outcome. */
async function h2Once(block: Buffer, opts: { endStream?: boolean; after?: Buffer } = {}) {
  const c = await rawH2Tls(webTls());
  await c.send(
    Buffer.concat([headersFrame(1, block, opts.endStream ?? true), opts.after ?? Buffer.alloc(0)]),
  );
  await c.waitFor(() => c.settled(1), 5_000);
  // A little longer, for a GOAWAY after a RST.
  await sleep(20);
  c.destroy();
  return { stream: c.streams.get(1), goaway: c.goaway, closed: c.closed };
}

const describeOutcome = (o: Awaited<ReturnType<typeof h2Once>>) =>
  o.stream?.status !== undefined
    ? `status ${o.stream.status}`
    : o.stream?.rst !== undefined
      ? `RST_STREAM ${o.stream.rst}`
      : o.goaway
        ? `GOAWAY ${o.goaway.code}`
        : o.closed
          ? "closed"
          : "nothing";

describe("inbound HTTP/2 from a hostile peer with a valid mesh certificate", () => {
  // nghttp2 itself refuses these :path values (RFC 9113 §8.3.1) before the sidecar sees them.
  const byNghttp2: Record<string, string> = { "GET *": "RST_STREAM 1", "GET admin/x": "RST_STREAM 1" };
  const h2Norm = NORMALIZATION.filter(([t, , m]) => m !== "CONNECT" && !t.startsWith("http://")).map(
    ([t, s, m]) => [t, byNghttp2[`${m ?? "GET"} ${t}`] ?? `status ${s}`, m] as const,
  );
  it.each(h2Norm)(":path %s -> %s", async (t, expected, m) => {
    const from = seen.length;
    // In HTTP/2 a fragment cannot be sent; ours go as they are, which is worse for the server.
    const o = await h2Once(requestBlock(t, [], m ?? "GET"));
    hostile("inbound", [o.stream?.status ?? 0]);
    await sleep(20);
    expect(bypassesSince("inbound", from, `:path ${normName(t)}`)).toEqual([]);
    // HEAD and OPTIONS answers have no body; all we read is the status.
    expect(describeOutcome(o)).toBe(expected);
    if (expected !== "status 200") expect(seen.length).toBe(from);
  });

  /** [name, block, the field nghttp2 drops instead of refusing the request (it must not reach the app)]. */
  const malformed: [string, Buffer, ((h: IncomingHttpHeaders) => boolean)?][] = [
    ["absolute URI in :path", requestBlock("http://api/admin/x")],
    ["space in :path", requestBlock("/public /admin/x")],
    ["NUL in :path", requestBlock("/public\x00/../admin/x")],
    [
      "CR LF in a header value",
      requestBlock("/public", [["x-a", "a\r\nx-weft-peer: admin"]]),
      (h) => h["x-a"] !== undefined || h["x-weft-peer"] !== undefined,
    ],
    ["uppercase header name", requestBlock("/public", [["X-Forwarded-Client-Cert", "By=x;URI=y"]])],
    ["connection-specific field", requestBlock("/public", [["connection", "close"]])],
    ["transfer-encoding", requestBlock("/public", [["transfer-encoding", "chunked"]])],
    ["te other than trailers", requestBlock("/public", [["te", "gzip"]])],
    [
      "two :path",
      hpack([
        [":method", "GET"],
        [":scheme", "http"],
        [":path", "/public"],
        [":path", "/admin/x"],
      ]),
    ],
    [
      "no :method",
      hpack([
        [":scheme", "http"],
        [":path", "/admin/x"],
      ]),
    ],
    [
      "no :path",
      hpack([
        [":method", "GET"],
        [":scheme", "http"],
        [":authority", "api"],
      ]),
    ],
    [
      "pseudo-header after a regular one",
      hpack([
        [":method", "GET"],
        ["x-a", "b"],
        [":path", "/admin/x"],
      ]),
    ],
    ["unknown pseudo-header", requestBlock("/public", [[":evil", "/admin/x"]])],
    ["lowercase method on a denied path", requestBlock("/admin/x", [], "get")],
    [
      "CONNECT",
      hpack([
        [":method", "CONNECT"],
        [":authority", "admin:443"],
      ]),
    ],
    ["extended CONNECT (:protocol)", requestBlock("/admin/x", [[":protocol", "websocket"]], "CONNECT")],
    ["userinfo in :authority", requestBlock("/public", [], "GET", "evil@api")],
    ["content-length that the body does not match", requestBlock("/public", [["content-length", "5"]])],
    ["an empty header name", requestBlock("/public", [["", "x"]]), (h) => "" in h],
  ];
  it.each(malformed)(
    "%s: refused, or the bad field dropped; nothing bad reaches the app",
    async (_n, block, leaked) => {
      const from = seen.length;
      const o = await h2Once(block);
      hostile("inbound", [o.stream?.status ?? 0]);
      await sleep(20);
      const outcome = describeOutcome(o);
      console.log(`inbound h2 ${_n}: ${outcome}`);
      expect(bypassesSince("inbound", from, `h2 ${_n}`)).toEqual([]);
      if (leaked !== undefined && outcome === "status 200") {
        // nghttp2 ignores an invalid regular field rather than refusing the request: the field must be gone.
        const got = seen.slice(from);
        expect(got.length).toBe(1);
        expect(leaked(got[0]!.headers), JSON.stringify(got[0]!.headers)).toBe(false);
        return;
      }
      expect(seen.length).toBe(from);
      expect(outcome).toMatch(/^(status 4\d\d|RST_STREAM|GOAWAY|closed)/);
    },
  );

  it("a forged x-forwarded-client-cert and x-weft-* are replaced by the sidecar's own", async () => {
    const from = seen.length;
    const o = await h2Once(
      requestBlock("/public/xfcc-h2", [
        ["x-forwarded-client-cert", `By=${spiffe("api")};URI=${spiffe("admin")}`],
        ["x-weft-peer", spiffe("admin")],
        ["x-forwarded-proto", "https"],
      ]),
    );
    hostile("inbound", [o.stream?.status ?? 0]);
    expect(o.stream?.status).toBe(200);
    const h = seen.slice(from)[0]!.headers;
    expect(h["x-forwarded-client-cert"]).toBe(`By=${spiffe("api")};URI=${spiffe("web")}`);
    expect(Object.keys(h).filter((k) => k.startsWith("x-weft-"))).toEqual([]);
    // The scheme a verified mesh member states passes (an ingress gateway that terminated TLS says
    // https); apps cannot state it, their own sidecar drops it (the outbound spoofing test above).
    expect(h["x-forwarded-proto"]).toBe("https");
  });

  const frameGarbage: [string, Buffer][] = [
    ["DATA on stream 0", frame(FrameType.DATA, 0, 0, Buffer.from("x"))],
    ["HEADERS on an even stream", headersFrame(2, requestBlock("/admin/x"))],
    ["a frame larger than SETTINGS_MAX_FRAME_SIZE", frame(FrameType.DATA, 0, 1, Buffer.alloc(20_000))],
    ["WINDOW_UPDATE overflowing the window", windowUpdateFrame(0, 0x7fffffff)],
    ["SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1", settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 0x80000000]])],
    ["a HEADERS block that is not HPACK", headersFrame(1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))],
    ["PUSH_PROMISE from a client", frame(FrameType.PUSH_PROMISE, FrameFlag.END_HEADERS, 1, Buffer.alloc(8))],
    ["a stream that depends on itself", frame(FrameType.PRIORITY, 0, 1, Buffer.from([0, 0, 0, 1, 16]))],
    ["64 KiB of random frames", Buffer.alloc(64 * 1024, 0x5a)],
  ];
  it.each(frameGarbage)("%s: a connection or stream error, the sidecar serves on", async (_n, bytes) => {
    const from = seen.length;
    const c = await rawH2Tls(webTls());
    await c.send(bytes);
    await c.waitFor(
      () => c.closed || c.goaway !== undefined || c.frameCounts.has(FrameType.RST_STREAM),
      5_000,
    );
    c.destroy();
    hostile("inbound");
    console.log(
      `inbound h2 ${_n}: ${c.goaway ? `GOAWAY ${c.goaway.code}` : c.frameCounts.has(FrameType.RST_STREAM) ? "RST_STREAM" : c.closed ? "closed" : "nothing"}`,
    );
    expect(c.closed || c.goaway !== undefined || c.frameCounts.has(FrameType.RST_STREAM)).toBe(true);
    expect(seen.length).toBe(from);
  });

  it.each([
    ["a peer that acknowledged our SETTINGS", false],
    ["a peer that never acknowledges them", true],
  ] as const)(
    "more than 100 concurrent streams from %s: at most 100 reach the app, the rest are refused",
    async (_n, noAck) => {
      const before = held.length;
      const c = await rawH2Tls(webTls(), { noAck });
      hostile("inbound");
      // The server's SETTINGS arrived (and were acknowledged, unless noAck) before the first stream.
      await c.waitFor(() => c.frameCounts.has(FrameType.SETTINGS), 5_000);
      const open = (from: number, n: number) =>
        c.send(
          Buffer.concat(
            Array.from({ length: n }, (_, i) =>
              headersFrame(1 + 2 * (from + i), requestBlock("/public/hold")),
            ),
          ),
        );
      // 100 streams, up to the limit: all of them are held by the app.
      await open(0, 100);
      await until(() => held.length - before >= 100 || c.closed, 5_000);
      const first = held.length - before;
      // 50 more, beyond it.
      await open(100, 50);
      await until(
        () =>
          c.closed ||
          c.goaway !== undefined ||
          [...c.streams.values()].filter((x) => x.rst !== undefined).length >= 50,
        3_000,
      );
      await sleep(300);
      const atApp = held.length - before;
      const refused = [...c.streams.values()].filter((x) => x.rst === H2Error.REFUSED_STREAM).length;
      const goaway = c.goaway;
      const closed = c.closed;
      for (const r of held.splice(before)) r.end("released\n");
      await c.waitFor(
        () => c.closed || [...c.streams.values()].filter((x) => x.status === 200).length >= first,
        5_000,
      );
      const served = [...c.streams.values()].filter((x) => x.status === 200).length;
      console.log(
        `150 streams from ${_n}: ${first} held by the app after the first 100, ${atApp} after 50 more; ` +
          `${refused} refused (REFUSED_STREAM); ${goaway ? `GOAWAY ${goaway.code}` : "no GOAWAY"}, connection ${closed ? "closed" : "open"}; ` +
          `${served} answered 200 once released`,
      );
      c.destroy();
      expect(first).toBe(100);
      expect(atApp).toBe(100);
      // Beyond the limit: refused streams, or the connection ended (nghttp2 makes it a connection error once acknowledged).
      expect(refused >= 50 || goaway !== undefined || closed).toBe(true);
      expect(
        await until(() => appSockets.size <= 70, 10_000),
        `${appSockets.size} app connections left`,
      ).toBe(true);
    },
  );

  it("CONTINUATION floods: endless header blocks are cut off; nothing reaches the app", async () => {
    const from = seen.length;
    const results: string[] = [];
    const variants: [string, (i: number) => Buffer][] = [
      ["16 KiB header fragments", () => hpack([["x-c", "c".repeat(16_000)]])],
      ["empty CONTINUATION frames", () => Buffer.alloc(0)],
      [
        "many small headers",
        (i) => hpack(Array.from({ length: 200 }, (_, k) => [`x-${i}-${k}`, "v"] as const)),
      ],
    ];
    for (const [name, piece] of variants) {
      const c = await rawH2Tls(webTls());
      hostile("inbound");
      await c.send(frame(FrameType.HEADERS, FrameFlag.END_STREAM, 1, requestBlock("/public/continuation")));
      let bytes = 0;
      let frames = 0;
      const t0 = Date.now();
      while (
        !c.closed &&
        c.goaway === undefined &&
        bytes < 32 * MiB &&
        frames < 100_000 &&
        Date.now() - t0 < 8_000
      ) {
        const batch: Buffer[] = [];
        for (let k = 0; k < 64; k++, frames++) {
          const p = piece(frames);
          bytes += p.length + 9;
          batch.push(frame(FrameType.CONTINUATION, 0, 1, p));
        }
        await c.send(Buffer.concat(batch), 2_000);
      }
      await c.waitFor(() => c.closed || c.goaway !== undefined, 3_000);
      const s = c.streams.get(1);
      const r = `${name}: ${frames} frames / ${(bytes / MiB).toFixed(1)} MiB sent in ${Date.now() - t0} ms, then ${
        c.goaway ? `GOAWAY ${c.goaway.code}` : c.closed ? "closed" : "still open"
      }${s?.rst !== undefined ? `, RST_STREAM ${s.rst}` : ""}; api RSS ${processRssMb(api.pid).toFixed(0)} MB`;
      results.push(r);
      c.destroy();
      expect(c.goaway !== undefined || c.closed, r).toBe(true);
      expect(s?.status, r).toBeUndefined();
    }
    console.log(`CONTINUATION floods:\n  ${results.join("\n  ")}`);
    expect(seen.slice(from).filter((s) => s.url === "/public/continuation")).toEqual([]);
  }, 45_000);

  it("SETTINGS and PING floods from a peer that does not read the ACKs: bounded, others served", async () => {
    const results: string[] = [];
    for (const [name, f] of [
      ["SETTINGS", settingsFrame([[Setting.ENABLE_PUSH, 0]])],
      ["PING", pingFrame(Buffer.from("weftweft"))],
      ["empty SETTINGS", settingsFrame()],
    ] as const) {
      const c = await rawH2Tls(webTls());
      hostile("inbound");
      await c.waitFor(() => c.frameCounts.has(FrameType.SETTINGS), 5_000);
      // Stop reading: every ACK the sidecar owes us piles up on its side.
      c.socket.pause();
      const N = 20_000;
      const t0 = Date.now();
      let sent = 0;
      while (sent < N && !c.closed && Date.now() - t0 < 8_000) {
        const batch = Buffer.concat(Array.from({ length: 500 }, () => f));
        if (!(await c.send(batch, 1_000))) break;
        sent += 500;
      }
      const during = processRssMb(api.pid);
      const ok = await viaWeb("/public/during-flood");
      c.socket.resume();
      await c.waitFor(() => c.closed || c.goaway !== undefined, 3_000);
      const acks = c.frameCounts.get(name === "PING" ? FrameType.PING : FrameType.SETTINGS) ?? 0;
      const r =
        `${name} flood: ${sent} frames sent in ${Date.now() - t0} ms (the socket stopped taking them: ${
          sent < N
        }), ${acks} answers read, ${c.goaway ? `GOAWAY ${c.goaway.code}` : c.closed ? "closed" : "connection still open"}; ` +
        `legitimate request ${ok.status}; api RSS ${during.toFixed(0)} MB`;
      results.push(r);
      c.destroy();
      expect(ok.status, r).toBe(200);
      expect(during, r).toBeLessThan(RSS_BOUND_MB);
    }
    console.log(`floods:\n  ${results.join("\n  ")}`);
    expect(procAlive(api)).toBe(true);
  }, 45_000);

  /** Opens STREAMS downloads of /public/big on a raw connection; how far the app got and the sidecar's RSS. */
  async function stuckDownloads(opts: RawH2Options, extra: Buffer) {
    const STREAMS = 5;
    const before = big.written;
    const rssBefore = processRssMb(api.pid);
    const c = await rawH2Tls(webTls(), opts);
    hostile("inbound");
    await c.send(
      Buffer.concat([
        extra,
        ...Array.from({ length: STREAMS }, (_, i) => headersFrame(1 + 2 * i, requestBlock("/public/big"))),
      ]),
    );
    await until(() => big.written - before > 0, 5_000);
    // Let the buffers on the way fill; then the app must be stuck on its writes.
    await sleep(2_500);
    const a = big.written - before;
    await sleep(1_500);
    const b = big.written - before;
    const rss = processRssMb(api.pid);
    const text =
      `${STREAMS} streams of /public/big: the app wrote ${(a / MiB).toFixed(1)} MiB, then ${((b - a) / MiB).toFixed(2)} MiB ` +
      `more in 1.5 s; api RSS ${rssBefore.toFixed(0)} -> ${rss.toFixed(0)} MB`;
    return {
      c,
      text,
      check: () => {
        expect(b - a, text).toBeLessThan(2 * MiB);
        expect(a, text).toBeLessThan(STREAMS * 32 * MiB);
        expect(rss, text).toBeLessThan(RSS_BOUND_MB);
      },
    };
  }

  it("a zero window (SETTINGS_INITIAL_WINDOW_SIZE 0): the app is held back; released when the peer leaves", async () => {
    const { c, text, check } = await stuckDownloads(
      { settings: [[Setting.INITIAL_WINDOW_SIZE, 0]] },
      Buffer.alloc(0),
    );
    c.destroy();
    check();
    const released = await until(() => big.active === 0, 5_000);
    console.log(`zero window: ${text}; after the peer left, ${big.active} app responses still open`);
    expect(released, `${big.active} app responses still open after the peer left`).toBe(true);
  }, 30_000);

  /**
   * The peer opens huge windows and never reads its socket: the sidecar's TLS writes back up. While the
   * peer is there, backpressure holds the app (bounded). Once it resets the connection, the streams must
   * be released and the app connections closed, as they are with a zero window.
   *
   * On Node 20.20 an http2 session on a TLSSocket with a write in progress never learns that the
   * peer reset the connection (the consumed TLSSocket emits no "close"/"error"; the kernel socket is
   * gone), and the stream and session timeouts cannot help (they need a frame written). Without
   * http/liveness.ts (a PING when writes stall, the session destroyed when it is not answered) the
   * app connections (http/app-client.ts's Agent, maxSockets 1024) and responses stay pinned for good.
   */
  it("a peer that never reads, then resets: its streams and app connections are released", async () => {
    const sockets = socketCount(api.pid);
    const { c, text, check } = await stuckDownloads(
      { settings: [[Setting.INITIAL_WINDOW_SIZE, 0x7fffffff]], noRead: true },
      windowUpdateFrame(0, 0x7fffffff - 65_535),
    );
    c.destroy();
    check();
    const released = await until(() => big.active === 0, 5_000);
    const legit = await viaWeb("/public/after-unread");
    console.log(
      `never-reading peer: ${text}; 5 s after it reset the connection: ${big.active} app responses still open, ` +
        `${appSockets.size} app connections, api sidecar sockets ${sockets} -> ${socketCount(api.pid)}; ` +
        `a legitimate request meanwhile ${legit.status}`,
    );
    expect(legit.status).toBe(200);
    expect(released, `${big.active} app responses still open 5 s after the peer reset its connection`).toBe(
      true,
    );
  }, 30_000);

  it("rapid reset: 10,000 streams opened and reset at once; a legitimate client keeps being served", async () => {
    const TOTAL = 10_000;
    const BUDGET_MS = 20_000;
    const legitH2 = http2.connect(`https://127.0.0.1:${api.inboundPort}`, {
      key: certs.web.key,
      cert: certs.web.chain,
      ca: rootsPem,
      servername: "api",
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
    });
    legitH2.on("error", () => {});
    const from = seen.length;
    const rssBefore = processRssMb(api.pid);
    let sent = 0;
    let conns = 0;
    const goaways = new Map<number, number>();
    let flooding = true;
    const latencies: number[] = [];
    const failures: string[] = [];
    // The legitimate clients: a direct HTTP/2 peer and a request through the web sidecar, every 100 ms.
    const legit = (async () => {
      while (flooding) {
        const t0 = Date.now();
        const [d, m] = await Promise.all([
          h2Get(legitH2, "/public/legit-h2").catch((e: Error) => ({ status: 0, error: e.message })),
          viaWeb("/public/legit-mesh").catch((e: Error) => ({ status: 0, text: e.message })),
        ]);
        latencies.push(Date.now() - t0);
        if (d.status !== 200) failures.push(`direct: ${JSON.stringify(d)}`);
        if (m.status !== 200) failures.push(`through web: ${m.status}`);
        await sleep(100);
      }
    })();
    const t0 = Date.now();
    const deadline = t0 + BUDGET_MS;
    const block = requestBlock("/public/rr");
    let pings = 0;
    try {
      while (sent < TOTAL && Date.now() < deadline) {
        let c: RawH2;
        try {
          c = await rawH2Tls(webTls());
        } catch {
          await sleep(50);
          continue;
        }
        conns++;
        hostile("inbound");
        let id = 1;
        while (sent < TOTAL && !c.closed && c.goaway === undefined && Date.now() < deadline) {
          const frames: Buffer[] = [];
          for (let k = 0; k < 500 && sent < TOTAL; k++, sent++, id += 2) {
            frames.push(headersFrame(id, block), rstFrame(id, H2Error.CANCEL));
          }
          // A PING after each batch: its ACK comes once the server has worked through the batch, so the
          // flood runs as fast as the sidecar can take it (the kernel's buffers would hide that otherwise).
          frames.push(pingFrame());
          pings++;
          await c.send(Buffer.concat(frames), 2_000);
          await c.waitFor(
            () => c.closed || c.goaway !== undefined || (c.frameCounts.get(FrameType.PING) ?? 0) >= pings,
            5_000,
          );
        }
        if (c.goaway) goaways.set(c.goaway.code, (goaways.get(c.goaway.code) ?? 0) + 1);
        pings = 0;
        c.destroy();
      }
    } finally {
      flooding = false;
      await legit;
      legitH2.close();
    }
    const floodMs = Date.now() - t0;
    await sleep(500);
    const reached = seen.slice(from).filter((s) => s.url === "/public/rr").length;
    const rssAfter = processRssMb(api.pid);
    const sorted = [...latencies].sort((a, b) => a - b);
    console.log(
      `rapid reset: ${sent} HEADERS+RST_STREAM pairs on ${conns} connections in ${floodMs} ms; ` +
        `GOAWAY codes ${JSON.stringify(Object.fromEntries(goaways))}; ${reached} reached the app; ` +
        `legitimate rounds ${latencies.length}, latency median ${sorted[Math.floor(sorted.length / 2)]} ms, ` +
        `max ${sorted.at(-1)} ms, failures ${failures.length}; api RSS ${rssBefore.toFixed(0)} -> ${rssAfter.toFixed(0)} MB`,
    );
    expect(bypassesSince("inbound", from, "rapid reset")).toEqual([]);
    expect(failures).toEqual([]);
    expect(latencies.length).toBeGreaterThan(0);
    expect(procAlive(api)).toBe(true);
    // Each stream reached the app at most once: no amplification.
    expect(reached).toBeLessThanOrEqual(sent);
    const after = await viaWeb("/public/after-rapid-reset");
    expect(after.status).toBe(200);
  }, 45_000);
});

function h2Get(session: http2.ClientHttp2Session, path: string): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ":path": path, ":authority": "api" });
    const t = setTimeout(() => {
      s.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`${path}: no answer within 5 s`));
    }, 5_000);
    let status = 0;
    s.on("response", (h) => {
      status = Number(h[":status"]);
    });
    s.on("error", (e) => {
      clearTimeout(t);
      reject(e);
    });
    s.resume();
    s.on("end", () => {
      clearTimeout(t);
      resolve({ status });
    });
  });
}

// ================================================================== 3. admin listener

describe("admin listener", () => {
  const admins = () => [api, web];

  it.each(["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])("%s -> 405 on every path", async (m) => {
    for (const p of admins()) {
      for (const path of ["/ready", "/config", "/metrics", "/nope"]) {
        const r = await rawExchange(
          tcp(p.adminPort),
          `${m} ${path} HTTP/1.1\r\nHost: admin\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
          { expect: 1 },
        );
        hostile("admin", r.statuses);
        expect(r.statuses, `${m} ${path}`).toEqual([405]);
        expect(r.raw.toLowerCase()).toContain("allow: get, head");
      }
    }
  });

  it("CONNECT, huge URLs and headers, garbage: 4xx or closed, never served", async () => {
    const results: string[] = [];
    const payloads: [string, string | Buffer][] = [
      ["CONNECT", "CONNECT admin:80 HTTP/1.1\r\nHost: admin:80\r\n\r\n"],
      ["a 64 KiB URL", `GET /config?${"a".repeat(64 * 1024)} HTTP/1.1\r\nHost: admin\r\n\r\n`],
      ["a 16 KiB header", `GET /config HTTP/1.1\r\nHost: admin\r\nX-Big: ${"b".repeat(16 * 1024)}\r\n\r\n`],
      [
        "CL + TE",
        `GET /config HTTP/1.1\r\nHost: admin\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      ],
      ["binary garbage", Buffer.alloc(8 * 1024, 0x80)],
    ];
    for (const [name, payload] of payloads) {
      const r = await rawExchange(tcp(api.adminPort), payload, { timeoutMs: 5_000 });
      hostile("admin", r.statuses);
      results.push(`${name}: ${r.statuses.join(",") || "no response"}, ${r.end}`);
      expect(r.statuses.length, name).toBeLessThanOrEqual(1);
      if (r.statuses.length === 1) expect([400, 404, 405, 414, 431], name).toContain(r.statuses[0]);
      expect(r.closed, name).toBe(true);
      expect(r.raw).not.toContain('"snapshot"');
    }
    console.log(`admin: ${results.join("; ")}`);
  });

  it("200 headers: answered (the admin needs none) or refused, never a crash", async () => {
    const headers = Array.from({ length: 200 }, (_, i) => `X-H${i}: ${i}\r\n`).join("");
    const r = await rawExchange(
      tcp(api.adminPort),
      `GET /ready HTTP/1.1\r\nHost: admin\r\n${headers}Connection: close\r\n\r\n`,
      {
        expect: 1,
      },
    );
    hostile("admin", r.statuses);
    console.log(`admin with 200 headers: ${r.statuses.join(",")}`);
    expect(r.statuses.length).toBe(1);
    expect([200, 400, 431]).toContain(r.statuses[0]);
  });

  it.each([
    "/",
    "/nope",
    "//config",
    "/config/",
    "/CONFIG",
    "/config%00",
    "/config/../metrics",
    "/../config",
    "/ready/x",
    "/metrics.json",
  ])("unknown path %s -> 404", async (path) => {
    const r = await rawExchange(
      tcp(api.adminPort),
      `GET ${path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n`,
      {
        expect: 1,
      },
    );
    hostile("admin", r.statuses);
    expect(r.statuses, path).toEqual([404]);
    expect(r.raw).not.toContain('"snapshot"');
  });

  it("/config and /metrics contain no private key and no token, on both sidecars", async () => {
    for (const p of admins()) {
      for (const path of ["/config", "/metrics", "/ready"]) {
        const r = await httpCall(`http://127.0.0.1:${p.adminPort}`, path, { timeoutMs: 5_000 });
        hostile("admin", [r.status]);
        expect(r.status).toBe(200);
        expect(r.text).not.toContain("PRIVATE KEY");
        expect(r.text).not.toMatch(/BEGIN [A-Z ]*KEY/);
        expect(r.text).not.toContain(cp.token!);
        expect(r.text).not.toContain(certs.web.key.split("\n")[1]!);
      }
      const cfg = JSON.parse((await httpCall(`http://127.0.0.1:${p.adminPort}`, "/config")).text);
      expect(cfg.certificate.spiffeId).toBe(spiffe(p.service));
      expect(JSON.stringify(cfg)).not.toMatch(/token|secret/i);
    }
  });
});

// ================================================================== at the end

describe("after everything", () => {
  it("both sidecars are alive, under the RSS bound, and serve a legitimate request", async () => {
    const r = await viaWeb("/public/the-end");
    expect(r.status, r.text).toBe(200);
    expect(seen.at(-1)?.url).toBe("/public/the-end");
    // The invariant over the whole run: the app never saw a request the rule denies.
    const bad = seen.map(deniedReached).filter((x) => x !== undefined);
    expect(bad).toEqual([]);
    for (const [p, r2] of [
      [web, rssWeb],
      [api, rssApi],
    ] as const) {
      expect(procAlive(p), `${p.service} sidecar died: ${p.stderr().slice(-2000)}`).toBe(true);
      const peak = Math.max(r2.peak, hwmMb(p.pid));
      console.log(
        `${p.service} sidecar: RSS now ${processRssMb(p.pid).toFixed(0)} MB, peak ${peak.toFixed(0)} MB`,
      );
      expect(peak).toBeLessThan(RSS_BOUND_MB);
      // No stack trace or crash report in its log.
      expect(p.stderr()).not.toMatch(/uncaught|unhandled|FATAL ERROR/i);
    }
    for (const l of ["outbound", "inbound", "admin"] as const) {
      expect(fig[l].bypasses, fig[l].list.join("\n")).toBe(0);
      expect(fig[l].fiveXX).toBe(0);
    }
  });
});
