/**
 * One outbound HTTP listener's routing, compiled once per snapshot: the
 * listener's routes (first match wins, `@weft/api/routing`, the code
 * `weft explain` runs too), else its split, else its cluster; then the
 * cluster's failover (ClusterSet.resolve). Per request it returns a
 * RouteDecision for outbound-http.ts to execute, with every random draw
 * (split weight, fault percentages, mirror share) already made here, so
 * the engine stays deterministic given a decision.
 *
 * Hot path: a listener without routes does no path work at all; with
 * routes, the path is canonicalised once (the same canonical form the
 * destination's authorizer uses) and the decision is one allocation.
 */

import { canonicalPath } from "@weft/api/authz";
import {
  compileRouteTable,
  type MatchedRoute,
  type RouteTable,
  redirectLocation,
  rewritePath,
} from "@weft/api/routing";
import type { HttpRouteConfig, RouteForward, SplitTarget, UpstreamListener } from "@weft/api/snapshot";
import type { Clock } from "@weft/core";
import { Flag } from "../http/flags.js";
import { joinHeader, type RequestHead } from "../http/headers.js";
import { RetryBudget } from "../http/retry-budget.js";
import { compileRetryPolicy, type RetryPolicy } from "../http/retry-policy.js";
import { NO_ROUTE_CONFIG } from "../http/route-actions.js";
import type {
  ForwardDecision,
  HeaderMap,
  IncomingHeaders,
  RouteDecision,
  UpstreamCluster,
} from "../http/types.js";
import type { ClusterSet, LiveCluster } from "./clusters.js";
import { pickSplit } from "./split.js";

export type Random = () => number;

/** A route's parts that outlive one request: its retry policy and the budget its requests share. */
interface CompiledForward {
  config: RouteForward;
  retryPolicy?: RetryPolicy;
  retryBudget?: RetryBudget;
}

export interface ListenerRoutes {
  /** Decides one request. Never throws. */
  decide(head: RequestHead, headers: IncomingHeaders): RouteDecision;
  /** For TCP and upgrades: the cluster a connection goes to (split drawn, failover applied). */
  defaultCluster(): LiveCluster | undefined;
}

function draw(percent: number, random: Random): boolean {
  return percent >= 100 || (percent > 0 && random() * 100 < percent);
}

function label(m: MatchedRoute): string {
  return m.route.name !== undefined ? m.route.name : `route[${m.index}]`;
}

export function compileListenerRoutes(
  listener: UpstreamListener,
  clusters: ClusterSet,
  clock: Clock,
  random: Random = Math.random,
): ListenerRoutes {
  const table: RouteTable = compileRouteTable(listener.routes);
  const forwards = new Map<HttpRouteConfig, CompiledForward>();
  for (const r of listener.routes ?? []) {
    if (r.forward === undefined) continue;
    const policy = compileRetryPolicy(r.forward.retries);
    const b = r.forward.retries?.budget;
    forwards.set(r, {
      config: r.forward,
      ...(policy !== undefined ? { retryPolicy: policy } : {}),
      ...(policy !== undefined && b !== undefined ? { retryBudget: new RetryBudget({ ...b, clock }) } : {}),
    });
  }

  /** A split target (or the plain cluster), failover applied. */
  const target = (
    cluster: string,
    splits: readonly SplitTarget[] | undefined,
  ): { live: LiveCluster | undefined; split: SplitTarget | undefined; name: string } => {
    let split: SplitTarget | undefined;
    let name = cluster;
    if (splits !== undefined && splits.length > 0) {
      const picked = pickSplit(splits, random);
      if (picked !== undefined) {
        name = picked;
        split = splits.find((s) => s.cluster === picked);
      }
    }
    return { live: clusters.resolve(name), split, name };
  };

  const defaultCluster = (): LiveCluster | undefined => target(listener.cluster, listener.splits).live;

  const forwardTo = (
    matched: MatchedRoute | undefined,
    path: string | undefined,
    query: string,
  ): RouteDecision => {
    const compiled = matched ? forwards.get(matched.route) : undefined;
    const f = compiled?.config;
    const { live, split, name } = f ? target(f.cluster, f.splits) : target(listener.cluster, listener.splits);
    if (live === undefined || live.protocol === "tcp") return NO_ROUTE_CONFIG;
    const d: ForwardDecision = { kind: "forward", cluster: live as UpstreamCluster };
    const fallbacks = clusters.fallbacks(name, live);
    if (fallbacks.length > 0) d.fallbacks = fallbacks as UpstreamCluster[];
    if (matched) d.route = label(matched);
    // Header changes in order, split target's first; arrays only when there are any (hot path).
    if (split?.requestHeaders) d.requestHeaders = [split.requestHeaders];
    if (split?.responseHeaders) d.responseHeaders = [split.responseHeaders];
    if (f !== undefined && matched !== undefined) {
      if (f.prefixRewrite !== undefined && path !== undefined) {
        d.path = rewritePath(matched.route.match, f.prefixRewrite, path) + query;
      }
      if (f.hostRewrite !== undefined) d.authority = f.hostRewrite;
      if (f.timeoutMs !== undefined) d.requestTimeoutMs = f.timeoutMs;
      if (f.idleTimeoutMs !== undefined) d.idleTimeoutMs = f.idleTimeoutMs;
      if (compiled?.retryPolicy) {
        d.retryPolicy = compiled.retryPolicy;
        if (compiled.retryBudget) d.retryBudget = compiled.retryBudget;
      }
      if (f.fault?.delay && draw(f.fault.delay.percent, random)) d.delayMs = f.fault.delay.durationMs;
      if (f.fault?.abort && draw(f.fault.abort.percent, random)) {
        const a = f.fault.abort;
        d.abort =
          a.grpcStatus !== undefined ? { grpcStatus: a.grpcStatus } : { httpStatus: a.httpStatus ?? 503 };
      }
      if (f.mirror && draw(f.mirror.percent, random)) {
        // The mirror cluster itself, never its failover: shadow traffic must not land on real clusters.
        const m = clusters.get(f.mirror.cluster);
        if (m !== undefined && m.protocol !== "tcp") d.mirror = m as UpstreamCluster;
      }
      if (f.requestHeaders) d.requestHeaders = [...(d.requestHeaders ?? []), f.requestHeaders];
      if (f.responseHeaders) d.responseHeaders = [...(d.responseHeaders ?? []), f.responseHeaders];
    }
    return d;
  };

  const reply = (matched: MatchedRoute, head: RequestHead, path: string, query: string): RouteDecision => {
    const r = matched.route;
    if (r.redirect !== undefined) {
      const location = redirectLocation(r.redirect, r.match, {
        scheme: "http",
        authority: head.authority ?? listener.service,
        path,
        query,
      });
      return {
        kind: "reply",
        status: r.redirect.statusCode,
        headers: { location, "content-length": "0" },
        body: "",
        route: label(matched),
      };
    }
    const dr = r.directResponse;
    const body = dr?.body ?? "";
    const headers: HeaderMap = { ...(dr?.headers ?? {}) };
    if (body !== "" && headers["content-type"] === undefined)
      headers["content-type"] = "text/plain; charset=utf-8";
    headers["content-length"] = String(Buffer.byteLength(body));
    return { kind: "reply", status: dr?.status ?? 200, headers, body, route: label(matched) };
  };

  return {
    defaultCluster,
    decide(head, headers) {
      if (table.size === 0) return forwardTo(undefined, undefined, "");
      const c = canonicalPath(head.path);
      if (!c.ok) {
        return {
          kind: "refuse",
          status: 400,
          detail: `bad request target: ${c.reason}`,
          flags: Flag.DownstreamProtocolError,
        };
      }
      const matched = table.match({
        method: head.method,
        path: c.path,
        query: c.query,
        headers: (name) => joinHeader(headers[name]),
      });
      if (matched === undefined) return forwardTo(undefined, undefined, "");
      if (matched.route.forward === undefined) return reply(matched, head, c.path, c.query);
      return forwardTo(matched, c.path, c.query);
    },
  };
}
