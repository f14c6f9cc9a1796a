/**
 * `GET /v1/explain`: what the mesh would do with one request from `from` to
 * `to` — "why was my request denied / sent there?".
 *
 * Data flow: query (validated, 400s) -> the snapshot a proxy of `from` would
 * get with `to` as its upstream (build.ts, on a synthetic instance: the
 * answer does not depend on which replica asks, nor on whether its sidecar
 * declared the upstream) -> canonical path -> the destination's routes,
 * tried through `@weft/api/routing` as the calling sidecar does (route.ts)
 * -> the clusters the request can reach, their failover clusters and which
 * one serves now (clusters.ts) -> the decision of the service that receives
 * the request (the snapshot of one of its instances, `@weft/api/authz`, the
 * code the sidecar runs) -> notes.
 *
 * Nothing here decides on its own: every verdict comes from the builder, the
 * route table or the authorizer, so an explanation cannot drift from what
 * proxies do. Resolver redirects are already applied by the builder
 * (snapshot/cluster-refs.ts): the listener's cluster is the redirect's.
 */
import {
  type AuthzSource,
  canonicalPath,
  compileAuthz,
  compileHttpMatch,
  EXPLAIN_LIMITS,
  type ExplainCluster,
  type ExplainDecision,
  type ExplainPath,
  type ExplainPermission,
  type ExplainQuery,
  type ExplainRequest,
  type ExplainResponse,
  type ExplainRoute,
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
import type { XdsServer } from "../xds/ads-server.js";
import { clustersToExplain, explainCluster, servedBy } from "./clusters.js";
import { explainProxyless, proxylessNote } from "./proxyless.js";
import { explainRoute } from "./route.js";

/** What an explanation reads: the same sources ProxyStreams builds snapshots from. */
export interface ExplainSources {
  catalog: Pick<Catalog, "serviceInstances">;
  config: Pick<ConfigService, "parsed">;
  /** The xDS listener, when the server runs one: the proxyless instances' state (proxyless.ts). */
  xds?: Pick<XdsServer, "streams" | "nacks"> | undefined;
}

export interface ExplainOptions {
  /** Whether the caller may see a service's xDS state (NACK messages); default: yes. */
  canRead?(service: string): boolean;
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
export function explain(src: ExplainSources, q: ExplainQuery, o: ExplainOptions = {}): ExplainResponse {
  const { from, to } = q;
  const method = (q.method ?? "GET").toUpperCase();
  const target = q.path ?? "/";
  const headers: Record<string, string> = {};
  for (const [name, value] of q.headers ?? []) {
    const n = name.toLowerCase();
    // As the proxy reads a repeated header (dataplane joinHeader).
    headers[n] = headers[n] === undefined ? value : `${headers[n]}, ${value}`;
  }
  const request: ExplainRequest = { method, target, headers };

  const fromInstances = src.catalog.serviceInstances(from, "any");
  const source = build(src, syntheticSource(from, to, fromInstances[0]), `a proxy of "${from}"`);
  const listener = source.upstreams[0] as UpstreamListener;

  const c = canonicalPath(target);
  const path: ExplainPath = c.ok
    ? { ok: true, path: c.path, query: c.query, changed: c.path + c.query !== target }
    : { ok: false, reason: c.reason };

  const routed = explainRoute(listener, request, c);
  const clusters = clustersToExplain(source, routed.target).map((n) => explainCluster(src, source, n));

  // The request is authorized by the sidecars that receive it: the service of
  // the cluster serving its (first) target, which a redirect, route or
  // failover may have made another service than `to`.
  const t = routed.target ?? { cluster: listener.cluster, splits: undefined };
  const taking = t.splits !== undefined && t.splits.length > 0 ? t.splits.map((x) => x.cluster) : [t.cluster];
  const services = [...new Set(taking.map((n) => source.clusters[servedBy(source, n)]?.service ?? to))];
  const destination = services[0] ?? to;
  const destInstances = src.catalog.serviceInstances(destination, "any");
  const destInstance =
    destInstances.find((i) => i.status === "passing") ??
    destInstances[0] ??
    syntheticInstance(destination, listener.protocol, []);
  const dest = build(src, destInstance, `a proxy of "${destination}"`);
  const decision = decide(from, destination, dest.inbound.authz, listener.protocol, request, c);
  const proxyless = explainProxyless(
    src,
    [
      { service: from, role: "source" },
      { service: destination, role: "destination" },
    ],
    o.canRead ?? (() => true),
  );
  const notesOut = notes(src, {
    from,
    to,
    destination,
    services,
    fromInstances,
    listener,
    source,
    route: routed.route,
    clusters,
  });
  const pn = proxylessNote(proxyless);
  if (pn !== undefined) notesOut.proxyless = pn;

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
    route: routed.route,
    destination,
    clusters,
    notes: notesOut,
    proxyless,
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

/**
 * A proxy of `from` (like a registered one, if any) whose only upstream is
 * `to`. Its datacenter and locality are the registered one's: they choose
 * the clusters (another datacenter's instances, a locality failover's
 * primary keeping the proxy's own zone).
 */
function syntheticSource(from: string, to: string, like: Instance | undefined): Instance {
  const upstreams = [{ service: to, localPort: SYNTHETIC_PORT }];
  const base = syntheticInstance(from, like?.proxy?.protocol ?? "http", upstreams);
  if (like === undefined) return base;
  return {
    ...base,
    id: like.id,
    datacenter: like.datacenter,
    ...(like.locality !== undefined ? { locality: like.locality } : {}),
  };
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

// ---------------------------------------------------------------- notes

interface NotesInput {
  from: string;
  to: string;
  destination: string;
  /** The services of the clusters serving the request's targets now (the destination first). */
  services: readonly string[];
  fromInstances: readonly Instance[];
  listener: UpstreamListener;
  source: ProxySnapshot;
  route: ExplainRoute | null | undefined;
  clusters: readonly ExplainCluster[];
}

function routeNote(src: ExplainSources, n: NotesInput): string {
  const r = n.route;
  if (r === null || r === undefined) {
    if (n.listener.protocol === "tcp" && src.config.parsed("Route", n.to) !== undefined) {
      return `Route "${n.to}" does not apply: the listener is TCP (routes are HTTP); every connection goes to the split or the default cluster`;
    }
    return `no Route "${n.to}": every request goes to the split or the default cluster`;
  }
  if (r.tried.length === 0) {
    return "the path is refused by the calling sidecar (400) before any route is tried";
  }
  if (r.taken === null) {
    return `none of the ${r.count} routes matched: the split or the default cluster takes the request`;
  }
  const a = r.taken.action;
  const what =
    a.kind === "forward"
      ? `forwards to ${a.splits ? a.splits.map((t) => `${t.cluster} ${t.weight}%`).join(", ") : a.cluster}`
      : a.kind === "redirect"
        ? `the calling sidecar answers ${a.status} with Location ${a.location}: the request does not reach "${n.to}"`
        : `the calling sidecar answers ${a.status} itself: the request does not reach "${n.to}"`;
  return `${r.taken.description} matched (first match wins): ${what}`;
}

function failoverNote(src: ExplainSources, n: NotesInput): string {
  const active = n.clusters.filter((c) => c.servedBy !== undefined && c.servedBy !== c.name);
  if (active.length > 0) {
    return active
      .map((c) => `cluster ${c.name} has no healthy instance: its traffic goes to ${c.servedBy} (failover)`)
      .join("; ");
  }
  const configured = n.clusters.filter((c) => (c.failover ?? []).length > 0);
  if (configured.length === 0) {
    const resolvers = [...new Set(n.clusters.map((c) => c.service))].filter(
      (s) => (src.config.parsed("Resolver", s) as Resolver | undefined)?.failover !== undefined,
    );
    return resolvers.length === 0
      ? "no failover configured (Resolver failover): a cluster with no healthy instance gets 503"
      : `these clusters have no failover clusters (Resolver ${resolvers.map((s) => `"${s}"`).join(", ")} failover applies to other clusters; a failover target does not fail over further): one with no healthy instance gets 503`;
  }
  const dead = configured.filter((c) => c.endpoints.length === 0).map((c) => c.name);
  const idle = `configured, idle: ${configured.map((c) => `${c.name} -> ${(c.failover ?? []).join(", ")}`).join("; ")}`;
  return dead.length > 0
    ? `${idle}; ${dead.join(", ")} and all their failover clusters have no healthy instance: 503`
    : `${idle} (each has a healthy instance; traffic moves while it has none, and returns when it recovers)`;
}

function notes(src: ExplainSources, n: NotesInput): Record<string, string> {
  const { from, to, fromInstances } = n;
  const out: Record<string, string> = {};
  out.routes = routeNote(src, n);
  out.failover = failoverNote(src, n);
  const resolver = src.config.parsed("Resolver", to) as Resolver | undefined;
  if (resolver?.redirect) {
    out.redirect = `calls to ${to} go to ${n.listener.cluster} (Resolver redirect)`;
  }
  const outlier = n.clusters.filter((c) => n.source.clusters[c.name]?.outlierDetection !== undefined);
  out.outlier =
    outlier.length > 0
      ? `health here is the catalog's: outlier detection (${outlier.map((c) => c.name).join(", ")}) ejects instances inside each proxy, which is not visible here; a cluster whose instances are all ejected fails over too`
      : "health here is the catalog's; outlier ejections, kept by each proxy, are not visible here (none configured for these clusters)";
  if (n.clusters.length > 0 && n.clusters.every((c) => c.retries === null)) {
    out.retries = "no retry policy configured (ServiceDefaults.retries) for these clusters";
  }
  if (n.destination !== to) {
    out.authz = `the request reaches "${n.destination}": its sidecars authorize it by Intention "${n.destination}"`;
  }
  if (n.services.length > 1) {
    const others = n.services.slice(1).map((s) => `"${s}"`);
    out.authz = `${out.authz ?? `the decision is that of "${n.destination}"`}; split targets of ${others.join(", ")} are authorized by their own Intentions`;
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
