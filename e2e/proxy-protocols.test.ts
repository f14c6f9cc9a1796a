/**
 * What crosses a pair of sidecars (web -> api) arrives byte for byte, for
 * every protocol the sidecar speaks: HTTP/1.1 (keep-alive, chunked, 20 MB
 * up and down), WebSocket, HTTP/2 (h2c), gRPC (all four kinds of call and
 * an error status) and raw TCP (20 MB each way, half-close). Bodies are
 * compared by sha256. Large bodies also show that the sidecars stream: the
 * resident memory of both sidecar processes is sampled, and an upload the
 * app stops reading, or a download the client stops reading, must not pile
 * up in them.
 */
import { createHash } from "node:crypto";
import http, { type Agent } from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  APPS_DIR,
  type App,
  adminJson,
  applyResources,
  meshCleanup,
  PATTERN_CHUNK,
  patternChunk,
  patternSha256,
  type SidecarProc,
  sha256,
  startApp,
  startProxy,
  waitEndpoints,
} from "./helpers/mesh.js";
import { processRssMb, RssSampler } from "./helpers/proc.js";
import { startWeftServer, type WeftServer } from "./helpers/weft.js";

const MB = 1024 * 1024;
const BIG = 20 * MB;

let cp: WeftServer;
let web: SidecarProc;
let files: SidecarProc;
let raw: SidecarProc;
let filesApp: App;
const local = { files: 0, h2: 0, rpc: 0, raw: 0 };

beforeAll(async () => {
  cp = await startWeftServer({ store: "memory", dev: true });
  for (const k of Object.keys(local) as (keyof typeof local)[]) local[k] = await freePort();
  await applyResources(
    cp.addr,
    ["files", "h2", "rpc", "raw"].map((name) => ({
      kind: "Intention",
      name,
      sources: [{ name: "web", action: "allow" }],
    })),
  );
  let h2App: App;
  let rpcApp: App;
  let rawApp: App;
  let webApp: App;
  [filesApp, h2App, rpcApp, rawApp, webApp] = await Promise.all([
    startApp("http-app.mjs", { env: { NAME: "files", REPLICA: "f" } }),
    startApp("h2c-app.mjs", { env: { REPLICA: "h" } }),
    startApp("grpc-app.mjs", { env: { REPLICA: "g" } }),
    startApp("tcp-echo.mjs"),
    startApp("http-app.mjs", { env: { NAME: "web", REPLICA: "w" } }),
  ]);
  const s = cp.addr;
  const proxies = await Promise.all([
    startProxy({
      service: "files",
      appPort: filesApp.port,
      protocol: "http",
      health: { http: "/healthz" },
      server: s,
    }),
    startProxy({ service: "h2", appPort: h2App.port, protocol: "http2", server: s }),
    startProxy({ service: "rpc", appPort: rpcApp.port, protocol: "grpc", health: { grpc: true }, server: s }),
    startProxy({ service: "raw", appPort: rawApp.port, protocol: "tcp", server: s }),
    startProxy({
      service: "web",
      appPort: webApp.port,
      protocol: "http",
      health: { http: "/healthz" },
      upstreams: local,
      server: s,
    }),
  ]);
  [files, , , raw, web] = proxies;
  await Promise.all(Object.keys(local).map((svc) => waitEndpoints(web.adminPort, svc, 1)));
}, 60_000);

afterAll(meshCleanup);

/** RSS of both sidecars on the path (web's outbound, the destination's inbound): before, and the peak while `fn` runs. */
async function withRss<T>(
  label: string,
  dest: SidecarProc,
  fn: () => Promise<T>,
): Promise<{ result: T; growthMb: number }> {
  const samplers = [web, dest].map((p) => new RssSampler(() => p.pid));
  const before = samplers.map((s) => s.start(20));
  let result: T;
  try {
    result = await fn();
  } finally {
    for (const s of samplers) {
      s.sample();
      s.stop();
    }
  }
  const grown = samplers.map((s, i) => s.peak - (before[i] as number));
  console.log(
    `${label}: sidecar RSS web ${before[0]?.toFixed(1)} -> peak ${samplers[0]?.peak.toFixed(1)} MB, ` +
      `${dest.service} ${before[1]?.toFixed(1)} -> peak ${samplers[1]?.peak.toFixed(1)} MB`,
  );
  return { result, growthMb: Math.max(...grown) };
}

interface Streamed {
  status: number;
  headers: http.IncomingHttpHeaders;
  bytes: number;
  sha: string;
  /** The body, when under 1 MB. */
  text: string;
  /** The client side port of the connection that carried the request. */
  localPort: number | undefined;
  /** Response bytes received by the time the whole request body had been handed to the kernel. */
  receivedAtUploadEnd: number;
}

/** How far an upload got: bytes handed to the socket, and when it last accepted any. */
interface UploadProgress {
  written: number;
  lastWriteAt: number;
}

/** One HTTP/1.1 request to the web sidecar's `files` port; the body (if any) is `uploadBytes` of the pattern, written with backpressure. */
function request(
  path: string,
  o: {
    method?: string;
    uploadBytes?: number;
    progress?: UploadProgress;
    agent?: Agent;
    onData?: (received: number, res: http.IncomingMessage) => void;
  } = {},
): Promise<Streamed> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1",
      port: local.files,
      path,
      method: o.method ?? (o.uploadBytes === undefined ? "GET" : "POST"),
      agent: o.agent ?? false,
      headers: o.uploadBytes === undefined ? {} : { "content-type": "application/octet-stream" },
    });
    const timer = setTimeout(() => req.destroy(new Error(`${path}: no complete answer within 60 s`)), 60_000);
    let received = 0;
    let receivedAtUploadEnd = -1;
    req.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.on("response", (res) => {
      const h = createHash("sha256");
      const kept: Buffer[] = [];
      res.on("data", (c: Buffer) => {
        received += c.length;
        h.update(c);
        if (received < MB) kept.push(c);
        o.onData?.(received, res);
      });
      res.on("end", () => {
        clearTimeout(timer);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          bytes: received,
          sha: h.digest("hex"),
          text: received < MB ? Buffer.concat(kept).toString("utf8") : "",
          localPort: res.socket?.localPort,
          receivedAtUploadEnd,
        });
      });
      res.on("error", reject);
    });
    if (o.uploadBytes === undefined) {
      req.end();
      return;
    }
    const total = o.uploadBytes;
    const progress = o.progress ?? { written: 0, lastWriteAt: 0 };
    let i = 0;
    const pump = () => {
      progress.lastWriteAt = Date.now();
      while (i * PATTERN_CHUNK < total) {
        const len = Math.min(PATTERN_CHUNK, total - i * PATTERN_CHUNK);
        const ok = req.write(patternChunk(i, len));
        progress.written += len;
        i++;
        if (!ok) {
          req.once("drain", pump);
          return;
        }
      }
      req.end(() => {
        receivedAtUploadEnd = received;
      });
    };
    pump();
  });
}

/** Polls `progress` until the upload has accepted nothing for `quietMs`; resolves to the bytes written by then. */
async function stalled(progress: UploadProgress, quietMs = 300): Promise<number> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (progress.lastWriteAt > 0 && Date.now() - progress.lastWriteAt >= quietMs) return progress.written;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`the upload never stalled (${progress.written} bytes written)`);
}

const rss = () => [web, files].map((p) => processRssMb(p.pid));
/** The larger growth of the two sidecars. */
const growth = (from: number[], to: number[]) => Math.max(...to.map((v, i) => v - (from[i] as number)));
const mbs = (v: number[]) => v.map((x) => x.toFixed(1)).join("/");

/**
 * Streaming, shown by memory at a stall: while the app stops reading
 * (upload) or the client stops reading (download) after 2 MB, the path fills
 * up (kernel socket buffers of three loopback hops, small HTTP/2 windows,
 * stream buffers: 8-14 MB measured here, printed) and then the writer is held
 * back. A sidecar that buffers bodies, or reads without backpressure, holds
 * the other 18 MB at that point; a streaming one grew by 0-5 MB here. Hence
 * the bound: each sidecar's RSS growth from before the request to the stall
 * stays under MAX_RSS_GROWTH_MB. Not asserted on the peak of a whole
 * transfer: a streaming sidecar still grows by ~40 MB while 20 MB flow
 * through it, because Buffers are V8 external memory freed lazily (the raw
 * TCP splice, a plain pipe, shows the same; those peaks are printed). Nor on
 * how much the path absorbed: that is mostly the kernel's buffer tuning.
 */
const MAX_RSS_GROWTH_MB = 15;

describe("HTTP/1.1", () => {
  it("keep-alive: 50 requests on one client connection", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const ports = new Set<number | undefined>();
      for (let i = 0; i < 50; i++) {
        const r = await request("/whoami", { agent });
        expect(r.status, r.text).toBe(200);
        expect(JSON.parse(r.text)).toMatchObject({ service: "files", replica: "f" });
        ports.add(r.localPort);
      }
      console.log(`keep-alive: 50 requests over ${ports.size} client connection(s)`);
      expect(ports.size).toBe(1);
    } finally {
      agent.destroy();
    }
  });

  it("the request target reaches the app as sent, query string included", async () => {
    const target = "/whoami?b=2&a=1&x=%2F&empty=";
    const r = await request(target);
    expect(r.status, r.text).toBe(200);
    console.log(`request target ${target} arrived as ${JSON.parse(r.text).url}`);
    expect(JSON.parse(r.text).url).toBe(target);
  });

  it("a chunked response arrives complete", async () => {
    let expected = "";
    for (let n = 0; n < 10; n++) expected += `chunk ${n} ${"x".repeat(n * 100)}\n`;
    expected += "end\n";
    const r = await request("/chunked");
    expect(r.status).toBe(200);
    expect(r.text).toBe(expected);
    expect(r.headers["content-length"]).toBeUndefined();
  });

  it("a 20 MB upload is echoed byte for byte; the echo starts before the upload ends", async () => {
    await request("/whoami"); // warm both sidecars' connections
    const started = Date.now();
    const { result: r, growthMb } = await withRss("20 MB upload (POST /echo)", files, () =>
      request("/echo", { uploadBytes: BIG }),
    );
    console.log(
      `20 MB upload echoed in ${Date.now() - started} ms; ${(r.receivedAtUploadEnd / MB).toFixed(1)} MB of the echo ` +
        `had arrived when the upload ended; RSS peak growth ${growthMb.toFixed(1)} MB`,
    );
    expect(r.status).toBe(200);
    expect(r.bytes).toBe(BIG);
    expect(r.sha).toBe(patternSha256(BIG));
    // A proxy that collects the request body before forwarding it echoes nothing before the upload ends.
    expect(r.receivedAtUploadEnd).toBeGreaterThan(0);
  }, 90_000);

  it("a 20 MB upload to an app that stops reading is held back at the client, not in the sidecars", async () => {
    const before = rss();
    const progress: UploadProgress = { written: 0, lastWriteAt: 0 };
    const started = Date.now();
    const pending = request("/sink", { uploadBytes: BIG, progress });
    const accepted = await stalled(progress);
    const atStall = rss();
    const r = await pending;
    const inPipe = accepted / MB - 2;
    console.log(
      `20 MB upload, app paused after 2 MB for 3 s: the client could write ${(accepted / MB).toFixed(1)} MB ` +
        `(${inPipe.toFixed(1)} MB held in the path); sidecar RSS (web/files) ${mbs(before)} -> ${mbs(atStall)} MB; ` +
        `done in ${Date.now() - started} ms`,
    );
    expect(r.status, r.text).toBe(200);
    expect(JSON.parse(r.text)).toEqual({ bytes: BIG, sha256: patternSha256(BIG) });
    expect(accepted).toBeGreaterThanOrEqual(2 * MB);
    expect(growth(before, atStall)).toBeLessThan(MAX_RSS_GROWTH_MB);
  }, 90_000);

  it("a 20 MB download arrives byte for byte; a reader that stops holds it back in the app, not in the sidecars", async () => {
    const before = rss();
    let atPause: number[] = [];
    let endOfPause: number[] = [];
    let appWritten = -1;
    let paused = false;
    const started = Date.now();
    const { result: r, growthMb } = await withRss("20 MB download (GET /big)", files, () =>
      // The path form: this test is about streaming; query strings have their own test.
      request("/big/20", {
        onData: (received, res) => {
          if (paused || received < 2 * MB) return;
          paused = true;
          res.pause();
          atPause = rss();
          setTimeout(async () => {
            endOfPause = rss();
            appWritten = (await adminJson(filesApp.port, "/stats")).bigWritten;
            res.resume();
          }, 1_500);
        },
      }),
    );
    const inPipe = appWritten / MB - 2;
    console.log(
      `20 MB download in ${Date.now() - started} ms, reader paused 1.5 s after 2 MB: the app could write ` +
        `${(appWritten / MB).toFixed(1)} MB meanwhile (${inPipe.toFixed(1)} MB held in the path); sidecar RSS growth ` +
        `${growth(before, atPause).toFixed(1)} MB at the pause, ${growth(before, endOfPause).toFixed(1)} MB at its end, ` +
        `peak ${growthMb.toFixed(1)} MB`,
    );
    expect(r.status).toBe(200);
    expect(r.bytes).toBe(BIG);
    expect(r.sha).toBe(patternSha256(BIG));
    expect(appWritten).toBeGreaterThanOrEqual(2 * MB);
    expect(growth(before, endOfPause)).toBeLessThan(MAX_RSS_GROWTH_MB);
  }, 90_000);
});

describe("WebSocket", () => {
  it("echoes a text message and a 5 MB binary message", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${local.files}/ws`, { maxPayload: 64 * MB });
    const got: { data: Buffer; binary: boolean }[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once("open", () => resolve());
        ws.once("error", reject);
        ws.once("unexpected-response", (_req, res) =>
          reject(new Error(`upgrade answered ${res.statusCode}`)),
        );
      });
      const big = Buffer.concat(Array.from({ length: 80 }, (_, i) => patternChunk(i)));
      const all = new Promise<void>((resolve, reject) => {
        ws.on("message", (data: Buffer, binary: boolean) => {
          got.push({ data, binary });
          if (got.length === 2) resolve();
        });
        ws.once("close", (code) => reject(new Error(`closed (${code}) after ${got.length} messages`)));
        ws.once("error", reject);
      });
      ws.send("hello through two sidecars ✓");
      ws.send(big, { binary: true });
      await all;
      expect(got[0]?.binary).toBe(false);
      expect(got[0]?.data.toString("utf8")).toBe("hello through two sidecars ✓");
      expect(got[1]?.binary).toBe(true);
      expect(got[1]?.data.length).toBe(big.length);
      expect(sha256(got[1]?.data as Buffer)).toBe(sha256(big));
      console.log(`WebSocket: text and ${(big.length / MB).toFixed(1)} MB binary echoed byte for byte`);
    } finally {
      ws.terminate();
    }
  }, 60_000);
});

describe("HTTP/2 (h2c)", () => {
  it("20 concurrent streams on one session, each body echoed byte for byte", async () => {
    const session = http2.connect(`http://127.0.0.1:${local.h2}`);
    session.on("error", () => {});
    try {
      const one = (i: number) =>
        new Promise<{ status: number; path: unknown; replica: unknown; sha: string; expected: string }>(
          (resolve, reject) => {
            const body = Buffer.concat([
              patternChunk(i * 4),
              patternChunk(i * 4 + 1),
              patternChunk(i * 4 + 2),
            ]);
            const req = session.request({ ":method": "POST", ":path": `/stream/${i}` });
            const h = createHash("sha256");
            let status = 0;
            let path: unknown;
            let replica: unknown;
            req.on("response", (headers) => {
              status = Number(headers[":status"]);
              path = headers["x-path"];
              replica = headers["x-replica"];
            });
            req.on("data", (c: Buffer) => h.update(c));
            req.on("end", () =>
              resolve({ status, path, replica, sha: h.digest("hex"), expected: sha256(body) }),
            );
            req.on("error", reject);
            req.setTimeout(20_000, () => req.close(http2.constants.NGHTTP2_CANCEL));
            req.end(body);
          },
        );
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => one(i)));
      results.forEach((r, i) => {
        expect(r.status).toBe(200);
        expect(r.path).toBe(`/stream/${i}`);
        expect(r.replica).toBe("h");
        expect(r.sha).toBe(r.expected);
      });
      console.log("h2c: 20 concurrent streams of 192 KB echoed byte for byte");
    } finally {
      session.close();
    }
  }, 60_000);
});

describe("HTTP/2 request target", () => {
  it("the :path reaches the app as sent, query string included", async () => {
    const session = http2.connect(`http://127.0.0.1:${local.h2}`);
    session.on("error", () => {});
    try {
      const target = "/q?b=2&a=1&x=%2F";
      const got = await new Promise<unknown>((resolve, reject) => {
        const req = session.request({ ":method": "GET", ":path": target });
        req.on("response", (h) => resolve(h["x-path"]));
        req.on("error", reject);
        req.resume();
        req.end();
      });
      console.log(`h2c request target ${target} arrived as ${String(got)}`);
      expect(got).toBe(target);
    } finally {
      session.close();
    }
  });
});

describe("gRPC", () => {
  // biome-ignore lint/suspicious/noExplicitAny: a client made from a .proto at run time
  let client: any;
  const deadline = () => ({ deadline: Date.now() + 20_000 });

  beforeAll(() => {
    const def = loader.loadSync(join(APPS_DIR, "echo.proto"), {
      keepCase: true,
      longs: Number,
      enums: String,
      defaults: true,
    });
    // biome-ignore lint/suspicious/noExplicitAny: the package object is untyped
    const pkg = grpc.loadPackageDefinition(def) as any;
    client = new pkg.weft.e2e.Echo(`127.0.0.1:${local.rpc}`, grpc.credentials.createInsecure());
  });

  afterAll(() => client?.close());

  it("unary", async () => {
    const payload = patternChunk(7);
    const res = await new Promise<{ message: string; payload: Buffer; replica: string }>((resolve, reject) =>
      client.Unary(
        { message: "hi ✓", payload },
        new grpc.Metadata(),
        deadline(),
        (err: Error | null, r: never) => (err ? reject(err) : resolve(r)),
      ),
    );
    expect(res.message).toBe("hi ✓");
    expect(res.replica).toBe("g");
    expect(sha256(res.payload)).toBe(sha256(payload));
  });

  it("server streaming: 1000 messages in order", async () => {
    const indexes: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.ServerStream({ message: "m", count: 1000 }, new grpc.Metadata(), deadline());
      call.on("data", (m: { index: number; message: string }) => {
        if (m.message !== `m ${m.index}`) reject(new Error(`bad message ${m.message} at ${m.index}`));
        indexes.push(m.index);
      });
      call.on("error", reject);
      call.on("end", () => resolve());
    });
    expect(indexes.length).toBe(1000);
    expect(indexes.every((v, i) => v === i)).toBe(true);
  });

  it("client streaming: 100 messages", async () => {
    const res = await new Promise<{ message: string; index: number; payload: Buffer }>((resolve, reject) => {
      const call = client.ClientStream(new grpc.Metadata(), deadline(), (err: Error | null, r: never) =>
        err ? reject(err) : resolve(r),
      );
      for (let i = 0; i < 100; i++) call.write({ message: `m${i}`, payload: Buffer.alloc(1000, i) });
      call.end();
    });
    expect(res.index).toBe(100);
    expect(res.message).toBe(Array.from({ length: 100 }, (_, i) => `m${i}`).join(","));
    expect(res.payload.toString()).toBe("100000");
  });

  it("bidi streaming: 50 ping-pongs, each answer before the next message", async () => {
    const call = client.Bidi(new grpc.Metadata(), deadline());
    const replies: string[] = [];
    let waiting: ((m: string) => void) | undefined;
    call.on("data", (m: { message: string }) => {
      replies.push(m.message);
      waiting?.(m.message);
    });
    const ended = new Promise<void>((resolve, reject) => {
      call.on("end", () => resolve());
      call.on("error", reject);
    });
    for (let i = 0; i < 50; i++) {
      const answered = new Promise<string>((resolve) => {
        waiting = resolve;
      });
      call.write({ message: `ping ${i}` });
      expect(await answered).toBe(`echo ping ${i}`);
    }
    call.end();
    await ended;
    expect(replies.length).toBe(50);
  });

  it("an error status and its message arrive unchanged", async () => {
    const err = await new Promise<grpc.ServiceError>((resolve, reject) =>
      client.Fail({ message: "widget-7" }, new grpc.Metadata(), deadline(), (e: grpc.ServiceError | null) =>
        e ? resolve(e) : reject(new Error("Fail succeeded")),
      ),
    );
    console.log(`gRPC error through the mesh: code ${err.code}, details ${JSON.stringify(err.details)}`);
    expect(err.code).toBe(grpc.status.NOT_FOUND);
    expect(err.details).toBe("no such thing: widget-7 (é ✓)");
  });
});

describe("raw TCP", () => {
  /** Sends `bytes` of the pattern, then FIN; resolves with the digest of the first `bytes` bytes back and what follows. */
  function tcpRoundTrip(
    bytes: number,
  ): Promise<{ sha: string; received: number; tail: string; end: string }> {
    return new Promise((resolve) => {
      const s = net.connect({ host: "127.0.0.1", port: local.raw, allowHalfOpen: true });
      const h = createHash("sha256");
      let received = 0;
      let tail = "";
      let settled = false;
      const done = (end: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        s.destroy();
        resolve({ sha: h.digest("hex"), received, tail, end });
      };
      const timer = setTimeout(() => done("timeout"), 60_000);
      s.on("data", (c: Buffer) => {
        const inBody = Math.max(0, Math.min(c.length, bytes - received));
        if (inBody > 0) h.update(c.subarray(0, inBody));
        if (inBody < c.length) tail += c.subarray(inBody).toString("utf8");
        received += c.length;
      });
      s.on("end", () => done("EOF"));
      s.on("error", (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
      s.on("connect", () => {
        let i = 0;
        const pump = () => {
          while (i * PATTERN_CHUNK < bytes) {
            const ok = s.write(patternChunk(i, Math.min(PATTERN_CHUNK, bytes - i * PATTERN_CHUNK)));
            i++;
            if (!ok) {
              s.once("drain", pump);
              return;
            }
          }
          s.end();
        };
        pump();
      });
    });
  }

  it("half-close: after the client's FIN the server's last words still arrive", async () => {
    const r = await tcpRoundTrip(5);
    expect(r).toMatchObject({ received: 8, tail: "bye", end: "EOF" });
  });

  it("20 MB each way byte for byte, then the half-close", async () => {
    const started = Date.now();
    const { result: r, growthMb } = await withRss("20 MB each way over TCP", raw, () => tcpRoundTrip(BIG));
    console.log(`TCP: 20 MB each way in ${Date.now() - started} ms; RSS growth ${growthMb.toFixed(1)} MB`);
    expect(r.end).toBe("EOF");
    expect(r.received).toBe(BIG + 3);
    expect(r.sha).toBe(patternSha256(BIG));
    expect(r.tail).toBe("bye");
  }, 90_000);
});
