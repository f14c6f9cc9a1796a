/**
 * Request mirroring (Envoy's request_mirror_policies, Istio's mirror): a
 * copy of the request goes to another cluster, fire and forget. Its
 * response is read and dropped, its failures are only counted; nothing of
 * it can reach the client or delay the real exchange.
 *
 * Bounds, so shadow traffic cannot hurt the real traffic:
 * - a copy takes a "requests" lease of the mirror cluster's circuit breaker
 *   (none left: the copy is skipped);
 * - a copy with a body is sent only when the whole body was kept
 *   (MAX_REPLAY_BODY_BYTES, the retry buffer); a bigger one is skipped;
 * - each copy has a deadline (the mirror cluster's request timeout, at most
 *   MIRROR_TIMEOUT_MS), after which its stream is reset.
 * The authority gets Envoy's "-shadow" suffix, so the mirror's app can tell
 * copies from real requests.
 */
import type { OutgoingHttpHeaders } from "node:http";
import { describeError, tracer } from "@weft/core";
import { openH2Call } from "./h2-call.js";
import type { Http2PeerPool } from "./h2-peer-pool.js";
import type { RequestHead } from "./headers.js";
import { toH2RequestHeaders } from "./headers.js";
import type { HeaderMap, UpstreamCluster } from "./types.js";

const trace = tracer("http");

export const MIRROR_TIMEOUT_MS = 30_000;

export type MirrorResult = "sent" | "skipped" | "failed";

function shadowAuthority(authority: string): string {
  const m = /^(\[[^\]]*\]|[^:]*)(:\d+)?$/.exec(authority);
  return m ? `${m[1]}-shadow${m[2] ?? ""}` : `${authority}-shadow`;
}

/** Sends one copy; resolves when it is over (the caller does not wait). Never rejects. */
export async function sendMirror(
  pool: Http2PeerPool,
  cluster: UpstreamCluster,
  head: RequestHead,
  body: { chunks: readonly Buffer[]; trailers: HeaderMap | undefined } | undefined,
): Promise<MirrorResult> {
  const lease = cluster.breaker?.acquire("requests");
  if (cluster.breaker !== undefined && lease === undefined) return "skipped";
  const picked = cluster.pick({ exclude: new Set() });
  if (picked === undefined) {
    lease?.();
    return "skipped";
  }
  const ep = picked.endpoint;
  try {
    const session =
      pool.pooled(ep, cluster.service) ?? (await pool.session(ep, cluster.service, cluster.connectTimeoutMs));
    const headers: OutgoingHttpHeaders = toH2RequestHeaders(head, cluster.service);
    headers[":authority"] = shadowAuthority(String(headers[":authority"] ?? cluster.service));
    const timeoutMs = Math.min(cluster.requestTimeoutMs ?? MIRROR_TIMEOUT_MS, MIRROR_TIMEOUT_MS);
    return await new Promise<MirrorResult>((resolve) => {
      let over = false;
      const finish = (r: MirrorResult): void => {
        if (over) return;
        over = true;
        clearTimeout(timer);
        resolve(r);
      };
      const call = openH2Call(
        session,
        headers,
        body === undefined,
        {
          response(_head, responseBody) {
            responseBody.on("error", () => {});
            responseBody.resume();
          },
          complete() {
            finish("sent");
          },
          fail(kind, detail) {
            trace("mirror failed", { cluster: cluster.service, kind, detail });
            finish("failed");
          },
        },
        { stripInternalResponse: true },
      );
      const timer = setTimeout(() => {
        call.cancel();
        finish("failed");
      }, timeoutMs);
      if (body !== undefined && call.requestSink !== undefined) {
        for (const c of body.chunks) call.requestSink.write(c);
        call.endRequest(body.trailers);
      }
    });
  } catch (e) {
    // A mirror that cannot connect is the mirror's problem: a trace, not a warning per request.
    trace("mirror not sent", { cluster: cluster.service, endpoint: ep.id, error: describeError(e) });
    return "failed";
  } finally {
    picked.done();
    lease?.();
  }
}
