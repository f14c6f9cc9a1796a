/**
 * The parts of a route decision that are not forwarding: direct responses
 * and redirects, injected aborts, and the route's request and response
 * header changes. Pure helpers over a Downstream; outbound-http.ts calls them.
 */

import { applyHeaderOps } from "@weft/api/routing";
import type { HeaderOpsConfig } from "@weft/api/snapshot";
import { FLAGS_HEADER, Flag, FlagSet } from "./flags.js";
import type { RequestHead } from "./headers.js";
import { encodeGrpcMessage } from "./local-reply.js";
import type { Downstream, ForwardDecision, HeaderMap, RouteDecision } from "./types.js";

/** A listener without configuration yet (or whose cluster is gone): 503, flag NR. */
export const NO_ROUTE_CONFIG: RouteDecision = Object.freeze({
  kind: "refuse",
  status: 503,
  detail: "no route: this listener has no configuration yet",
  flags: Flag.NoRoute,
});

export interface ActionResult {
  status: number;
  flags: FlagSet;
}

/** A response made whole by the proxy (redirect, direct response). */
export function directReply(
  down: Downstream,
  status: number,
  headers: HeaderMap,
  body: string,
): ActionResult {
  const flags = new FlagSet();
  if (body === "") {
    down.respond(status, headers, true);
  } else if (down.respond(status, headers, false)) {
    down.sink.write(body);
    down.end(undefined);
  }
  return { status, flags };
}

const GRPC_ABORT_HTTP = 200;

/** An injected abort: the configured HTTP status, or a trailers-only gRPC status. Flag FI. */
export function faultAbort(
  down: Downstream,
  abort: NonNullable<ForwardDecision["abort"]>,
  flags: FlagSet,
): ActionResult {
  flags.add(Flag.FaultInjected);
  if (abort.grpcStatus !== undefined && down.grpc) {
    down.respond(
      GRPC_ABORT_HTTP,
      {
        "content-type": "application/grpc",
        "grpc-status": String(abort.grpcStatus),
        "grpc-message": encodeGrpcMessage("fault filter abort"),
        [FLAGS_HEADER]: Flag.FaultInjected,
      },
      true,
    );
    return { status: GRPC_ABORT_HTTP, flags };
  }
  // A gRPC code for a plain HTTP request: Envoy answers 503 as the closest meaning (unavailable).
  const status = abort.httpStatus ?? 503;
  down.localReply(status, "fault filter abort", Flag.FaultInjected);
  return { status, flags };
}

/** The head forwarded: path and authority rewritten, request header changes applied (on a copy). */
export function routedHead(head: RequestHead, d: ForwardDecision): RequestHead {
  if (d.path === undefined && d.authority === undefined && d.requestHeaders === undefined) return head;
  let headers = head.headers;
  if (d.requestHeaders !== undefined) {
    headers = { ...head.headers };
    for (const ops of d.requestHeaders) applyHeaderOps(headers, ops);
  }
  return {
    method: head.method,
    path: d.path ?? head.path,
    authority: d.authority ?? head.authority,
    headers,
  };
}

/**
 * `down`, with the response header changes applied to whatever head goes
 * out through it (the upstream's response, or a local reply's extra fields
 * do not pass here: a proxy's own refusal keeps its own head).
 */
export function withResponseHeaderOps(
  down: Downstream,
  ops: readonly HeaderOpsConfig[] | undefined,
): Downstream {
  if (ops === undefined || ops.length === 0) return down;
  // Delegates every call (the adapters are classes with their own state; a prototype trick would split it).
  return {
    method: down.method,
    grpc: down.grpc,
    http1: down.http1,
    body: down.body,
    sink: down.sink,
    get headersSent() {
      return down.headersSent;
    },
    trailers: () => down.trailers(),
    bodyComplete: () => down.bodyComplete(),
    respond(status, headers, endStream) {
      const copy: HeaderMap = { ...headers };
      for (const o of ops) applyHeaderOps(copy, o);
      return down.respond(status, copy, endStream);
    },
    end: (t) => down.end(t),
    reset: () => down.reset(),
    refuse: () => down.refuse(),
    localReply: (status, body, flags, extra) => down.localReply(status, body, flags, extra),
    onGone: (fn) => down.onGone(fn),
  };
}
