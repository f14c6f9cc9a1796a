/**
 * An upstream listener's routes -> one RouteConfiguration (one virtual host
 * for every authority: gRPC asks for `xds:///SERVICE` and matches `*`).
 * Declared routes first (first match wins, as in the sidecar), then a
 * catch-all to the listener's cluster or split. Part of the pure
 * translation (translate.ts).
 */
import type {
  ClusterConfig,
  FaultConfig,
  HashPolicy,
  HeaderOpsConfig,
  HttpRouteConfig,
  RetriesConfig,
  RouteForward,
  RouteMatch,
  SnapshotHeaderMatch,
  SplitTarget,
  UpstreamListener,
} from "@weft/api";
import {
  duration,
  FAULT_FILTER_NAME,
  FAULT_TYPE,
  fractionalPercent,
  ROUTE_TYPE,
  type XdsResource,
} from "./resources.js";

type Obj = Record<string, unknown>;
type Clusters = Readonly<Record<string, ClusterConfig>>;

export function routeConfiguration(u: UpstreamListener, clusters: Clusters): XdsResource {
  const routes: Obj[] = (u.routes ?? []).map((r, i) => route(r, i, clusters));
  const fallback: RouteForward = { cluster: u.cluster };
  if (u.splits) fallback.splits = u.splits;
  routes.push({ name: "default", match: { prefix: "" }, route: routeAction(fallback, clusters) });
  return {
    "@type": ROUTE_TYPE,
    name: u.service,
    virtual_hosts: [{ name: u.service, domains: ["*"], routes }],
  };
}

function route(r: HttpRouteConfig, index: number, clusters: Clusters): Obj {
  const out: Obj = { name: r.name ?? `route-${index}`, match: match(r.match) };
  if (r.forward) {
    out.route = routeAction(r.forward, clusters);
    if (r.forward.fault) out.typed_per_filter_config = { [FAULT_FILTER_NAME]: fault(r.forward.fault) };
    Object.assign(out, headerOps(r.forward.requestHeaders, "request"));
    Object.assign(out, headerOps(r.forward.responseHeaders, "response"));
  } else if (r.redirect) {
    const d = r.redirect;
    out.redirect = {
      ...(d.scheme !== undefined ? { scheme_redirect: d.scheme } : {}),
      ...(d.host !== undefined ? { host_redirect: d.host } : {}),
      ...(d.port !== undefined ? { port_redirect: d.port } : {}),
      ...(d.path !== undefined ? { path_redirect: d.path } : {}),
      ...(d.prefixRewrite !== undefined ? { prefix_rewrite: d.prefixRewrite } : {}),
      response_code: REDIRECT_CODES[d.statusCode] ?? "MOVED_PERMANENTLY",
    };
  } else if (r.directResponse) {
    const d = r.directResponse;
    out.direct_response = {
      status: d.status,
      ...(d.body !== undefined ? { body: { inline_string: d.body } } : {}),
    };
    if (d.headers) Object.assign(out, headerOps({ set: d.headers }, "response"));
  }
  return out;
}

const REDIRECT_CODES: Record<number, string> = {
  301: "MOVED_PERMANENTLY",
  302: "FOUND",
  303: "SEE_OTHER",
  307: "TEMPORARY_REDIRECT",
  308: "PERMANENT_REDIRECT",
};

function stringMatch(h: {
  exact?: string;
  prefix?: string;
  suffix?: string;
  regex?: string;
}): Obj | undefined {
  if (h.exact !== undefined) return { exact: h.exact };
  if (h.prefix !== undefined) return { prefix: h.prefix };
  if (h.suffix !== undefined) return { suffix: h.suffix };
  if (h.regex !== undefined) return { safe_regex: { regex: h.regex } };
  return undefined;
}

function headerMatcher(h: SnapshotHeaderMatch): Obj {
  const sm = stringMatch(h);
  return {
    name: h.name,
    ...(sm ? { string_match: sm } : { present_match: true }),
    ...(h.invert ? { invert_match: true } : {}),
  };
}

function match(m: RouteMatch): Obj {
  const out: Obj =
    m.pathExact !== undefined
      ? { path: m.pathExact }
      : m.pathRegex !== undefined
        ? { safe_regex: { regex: m.pathRegex } }
        : { prefix: m.pathPrefix ?? "" };
  const headers = (m.headers ?? []).map(headerMatcher);
  if (m.methods && m.methods.length > 0) {
    const regex = m.methods.map((x) => x.replace(/[^A-Z]/g, "")).join("|");
    headers.push({
      name: ":method",
      string_match: m.methods.length === 1 ? { exact: m.methods[0] } : { safe_regex: { regex } },
    });
  }
  if (headers.length > 0) out.headers = headers;
  if (m.query && m.query.length > 0) {
    out.query_parameters = m.query.map((q) => {
      const sm = stringMatch(q);
      return { name: q.name, ...(sm ? { string_match: sm } : { present_match: true }) };
    });
  }
  return out;
}

/** Split percents (fractions allowed) as integer weights out of 10,000. */
function weight(percent: number): number {
  return Math.round(percent * 100);
}

function weightedCluster(t: SplitTarget): Obj {
  return {
    name: t.cluster,
    weight: { value: weight(t.weight) },
    ...headerOps(t.requestHeaders, "request"),
    ...headerOps(t.responseHeaders, "response"),
  };
}

function hashPolicy(h: HashPolicy): Obj {
  if (h.header !== undefined) return { header: { header_name: h.header } };
  if (h.cookie !== undefined) return { cookie: { name: h.cookie } };
  return { connection_properties: { source_ip: true } };
}

function routeAction(f: RouteForward, clusters: Clusters): Obj {
  const out: Obj = {};
  if (f.splits && f.splits.length > 0) out.weighted_clusters = { clusters: f.splits.map(weightedCluster) };
  else out.cluster = f.cluster;
  const c = clusters[f.cluster];
  if (f.prefixRewrite !== undefined) out.prefix_rewrite = f.prefixRewrite;
  if (f.hostRewrite !== undefined) out.host_rewrite_literal = f.hostRewrite;
  const timeoutMs = f.timeoutMs ?? c?.requestTimeoutMs;
  if (timeoutMs !== undefined) {
    out.timeout = duration(timeoutMs);
    // What gRPC reads as the call's deadline cap.
    out.max_stream_duration = { max_stream_duration: duration(timeoutMs) };
  }
  if (f.idleTimeoutMs !== undefined) out.idle_timeout = duration(f.idleTimeoutMs);
  const retries = f.retries ?? c?.retries;
  const rp = retries ? retryPolicy(retries) : undefined;
  if (rp) out.retry_policy = rp;
  if (f.mirror) {
    out.request_mirror_policies = [
      { cluster: f.mirror.cluster, runtime_fraction: { default_value: fractionalPercent(f.mirror.percent) } },
    ];
  }
  const targets = f.splits && f.splits.length > 0 ? f.splits.map((s) => s.cluster) : [f.cluster];
  const hashOn = targets.map((t) => clusters[t]?.lb).find((lb) => lb?.policy === "ring_hash")?.hashOn;
  if (hashOn && hashOn.length > 0) out.hash_policy = hashOn.map(hashPolicy);
  return out;
}

/** No policy for zero retries: gRPC refuses `num_retries: 0` (Envoy's default would be 1). */
function retryPolicy(r: RetriesConfig): Obj | undefined {
  if (r.numRetries < 1) return undefined;
  const out: Obj = { retry_on: r.retryOn.join(","), num_retries: { value: r.numRetries } };
  if (r.retryOnStatusCodes && r.retryOnStatusCodes.length > 0)
    out.retriable_status_codes = r.retryOnStatusCodes;
  if (r.perTryTimeoutMs !== undefined) out.per_try_timeout = duration(r.perTryTimeoutMs);
  // gRPC refuses a zero base interval: no back-off block then (both clients use their defaults).
  if (r.backoff.baseIntervalMs > 0) {
    out.retry_back_off = {
      base_interval: duration(r.backoff.baseIntervalMs),
      max_interval: duration(r.backoff.maxIntervalMs),
    };
  }
  return out;
}

function fault(f: FaultConfig): XdsResource {
  const out: XdsResource = { "@type": FAULT_TYPE };
  if (f.delay) {
    out.delay = { fixed_delay: duration(f.delay.durationMs), percentage: fractionalPercent(f.delay.percent) };
  }
  if (f.abort) {
    out.abort = {
      ...(f.abort.grpcStatus !== undefined
        ? { grpc_status: f.abort.grpcStatus }
        : { http_status: f.abort.httpStatus }),
      percentage: fractionalPercent(f.abort.percent),
    };
  }
  return out;
}

function headerOps(ops: HeaderOpsConfig | undefined, dir: "request" | "response"): Obj {
  if (!ops) return {};
  const add = [
    ...Object.entries(ops.set ?? {}).map(([key, value]) => ({
      header: { key, value },
      append_action: "OVERWRITE_IF_EXISTS_OR_ADD",
    })),
    ...Object.entries(ops.add ?? {}).map(([key, value]) => ({
      header: { key, value },
      append_action: "APPEND_IF_EXISTS_OR_ADD",
    })),
  ];
  const out: Obj = {};
  if (add.length > 0) out[`${dir}_headers_to_add`] = add;
  if (ops.remove && ops.remove.length > 0) out[`${dir}_headers_to_remove`] = ops.remove;
  return out;
}
