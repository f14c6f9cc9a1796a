/**
 * HTTP health check of the app on loopback, with Consul's semantics: GET the
 * path, 2xx/3xx passing (redirects are not followed), 429 warning, anything
 * else critical. The output is the status line plus the first 4 KiB of the
 * body, so an app can explain itself ("db: down") in the catalog.
 */
import { request } from "node:http";
import { boundedProbe } from "./bounded-probe.js";
import {
  errorText,
  hostPort,
  type ProbeOptions,
  type ProbeResult,
  type ProbeTarget,
  result,
} from "./result.js";

/** How much of the body goes into the output; the rest is never read. */
export const MAX_HTTP_BODY_BYTES = 4096;

export const HEALTH_USER_AGENT = "weft-health/1";

export function httpStatusToHealth(code: number): ProbeResult["status"] {
  if (code >= 200 && code < 400) return "passing";
  if (code === 429) return "warning";
  return "critical";
}

/** Never rejects. `timeoutMs` bounds connect, response head and the body read together. */
export function probeHttp(
  path: string,
  target: ProbeTarget,
  timeoutMs: number,
  opts: ProbeOptions = {},
): Promise<ProbeResult> {
  const label = `HTTP GET http://${hostPort(target)}${path}`;
  return boundedProbe(label, timeoutMs, opts, (p) => {
    const finish = p.finish;
    const req = request({
      host: target.host,
      port: target.port,
      method: "GET",
      path,
      // A fresh agent per request: `Connection: close`, nothing pooled between probes.
      agent: false,
      headers: { Host: hostPort(target), "User-Agent": HEALTH_USER_AGENT, Accept: "*/*" },
    });
    // No keep-alive: the socket goes with the request, unread body and all.
    p.onSettle(() => req.destroy());
    req.on("error", (e) => p.fail(errorText(e)));
    req.on("response", (res) => {
      const code = res.statusCode ?? 0;
      const status = httpStatusToHealth(code);
      const head = `${label}: ${code} ${res.statusMessage ?? ""}`.trimEnd();
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () => {
        const body = Buffer.concat(chunks).toString("utf8");
        finish(result(status, body.length > 0 ? `${head} Output: ${body}` : head));
      };
      res.on("data", (chunk: Buffer) => {
        const room = MAX_HTTP_BODY_BYTES - size;
        chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
        size += Math.min(room, chunk.length);
        if (size >= MAX_HTTP_BODY_BYTES) done();
      });
      res.on("end", done);
      // The status line arrived; a body cut short does not change the verdict.
      res.on("error", done);
      res.on("close", done);
    });
    req.end();
  });
}
