/**
 * gRPC health check (grpc.health.v1.Health/Check) over cleartext HTTP/2 to
 * the app on loopback, by hand with node:http2 and the codec beside it: one
 * session per probe, closed afterwards, so a wedged connection never
 * outlives a probe. SERVING is passing; NOT_SERVING, UNKNOWN,
 * SERVICE_UNKNOWN, a non-OK grpc-status or anything malformed is critical.
 */
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  constants,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
} from "node:http2";
import { boundedProbe } from "./bounded-probe.js";
import {
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
  grpcFrame,
  MAX_GRPC_MESSAGE_BYTES,
  readGrpcFrame,
  SERVING_STATUS,
  servingStatusName,
} from "./grpc-health-codec.js";
import { HEALTH_USER_AGENT } from "./http-check.js";
import {
  errorText,
  hostPort,
  type ProbeOptions,
  type ProbeResult,
  type ProbeTarget,
  result,
} from "./result.js";

export const GRPC_HEALTH_CHECK_PATH = "/grpc.health.v1.Health/Check";

const GRPC_CODE_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** grpc-timeout allows at most 8 digits. */
function grpcTimeout(ms: number): string {
  const whole = Math.max(1, Math.ceil(ms));
  return whole <= 99_999_999 ? `${whole}m` : `${Math.ceil(whole / 1000)}S`;
}

/** grpc-message is percent-encoded (gRPC over HTTP/2 spec); a bad escape is shown raw. */
function grpcMessage(raw: string | string[] | undefined): string {
  const s = Array.isArray(raw) ? raw.join(",") : (raw ?? "");
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function first(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}

/** Never rejects. `timeoutMs` bounds connect, call and response together. */
export function probeGrpc(
  service: string,
  target: ProbeTarget,
  timeoutMs: number,
  opts: ProbeOptions = {},
): Promise<ProbeResult> {
  const what = service === "" ? "the server" : JSON.stringify(service);
  const label = `gRPC health check of ${what} at ${hostPort(target)}`;
  return boundedProbe(label, timeoutMs, opts, (p) => {
    const fail = p.fail;
    /** Set when the call ended normally (whatever it said), so the session may close politely. */
    let complete = false;
    const finish = (r: ProbeResult, ended = false) => {
      complete = ended;
      p.finish(r);
    };
    const session: ClientHttp2Session = connect(`http://${hostPort(target)}`, {
      settings: { enablePush: false },
    });
    let stream: ClientHttp2Stream | undefined;
    p.onSettle(() => {
      if (complete) session.close();
      else {
        if (stream && !stream.closed) stream.close(constants.NGHTTP2_CANCEL);
        session.destroy();
      }
    });
    session.on("error", (e) => fail(errorText(e)));
    session.on("goaway", (code) => {
      if (code !== constants.NGHTTP2_NO_ERROR) fail(`connection closed by the server (GOAWAY ${code})`);
    });
    session.on("close", () => fail("connection closed before the answer"));
    stream = session.request(
      {
        ":method": "POST",
        ":path": GRPC_HEALTH_CHECK_PATH,
        ":authority": hostPort(target),
        "content-type": "application/grpc",
        te: "trailers",
        "grpc-timeout": grpcTimeout(timeoutMs),
        "user-agent": HEALTH_USER_AGENT,
      },
      { endStream: false },
    );
    const call = stream;

    let headers: (IncomingHttpHeaders & IncomingHttpStatusHeader) | undefined;
    let trailers: IncomingHttpHeaders | undefined;
    let body = Buffer.alloc(0);

    call.on("error", (e) => fail(errorText(e)));
    call.on("response", (h) => {
      headers = h;
      const status = h[":status"];
      if (status !== 200) return fail(`HTTP status ${status}`);
      const ct = first(h["content-type"]) ?? "";
      if (!/^application\/grpc(?:$|[+;])/.test(ct)) return fail(`content-type "${ct}" is not gRPC`);
    });
    call.on("trailers", (t) => {
      trailers = t;
    });
    call.on("data", (chunk: Buffer) => {
      // Bounded: a frame above the limit is refused from its prefix, and any
      // byte past the one expected message ends the probe.
      body = Buffer.concat([body, chunk]);
      const frame = readGrpcFrame(body);
      if (frame.kind === "error") return fail(frame.error);
      if (frame.kind === "frame" && frame.extra > 0) return fail("more than one response message");
      if (body.length > 5 + MAX_GRPC_MESSAGE_BYTES) return fail("response too large");
    });
    call.on("end", () => {
      const done = (status: ProbeResult["status"], why: string) =>
        finish(result(status, `${label}: ${why}`), true);
      if (!headers) return fail("no response headers");
      // Trailers-only responses (an error, typically) carry grpc-status in the headers.
      const meta = trailers ?? headers;
      const rawCode = first(meta["grpc-status"]);
      if (rawCode === undefined) return fail("no grpc-status in the response");
      const code = /^\d{1,3}$/.test(rawCode) ? Number(rawCode) : Number.NaN;
      if (Number.isNaN(code)) return fail(`invalid grpc-status "${rawCode}"`);
      if (code !== 0) {
        const name = GRPC_CODE_NAMES[code] ?? "code";
        const msg = grpcMessage(meta["grpc-message"]);
        return done("critical", `gRPC status ${code} ${name}${msg ? `: ${msg}` : ""}`);
      }
      const frame = readGrpcFrame(body);
      if (frame.kind === "incomplete")
        return fail(body.length === 0 ? "no response message" : "truncated response message");
      if (frame.kind === "error") return fail(frame.error);
      // We never offer grpc-accept-encoding, so a compressed answer is a broken server.
      if (frame.compressed) return fail("compressed response message (no compression was negotiated)");
      const decoded = decodeHealthCheckResponse(frame.message);
      if (!decoded.ok) return fail(`malformed HealthCheckResponse: ${decoded.error}`);
      const name = servingStatusName(decoded.status);
      return done(decoded.status === SERVING_STATUS.SERVING ? "passing" : "critical", name);
    });
    call.on("close", () => {
      // After "end" this is a no-op; without it the stream was reset.
      if (call.rstCode) fail(`stream reset by the server (code ${stream.rstCode})`);
      else fail("stream closed before the answer");
    });
    call.end(grpcFrame(encodeHealthCheckRequest(service)));
  });
}
