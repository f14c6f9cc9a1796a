/**
 * Forwards leader-only API requests from a follower replica to the leader.
 *
 * Data flow: request on a follower (POST /v1/ca/sign, POST /v1/ca/rotate)
 * -> not leader -> the leader's API URL (published with the leader key, see
 * LeaderElection.advertise) -> the same request, headers (the caller's
 * token: the leader authenticates and authorizes it again, the ACL lives in
 * the shared store) and body, relayed -> the leader's answer, relayed back.
 *
 * So any replica serves a proxy's certificate request, while only the
 * leader ever uses the CA key. A request already forwarded once is never
 * forwarded again (leadership moved meanwhile): 503, and the proxy's
 * renewal backoff retries. No leader known, or the leader unreachable: 503.
 */
import { request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { describeError, weftError } from "@weft/core";
import type { Logger } from "pino";
import { sendError } from "../http/respond.js";

/** Requests only the leader may serve (they use the CA signing key). */
export const LEADER_ONLY: ReadonlySet<string> = new Set(["POST /v1/ca/sign", "POST /v1/ca/rotate"]);

/** Marks a forwarded request (the value: the forwarding replica's URL). */
export const FORWARDED_HEADER = "x-weft-forwarded-by";

const FORWARD_TIMEOUT_MS = 10_000;

/** Hop-by-hop headers (RFC 9110 7.6.1) and those the relay sets itself. */
const DROP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "host",
]);

export interface LeaderForwardOptions {
  isLeader(): boolean;
  /** The leader's API URL as published (undefined: none yet). */
  leaderUrl(): Promise<string | undefined>;
  /** This replica's own URL (never forwarded to). */
  selfUrl: string;
  logger?: Logger;
}

/**
 * Returns a request hook: true when it took the request (forwarded or
 * answered 503), false when this replica serves it as usual.
 */
export function createLeaderForward(
  opts: LeaderForwardOptions,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const unavailable = (res: ServerResponse, detail: string) =>
    sendError(res, weftError("WEFT_ERR_UNAVAILABLE", { detail }), undefined);
  return (req, res) => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    if (!LEADER_ONLY.has(`${req.method} ${path}`) || opts.isLeader()) return false;
    if (req.headers[FORWARDED_HEADER] !== undefined) {
      unavailable(res, "leadership moved while the request was forwarded; retry");
      return true;
    }
    opts
      .leaderUrl()
      .then((leader) => {
        if (leader === undefined || leader === opts.selfUrl) {
          unavailable(res, "no control-plane leader at the moment (election in progress); retry");
          return;
        }
        relay(req, res, new URL(url, leader), opts, unavailable);
      })
      .catch((err: unknown) => unavailable(res, `cannot find the leader: ${describeError(err)}`));
    return true;
  };
}

function relay(
  req: IncomingMessage,
  res: ServerResponse,
  target: URL,
  opts: LeaderForwardOptions,
  unavailable: (res: ServerResponse, detail: string) => void,
): void {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !DROP.has(k)) headers[k] = v;
  headers[FORWARDED_HEADER] = opts.selfUrl;
  const up = httpRequest(target, { method: req.method, headers, timeout: FORWARD_TIMEOUT_MS }, (answer) => {
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(answer.headers)) if (v !== undefined && !DROP.has(k)) out[k] = v;
    res.writeHead(answer.statusCode ?? 502, out);
    answer.pipe(res);
    answer.on("error", () => res.destroy());
  });
  up.on("timeout", () => up.destroy(new Error("timed out")));
  up.on("error", (err) => {
    opts.logger?.warn({ err, leader: target.origin }, "forwarding a leader-only request failed");
    if (!res.headersSent)
      unavailable(res, `the leader (${target.origin}) did not answer: ${describeError(err)}`);
    else res.destroy();
  });
  req.pipe(up);
  res.on("close", () => {
    if (!res.writableFinished) up.destroy();
  });
}
