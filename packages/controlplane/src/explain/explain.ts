/**
 * `GET /v1/explain`: what the mesh would do with one request from `from` to
 * `to` — "why was my request denied / sent there?".
 *
 * Data flow: query (validated, 400s) -> the snapshot a proxy of `from` would
 * get with `to` as its upstream (build.ts, on a synthetic instance: the
 * answer does not depend on which replica asks, nor on whether its sidecar
 * declared the upstream) -> the destination's inbound authz (the snapshot of
 * a `to` instance) -> canonical path and decision through `@weft/api/authz`,
 * the code the sidecar runs -> listener, split and clusters read from the
 * snapshot, plus the critical instances the snapshot left out -> notes on
 * what does not take effect yet (routes, failover, redirect).
 *
 * Nothing here decides on its own: every verdict comes from the builder or
 * the authorizer, so an explanation cannot drift from what proxies do.
 */
import {
  type AuthzSource,
  type ClusterConfig,
  canonicalPath,
  compileAuthz,
  compileHttpMatch,
  EXPLAIN_LIMITS,
  type ExplainCluster,
  type ExplainDecision,
  type ExplainExcluded,
  type ExplainPath,
  type ExplainPermission,
  type ExplainQuery,
  type ExplainRequest,
  type ExplainResponse,
  type HttpRequestFacts,
  type InboundAuthz,
  type Instance,
  MESH_NAME,
  type Mesh,
  meshSchema,
  NAME_PATTERN,
  type ProxySnapshot,
  type Resolver,
  type SnapshotProtocol,
  type UpstreamListener,
} from "@weft/api";
import { weftError } from "@weft/core";
import type { Catalog } from "../catalog/catalog.js";
import type { ConfigService } from "../config/config.js";
import { tryBuildSnapshot } from "../snapshot/build.js";
import { snapshotInputs } from "../snapshot/inputs.js";

/** What an explanation reads: the same sources ProxyStreams builds snapshots from. */
export interface ExplainSources {
  catalog: Pick<Catalog, "serviceInstances">;
  config: Pick<ConfigService, "parsed">;
}

const QUERY_PARAMS = new Set(["from", "to", "method", "path", "header"]);
const METHOD = /^[A-Za-z]{1,16}$/;
/** RFC 9110 token characters. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;
/** The local port of the synthetic upstream listener: never bound, only named in the snapshot. */
const SYNTHETIC_PORT = 1;

function bad(param: string, detail: string): never {
  throw weftError("WEFT_ERR_BAD_QUERY", { param, detail });
}

function shown(v: string): string {
  return JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}...` : v);
}

/** Validates `from`, `to`, `method`, `path` and repeated `header=name:value`; unknown parameters are refused. */
export function parseExplainQuery(query: URLSearchParams): ExplainQuery {
  for (const k of new Set(query.keys())) {
    if (!QUERY_PARAMS.has(k)) bad(k, "unknown parameter; expected from, to, method, path, header");
  }
  const one = (k: string): string | undefined => {
    const all = query.getAll(k);
    if (all.length > 1) bad(k, "given more than once");
    return all[0];
  };
  const service = (k: string): string => {
    const v = one(k);
    if (v === undefined || v === "") bad(k, "required: a service name");
    if (!NAME_PATTERN.test(v)) bad(k, `${shown(v)} is not a service name (a lowercase DNS label)`);
    return v;
  };
  const from = service("from");
  const to = service("to");
  const method = one("method") ?? "GET";
  if (!METHOD.test(method)) bad("method", `${shown(method)} is not an HTTP method (1-16 letters)`);
  const path = one("path") ?? "/";
  if (path.length === 0 || path.length > EXPLAIN_LIMITS.maxPathLength) {
    bad("path", `must be 1-${EXPLAIN_LIMITS.maxPathLength} characters`);
  }
  const raw = query.getAll("header");
  if (raw.length > EXPLAIN_LIMITS.maxHeaders) bad("header", `at most ${EXPLAIN_LIMITS.maxHeaders} headers`);
  const headers = raw.map((h): [string, string] => {
    const colon = h.indexOf(":");
    if (colon <= 0) bad("header", `${shown(h)}: expected name:value`);
    const name = h.slice(0, colon).trim();
    const value = h.slice(colon + 1).trim();
    if (!HEADER_NAME.test(name)) bad("header", `${shown(name)} is not a header name`);
    if (value.length > EXPLAIN_LIMITS.maxHeaderValueLength) {
      bad("header", `the value of ${name} exceeds ${EXPLAIN_LIMITS.maxHeaderValueLength} characters`);
    }
    // Control characters never reach an authorizer: the proxy's HTTP parser refuses them.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: that is the point
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) bad("header", `the value of ${name} has control characters`);
    return [name, value];
  });
  return { from, to, method: method.toUpperCase(), path, headers };
}

/** Explains `q` against the current catalog and config. Throws UNAVAILABLE when no valid snapshot can be built. */
export function explain(src: ExplainSources, q: ExplainQuery): ExplainResponse {
  const { from, to } = q;
  const method = (q.method ?? "GET").toUpperCase();
  const target = q.path ?? "/";
  const headers: Record<string, string> = {};
  for (const [name, value] of q.headers ?? []) {
    const n = name.toLowerCase();
    headers[n] = headers[n] === undefined ? value : `${headers[n]},${value}`;
  }
  const request: ExplainRequest = { method, target, headers };

  const fromInstances = src.catalog.serviceInstances(from, "any");
  const source = build(src, syntheticSource(from, to, fromInstances[0]), `a proxy of "${from}"`);
  const listener = source.upstreams[0] as UpstreamListener;

  const toInstances = src.catalog.serviceInstances(to, "any");
  const destInstance =
    toInstances.find((i) => i.status === "passing") ??
    toInstances[0] ??
    syntheticInstance(to, listener.protocol, []);
  const dest = build(src, destInstance, `a proxy of "${to}"`);

  const c = canonicalPath(target);
  const path: ExplainPath = c.ok
    ? { ok: true, path: c.path, query: c.query, changed: c.path + c.query !== target }
    : { ok: false, reason: c.reason };
  const decision = decide(from, to, dest.inbound.authz, listener.protocol, request, c);

  const clusterNames = [...new Set([listener.cluster, ...(listener.splits ?? []).map((t) => t.cluster)])];
  const clusters = clusterNames.map((n) => explainCluster(src, source, n));

  return {
    from,
    to,
    request,
    path,
    decision,
    listener: {
      service: listener.service,
      protocol: listener.protocol,
      cluster: listener.cluster,
      split:
        listener.splits && listener.splits.length > 0
          ? {
              targets: listener.splits.map((t) => ({ cluster: t.cluster, weight: t.weight })),
              choice:
                listener.protocol === "tcp"
                  ? "random per connection, by weight"
                  : "random per request, by weight",
            }
          : null,
    },
    clusters,
    notes: notes(src, from, to, fromInstances, clusters),
  };
}

// ---------------------------------------------------------------- snapshots

function mesh(src: ExplainSources): Mesh {
  return (
    (src.config.parsed("Mesh", MESH_NAME) as Mesh | undefined) ??
    meshSchema.parse({ kind: "Mesh", name: MESH_NAME })
  );
}

/** Builds the way ProxyStreams does; a snapshot no proxy would receive cannot be explained. */
function build(src: ExplainSources, instance: Instance, what: string): ProxySnapshot {
  const r = tryBuildSnapshot(snapshotInputs(src, instance, mesh(src)));
  if (!r.ok) {
    throw weftError(
      "WEFT_ERR_UNAVAILABLE",
      {
        detail: `cannot explain: the snapshot ${what} would get is refused (proxies keep their last good one): ${r.error.message}`,
      },
      { cause: r.error },
    );
  }
  return r.snapshot;
}

function syntheticInstance(
  service: string,
  protocol: SnapshotProtocol,
  upstreams: { service: string; localPort: number }[],
): Instance {
  return {
    id: `explain-${service}`,
    service,
    address: "127.0.0.1",
    port: SYNTHETIC_PORT,
    ports: {},
    tags: [],
    meta: {},
    datacenter: "dc1",
    checks: [],
    status: "passing",
    registeredAt: 0,
    modifyIndex: 0,
    proxy: { protocol, upstreams },
  };
}

/** A proxy of `from` (like a registered one, if any) whose only upstream is `to`. */
function syntheticSource(from: string, to: string, like: Instance | undefined): Instance {
  const upstreams = [{ service: to, localPort: SYNTHETIC_PORT }];
  const base = syntheticInstance(from, like?.proxy?.protocol ?? "http", upstreams);
  return like ? { ...base, id: like.id, datacenter: like.datacenter } : base;
}

// ---------------------------------------------------------------- decision

function decide(
  from: string,
  to: string,
  authz: InboundAuthz,
  protocol: SnapshotProtocol,
  req: ExplainRequest,
  c: ReturnType<typeof canonicalPath>,
): ExplainDecision {
  const level = protocol === "tcp" ? "tcp" : "http";
  const common = { level, intention: authz.intention, defaultAction: authz.defaultAction } as const;
  if (level === "http" && !c.ok) {
    // The sidecar canonicalizes before it authorizes (sidecar.ts startInbound).
    return {
      ...common,
      allow: false,
      code: "bad-path",
      reason: `bad request path: ${c.reason}`,
      status: 400,
      rule: { kind: "bad-path" },
    };
  }
  const authorizer = compileAuthz(to, authz);
  const facts: HttpRequestFacts = {
    method: req.method,
    path: c.ok ? c.path : "/",
    headers: (name) => req.headers[name],
  };
  const d = level === "tcp" ? authorizer.tcp(from) : authorizer.http(from, facts);
  const out: ExplainDecision = {
    ...common,
    allow: d.allow,
    code: d.code,
    reason: d.reason,
    status: d.allow ? null : 403,
    rule: { kind: "default", action: authz.defaultAction },
  };
  // Which rule: the authorizer's lookup (first exact source, else the first "*"), retold.
  const s: AuthzSource | undefined =
    authz.sources.find((x) => x.name === from) ?? authz.sources.find((x) => x.name === "*");
  if (s === undefined) return out;
  if (s.permissions === undefined) {
    out.rule = { kind: "source-action", source: s.name, action: s.action === "allow" ? "allow" : "deny" };
    return out;
  }
  let decided = false;
  out.permissions = s.permissions.map((p, index): ExplainPermission => {
    const m = compileHttpMatch(p.http);
    const matches = level === "http" && m.test(facts);
    if (matches && !decided) {
      decided = true;
      out.rule = { kind: "permission", source: s.name, index, action: p.action, description: m.description };
    }
    return { index, action: p.action, http: p.http, description: m.description, matches };
  });
  if (!decided) out.rule = { kind: "no-permission-matched", source: s.name };
  return out;
}

// ---------------------------------------------------------------- clusters

/** The subset rule of build.ts: every tag and every meta entry of the filter. */
function inSubset(
  i: Instance,
  filter: { tags?: string[] | undefined; meta?: Record<string, string> | undefined },
) {
  for (const t of filter.tags ?? []) if (!i.tags.includes(t)) return false;
  for (const [k, v] of Object.entries(filter.meta ?? {})) if (i.meta[k] !== v) return false;
  return true;
}

function explainCluster(src: ExplainSources, s: ProxySnapshot, name: string): ExplainCluster {
  const c = s.clusters[name] as ClusterConfig;
  const resolver = src.config.parsed("Resolver", c.service) as Resolver | undefined;
  const filter = c.subset === undefined ? undefined : resolver?.subsets[c.subset];
  let subsetFilter: ExplainCluster["subsetFilter"] = null;
  if (c.subset !== undefined) {
    subsetFilter = filter
      ? {
          ...(filter.tags !== undefined ? { tags: filter.tags } : {}),
          ...(filter.meta !== undefined ? { meta: filter.meta } : {}),
        }
      : "undefined-subset";
  }
  const excluded = src.catalog
    .serviceInstances(c.service, "critical")
    .filter((i) => c.subset === undefined || (filter !== undefined && inSubset(i, filter)))
    .map(
      (i): ExplainExcluded => ({
        id: i.id,
        address: i.address,
        port: i.port,
        status: "critical",
        checks: i.checks.map((k) => ({ id: k.id, name: k.name, status: k.status, output: k.output })),
      }),
    );
  const notes: string[] = [];
  if (subsetFilter === "undefined-subset") {
    notes.push(`Resolver "${c.service}" does not define subset "${c.subset}": it selects no instance`);
  }
  if (c.endpoints.length === 0) {
    notes.push("no healthy instance: the proxy answers 503 (failover is not implemented yet)");
  }
  const retries = (c as ClusterConfig & { retries?: unknown }).retries;
  return {
    name: c.name,
    service: c.service,
    subset: c.subset ?? null,
    subsetFilter,
    protocol: c.protocol,
    lb: c.lb,
    connectTimeoutMs: c.connectTimeoutMs,
    idleTimeoutMs: c.idleTimeoutMs,
    requestTimeoutMs: c.requestTimeoutMs ?? null,
    circuitBreaker: c.circuitBreaker,
    retries: retries ?? null,
    endpoints: c.endpoints,
    excluded,
    notes,
  };
}

// ---------------------------------------------------------------- notes

function notes(
  src: ExplainSources,
  from: string,
  to: string,
  fromInstances: readonly Instance[],
  clusters: readonly ExplainCluster[],
): Record<string, string> {
  const out: Record<string, string> = {};
  const route = src.config.parsed("Route", to) !== undefined;
  out.routes = route
    ? `Route "${to}" exists, but no Route resources take effect yet: every request goes to the split or the default cluster`
    : "no Route resources take effect yet: every request goes to the split or the default cluster";
  const resolver = src.config.parsed("Resolver", to) as Resolver | undefined;
  out.failover = resolver?.failover
    ? `Resolver "${to}" lists failover targets, but failover is not implemented yet: with no healthy candidate the request gets 503`
    : "failover is not implemented yet (none configured): with no healthy candidate the request gets 503";
  if (resolver?.redirect) {
    out.redirect = `Resolver "${to}" has a redirect, which does not take effect yet: traffic stays on "${to}"`;
  }
  if (clusters.every((c) => c.retries === null)) {
    out.retries = "no retry policy configured (ServiceDefaults.retries) for these clusters";
  }
  const declaring = fromInstances.filter((i) => i.proxy?.upstreams.some((u) => u.service === to)).length;
  out.source =
    fromInstances.length === 0
      ? `no instance of "${from}" is registered; explained as a proxy of "${from}" with "${to}" as an upstream would see it`
      : declaring === 0
        ? `none of the ${fromInstances.length} registered "${from}" instances declares "${to}" as an upstream (--upstream ${to}=PORT): explained as if one did`
        : `${declaring} of ${fromInstances.length} registered "${from}" instances declare "${to}" as an upstream`;
  return out;
}
