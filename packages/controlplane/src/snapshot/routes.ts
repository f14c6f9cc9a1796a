/**
 * A Route resource as a listener's `routes` (api/src/snapshot-routes.ts):
 * matches with methods upper-cased and header names lower-cased, durations
 * in milliseconds, every destination, split and mirror resolved to a
 * cluster of the snapshot. Member order follows the resource, so golden
 * files read like the YAML.
 */
import type {
  HeaderOps,
  HeaderOpsConfig,
  HttpRoute,
  HttpRouteConfig,
  RouteDestination,
  RouteForward,
  RouteMatch,
  SnapshotQueryMatch,
  Split,
  SplitTarget,
} from "@weft/api";
import type { ClusterRefs } from "./cluster-refs.js";
import type { RecordingReader } from "./reader.js";
import { retriesConfig, toHttpMatch } from "./shapes.js";

export function headerOpsConfig(ops: HeaderOps | undefined): HeaderOpsConfig | undefined {
  if (ops === undefined) return undefined;
  const lower = (m: Record<string, string>): Record<string, string> =>
    Object.fromEntries(Object.entries(m).map(([k, v]) => [k.toLowerCase(), v]));
  const out: HeaderOpsConfig = {};
  if (ops.add !== undefined) out.add = lower(ops.add as Record<string, string>);
  if (ops.set !== undefined) out.set = lower(ops.set as Record<string, string>);
  if (ops.remove !== undefined) out.remove = ops.remove.map((h) => h.toLowerCase());
  return out;
}

/** A Split's entries as weighted cluster targets, with their header changes. */
export function splitTargets(split: Split, refs: ClusterRefs): SplitTarget[] {
  return split.splits.map((e) => {
    const t: SplitTarget = { cluster: refs.add(e.service, e.subset), weight: e.weight };
    const req = headerOpsConfig(e.requestHeaders);
    const res = headerOpsConfig(e.responseHeaders);
    if (req !== undefined) t.requestHeaders = req;
    if (res !== undefined) t.responseHeaders = res;
    return t;
  });
}

function routeMatch(m: HttpRoute["match"]): RouteMatch {
  const out: RouteMatch = toHttpMatch(m);
  if (m.query !== undefined) {
    out.query = m.query.map((q): SnapshotQueryMatch => {
      if (q.exact !== undefined) return { name: q.name, exact: q.exact };
      if (q.regex !== undefined) return { name: q.name, regex: q.regex };
      return { name: q.name, present: true };
    });
  }
  return out;
}

function forward(
  d: RouteDestination,
  routeService: string,
  reader: RecordingReader,
  refs: ClusterRefs,
): RouteForward {
  const service = d.service ?? routeService;
  const f: RouteForward = { cluster: refs.add(service, d.subset) };
  // No subset named: the destination's own Split applies (Consul: router -> splitter -> resolver).
  const split = d.subset === undefined ? reader.split(service) : undefined;
  if (split) f.splits = splitTargets(split, refs);
  if (d.rewrite?.prefix !== undefined) f.prefixRewrite = d.rewrite.prefix;
  if (d.rewrite?.host !== undefined) f.hostRewrite = d.rewrite.host;
  if (d.timeout !== undefined && d.timeout > 0) f.timeoutMs = d.timeout;
  if (d.idleTimeout !== undefined && d.idleTimeout > 0) f.idleTimeoutMs = d.idleTimeout;
  if (d.retries !== undefined) f.retries = retriesConfig(d.retries);
  if (d.fault !== undefined) {
    f.fault = {};
    if (d.fault.delay) f.fault.delay = { percent: d.fault.delay.percent, durationMs: d.fault.delay.duration };
    if (d.fault.abort) {
      const a = d.fault.abort;
      f.fault.abort = {
        percent: a.percent,
        ...(a.httpStatus !== undefined ? { httpStatus: a.httpStatus } : {}),
        ...(a.grpcStatus !== undefined ? { grpcStatus: a.grpcStatus } : {}),
      };
    }
  }
  if (d.mirror !== undefined) {
    f.mirror = { cluster: refs.add(d.mirror.service, d.mirror.subset), percent: d.mirror.percent };
  }
  const req = headerOpsConfig(d.requestHeaders);
  const res = headerOpsConfig(d.responseHeaders);
  if (req !== undefined) f.requestHeaders = req;
  if (res !== undefined) f.responseHeaders = res;
  return f;
}

/** The listener's routes for the Route of `service`. */
export function routesConfig(
  routes: readonly HttpRoute[],
  service: string,
  reader: RecordingReader,
  refs: ClusterRefs,
): HttpRouteConfig[] {
  return routes.map((r): HttpRouteConfig => {
    const out: HttpRouteConfig = {
      ...(r.name !== undefined ? { name: r.name } : {}),
      match: routeMatch(r.match),
    };
    if (r.redirect !== undefined) {
      const x = r.redirect;
      out.redirect = {
        ...(x.scheme !== undefined ? { scheme: x.scheme } : {}),
        ...(x.host !== undefined ? { host: x.host } : {}),
        ...(x.port !== undefined ? { port: x.port } : {}),
        ...(x.path !== undefined ? { path: x.path } : {}),
        ...(x.prefixRewrite !== undefined ? { prefixRewrite: x.prefixRewrite } : {}),
        statusCode: x.statusCode,
      };
    } else if (r.directResponse !== undefined) {
      const x = r.directResponse;
      out.directResponse = {
        status: x.status,
        ...(x.body !== undefined ? { body: x.body } : {}),
        ...(x.headers !== undefined ? { headers: headerOpsConfig({ set: x.headers })?.set ?? {} } : {}),
      };
    } else {
      out.forward = forward(r.destination ?? {}, service, reader, refs);
    }
    return out;
  });
}
