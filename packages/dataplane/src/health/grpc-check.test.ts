// Tests only: the real grpc-js server checks the hand-written client against a reference implementation.

import {
  constants,
  createServer,
  type Http2Server,
  type Http2Session,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import { createServer as createNetServer, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { probeGrpc } from "./grpc-check.js";
import { grpcFrame } from "./grpc-health-codec.js";
import { probe } from "./probe.js";

// --- a real grpc-js health server -----------------------------------------

interface HealthRequest {
  service: string;
}

let healthService: grpc.ServiceDefinition;

beforeAll(() => {
  const def = protoLoader.loadSync(fileURLToPath(new URL("./testdata/health.proto", import.meta.url)), {
    keepCase: true,
    enums: String,
    defaults: true,
  });
  const loaded = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  healthService = loaded.grpc.health.v1.Health.service;
});

const grpcServers: grpc.Server[] = [];
const h2Servers: Http2Server[] = [];

afterEach(async () => {
  for (const s of grpcServers.splice(0)) s.forceShutdown();
  for (const s of h2Servers.splice(0)) {
    await new Promise<void>((r) => s.close(() => r()));
  }
});

/** Check answers by service name, as an app's health service would. */
async function startGrpc(seen: { service: string; metadata: grpc.Metadata }[] = []): Promise<number> {
  const server = new grpc.Server();
  grpcServers.push(server);
  server.addService(healthService, {
    Check(
      call: grpc.ServerUnaryCall<HealthRequest, unknown>,
      cb: grpc.sendUnaryData<{ status: string }>,
    ): void {
      const service = call.request.service;
      seen.push({ service, metadata: call.metadata });
      const status: Record<string, string> = {
        "": "SERVING",
        "weft.Echo": "SERVING",
        down: "NOT_SERVING",
        unsure: "UNKNOWN",
        gone: "SERVICE_UNKNOWN",
      };
      if (service === "broken") cb({ code: grpc.status.UNAVAILABLE, details: "db down: 100% — ✗" });
      else if (status[service]) cb(null, { status: status[service] });
      else cb({ code: grpc.status.NOT_FOUND, details: "unknown service" });
    },
  });
  return new Promise((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    ),
  );
}

const at = (port: number) => ({ host: "127.0.0.1", port });

describe("probeGrpc against grpc-js", () => {
  it("is passing when the server as a whole is SERVING", async () => {
    const seen: { service: string; metadata: grpc.Metadata }[] = [];
    const port = await startGrpc(seen);
    const r = await probe({ kind: "grpc" }, at(port), 2_000);
    expect(r).toEqual({
      status: "passing",
      output: `gRPC health check of the server at 127.0.0.1:${port}: SERVING`,
    });
    expect(seen.map((s) => s.service)).toEqual([""]);
    expect(String(seen[0]?.metadata.get("user-agent")[0])).toContain("weft-health/1");
  });

  it("sends the service name and is passing when it is SERVING", async () => {
    const seen: { service: string; metadata: grpc.Metadata }[] = [];
    const port = await startGrpc(seen);
    const r = await probe({ kind: "grpc", service: "weft.Echo" }, at(port), 2_000);
    expect(r.status).toBe("passing");
    expect(r.output).toBe(`gRPC health check of "weft.Echo" at 127.0.0.1:${port}: SERVING`);
    expect(seen.map((s) => s.service)).toEqual(["weft.Echo"]);
  });

  it.each([
    ["down", "NOT_SERVING"],
    ["unsure", "UNKNOWN"],
    ["gone", "SERVICE_UNKNOWN"],
  ])("is critical when %s answers %s", async (service, name) => {
    const port = await startGrpc();
    const r = await probe({ kind: "grpc", service }, at(port), 2_000);
    expect(r).toEqual({
      status: "critical",
      output: `gRPC health check of "${service}" at 127.0.0.1:${port}: ${name}`,
    });
  });

  it("is critical with the decoded grpc-message on an error status", async () => {
    const port = await startGrpc();
    const r = await probe({ kind: "grpc", service: "broken" }, at(port), 2_000);
    expect(r.status).toBe("critical");
    expect(r.output).toBe(
      `gRPC health check of "broken" at 127.0.0.1:${port}: gRPC status 14 UNAVAILABLE: db down: 100% — ✗`,
    );
  });

  it("is critical with NOT_FOUND for a service the server does not know", async () => {
    const port = await startGrpc();
    const r = await probe({ kind: "grpc", service: "nope" }, at(port), 2_000);
    expect(r.status).toBe("critical");
    expect(r.output).toContain("gRPC status 5 NOT_FOUND: unknown service");
  });

  it("gives the same answers on repeated probes (no state left behind)", async () => {
    const port = await startGrpc();
    for (let i = 0; i < 5; i++) {
      expect((await probe({ kind: "grpc" }, at(port), 2_000)).status).toBe("passing");
      expect((await probe({ kind: "grpc", service: "down" }, at(port), 2_000)).status).toBe("critical");
    }
  });
});

// --- hand-made HTTP/2 servers misbehaving ---------------------------------

interface H2 {
  port: number;
  sessions: Set<Http2Session>;
}

async function startH2(
  handler: (stream: ServerHttp2Stream, headers: OutgoingHttpHeaders) => void,
): Promise<H2> {
  const server = createServer();
  h2Servers.push(server);
  const sessions = new Set<Http2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  server.on("stream", (stream, headers) => {
    stream.on("error", () => {});
    handler(stream, headers);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  return { port: typeof addr === "object" && addr ? addr.port : 0, sessions };
}

const GRPC_OK = { ":status": 200, "content-type": "application/grpc" };

/** Answers with `body` then the given trailers, after reading the request. */
function answer(body: Buffer, trailers: OutgoingHttpHeaders = { "grpc-status": "0" }) {
  return (stream: ServerHttp2Stream) => {
    stream.resume();
    stream.on("end", () => {
      stream.respond(GRPC_OK, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers(trailers));
      stream.end(body);
    });
  };
}

describe("probeGrpc against broken servers", () => {
  it("sends a well-formed request (path, headers, one framed message)", async () => {
    let got: { headers: OutgoingHttpHeaders; body: Buffer } | undefined;
    const h2 = await startH2((stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        got = { headers, body: Buffer.concat(chunks) };
        stream.respond(GRPC_OK, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(grpcFrame(Buffer.from([0x08, 0x01])));
      });
    });
    const r = await probe({ kind: "grpc", service: "svc" }, at(h2.port), 2_000);
    expect(r.status).toBe("passing");
    expect(got?.headers[":method"]).toBe("POST");
    expect(got?.headers[":path"]).toBe("/grpc.health.v1.Health/Check");
    expect(got?.headers["content-type"]).toBe("application/grpc");
    expect(got?.headers.te).toBe("trailers");
    expect(got?.body.toString("hex")).toBe("00000000050a03737663");
  });

  it("closes the session after each probe", async () => {
    const h2 = await startH2(answer(grpcFrame(Buffer.from([0x08, 0x01]))));
    let peak = 0;
    for (let i = 0; i < 3; i++) {
      expect((await probe({ kind: "grpc" }, at(h2.port), 2_000)).status).toBe("passing");
      peak = Math.max(peak, h2.sessions.size);
      await until(() => h2.sessions.size === 0);
    }
    expect(peak).toBeLessThanOrEqual(1);
  });

  it.each([
    [
      "a malformed protobuf message",
      grpcFrame(Buffer.from([0xff, 0xff, 0xff])),
      /malformed HealthCheckResponse/,
    ],
    ["bytes that are not a gRPC frame at all", Buffer.from("<html>hello</html>"), /invalid compressed flag/],
    ["a truncated frame", Buffer.from([0, 0, 0, 0, 9, 0x08]), /truncated response message/],
    ["no message", Buffer.alloc(0), /no response message/],
    ["a compressed message", Buffer.from([1, 0, 0, 0, 2, 0x08, 0x01]), /compressed response message/],
    [
      "two messages",
      Buffer.concat([grpcFrame(Buffer.from([0x08, 0x01])), grpcFrame(Buffer.from([0x08, 0x01]))]),
      /more than one response message/,
    ],
  ])("is critical, without crashing, on %s", async (_name, body, why) => {
    const h2 = await startH2(answer(body));
    const r = await probe({ kind: "grpc" }, at(h2.port), 2_000);
    expect(r.status).toBe("critical");
    expect(r.output).toMatch(why);
    await until(() => h2.sessions.size === 0);
  });

  it("refuses an oversized frame from its prefix and stops reading", async () => {
    let sent = 0;
    const h2 = await startH2((stream) => {
      stream.resume();
      stream.respond(GRPC_OK);
      stream.write(Buffer.from([0, 0, 0x10, 0, 0])); // claims 1 MiB
      const chunk = Buffer.alloc(16 * 1024);
      const pump = () => {
        while (sent < 16 * 1024 * 1024 && !stream.destroyed && !stream.closed) {
          sent += chunk.length;
          if (!stream.write(chunk)) return void stream.once("drain", pump);
        }
      };
      pump();
    });
    const r = await probe({ kind: "grpc" }, at(h2.port), 5_000);
    expect(r.status).toBe("critical");
    expect(r.output).toContain("response message of 1048576 bytes exceeds the limit of 65536");
    await until(() => h2.sessions.size === 0);
    expect(sent).toBeLessThan(16 * 1024 * 1024);
  });

  it("reads grpc-status from the headers of a trailers-only response", async () => {
    const h2 = await startH2((stream) => {
      stream.resume();
      stream.respond(
        { ...GRPC_OK, "grpc-status": "12", "grpc-message": "no%20health%20here" },
        { endStream: true },
      );
    });
    const r = await probe({ kind: "grpc" }, at(h2.port), 2_000);
    expect(r).toEqual({
      status: "critical",
      output: `gRPC health check of the server at 127.0.0.1:${h2.port}: gRPC status 12 UNIMPLEMENTED: no health here`,
    });
  });

  it("trusts grpc-status over a SERVING message", async () => {
    const h2 = await startH2(
      answer(grpcFrame(Buffer.from([0x08, 0x01])), { "grpc-status": "13", "grpc-message": "%zz bad escape" }),
    );
    const r = await probe({ kind: "grpc" }, at(h2.port), 2_000);
    expect(r.status).toBe("critical");
    expect(r.output).toContain("gRPC status 13 INTERNAL: %zz bad escape");
  });

  it.each([
    ["no grpc-status", {}, /no grpc-status/],
    ["a non-numeric grpc-status", { "grpc-status": "ok" }, /invalid grpc-status "ok"/],
  ])("is critical with %s", async (_name, trailers, why) => {
    const h2 = await startH2(answer(grpcFrame(Buffer.from([0x08, 0x01])), trailers));
    const r = await probe({ kind: "grpc" }, at(h2.port), 2_000);
    expect(r.status).toBe("critical");
    expect(r.output).toMatch(why);
  });

  it("is critical on an HTTP error or a non-gRPC content-type", async () => {
    const h404 = await startH2((stream) => {
      stream.resume();
      stream.respond({ ":status": 404 }, { endStream: true });
    });
    expect((await probe({ kind: "grpc" }, at(h404.port), 2_000)).output).toMatch(/HTTP status 404/);
    const html = await startH2((stream) => {
      stream.resume();
      stream.respond({ ":status": 200, "content-type": "text/html" });
      stream.end("<p>hi</p>");
    });
    expect((await probe({ kind: "grpc" }, at(html.port), 2_000)).output).toMatch(/content-type "text\/html"/);
  });

  it("is critical when the server resets the stream", async () => {
    const h2 = await startH2((stream) => stream.close(constants.NGHTTP2_REFUSED_STREAM));
    const r = await probe({ kind: "grpc" }, at(h2.port), 2_000);
    expect(r.status).toBe("critical");
    expect(r.output).toMatch(/NGHTTP2_REFUSED_STREAM|reset/);
  });

  it("times out on a server that never answers, and closes the session", async () => {
    const h2 = await startH2((stream) => stream.resume());
    const r = await probe({ kind: "grpc" }, at(h2.port), 150);
    expect(r).toEqual({
      status: "critical",
      output: `gRPC health check of the server at 127.0.0.1:${h2.port}: timed out after 150 ms`,
    });
    await until(() => h2.sessions.size === 0);
  });

  it("is critical when the port does not speak HTTP/2", async () => {
    const socks: Socket[] = [];
    const srv = createNetServer((sock) => {
      socks.push(sock);
      sock.resume();
      sock.end("HTTP/1.1 400 Bad Request\r\n\r\n");
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    try {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      const r = await probe({ kind: "grpc" }, at(port), 2_000);
      expect(r.status).toBe("critical");
      expect(r.output).toMatch(/ERR_HTTP2|closed/);
    } finally {
      for (const s of socks) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  it("is critical with ECONNREFUSED when nothing listens", async () => {
    const srv = createNetServer();
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const addr = srv.address();
    const port = typeof addr === "object" && addr ? addr.port : 0;
    await new Promise<void>((r) => srv.close(() => r()));
    const r = await probe({ kind: "grpc" }, at(port), 2_000);
    expect(r.status).toBe("critical");
    expect(r.output).toMatch(/ECONNREFUSED/);
  });

  it("stops at once when aborted", async () => {
    const h2 = await startH2((stream) => stream.resume());
    const ac = new AbortController();
    const p = probeGrpc("", at(h2.port), 60_000, { signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    expect((await p).output).toMatch(/cancelled$/);
    await until(() => h2.sessions.size === 0);
  });
});

async function until(cond: () => boolean, realMs = 5_000): Promise<void> {
  const deadline = Date.now() + realMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}
