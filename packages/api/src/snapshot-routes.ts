/**
 * HTTP routes of an upstream listener, as the snapshot carries them: the
 * destination service's Route resource, compiled by the control plane
 * (controlplane/src/snapshot/routes.ts) and enforced by the sidecar through
 * `@weft/api/routing` (the same code `weft explain` runs).
 *
 * Routes are tried in declared order; the first whose match holds decides.
 * A request matching none goes to the listener's own cluster (or split), as
 * if the Route were absent. Durations are in milliseconds, header names are
 * lowercase.
 */
import type { RetriesConfig, SnapshotHttpMatch, SplitTarget } from "./snapshot.js";
import {
  arr,
  checkHttpMatch,
  fail,
  int,
  num,
  type Obj,
  obj,
  oneOf,
  optStr,
  regex,
  str,
} from "./snapshot-check-util.js";

/** A query parameter match: exactly one of exact, regex (full match), present. */
export interface SnapshotQueryMatch {
  name: string;
  exact?: string;
  regex?: string;
  present?: true;
}

export interface RouteMatch extends SnapshotHttpMatch {
  query?: SnapshotQueryMatch[];
}

/** Header changes: remove, then set (replace), then add (append). Names lowercase. */
export interface HeaderOpsConfig {
  add?: Record<string, string>;
  set?: Record<string, string>;
  remove?: string[];
}

/** Delay and/or abort a share of requests (percent, 0..100), applied by the calling sidecar. */
export interface FaultConfig {
  delay?: { percent: number; durationMs: number };
  /** Exactly one of httpStatus, grpcStatus. */
  abort?: { percent: number; httpStatus?: number; grpcStatus?: number };
}

/** Copy `percent` of requests to `cluster`; its responses are ignored. */
export interface MirrorConfig {
  cluster: string;
  percent: number;
}

/** Forward the request: to `cluster`, or by weight over `splits` when present. */
export interface RouteForward {
  cluster: string;
  splits?: SplitTarget[];
  /** Replaces the matched path prefix (the whole path for exact and regex matches). */
  prefixRewrite?: string;
  /** Replaces the request's authority (Host). */
  hostRewrite?: string;
  /** The whole request, retries included; overrides the cluster's. */
  timeoutMs?: number;
  /** A response that stays silent this long (no byte either way) is cut: 504, flag UT. */
  idleTimeoutMs?: number;
  /** Overrides the cluster's retry policy for requests taking this route. */
  retries?: RetriesConfig;
  fault?: FaultConfig;
  mirror?: MirrorConfig;
  requestHeaders?: HeaderOpsConfig;
  responseHeaders?: HeaderOpsConfig;
}

/** A redirect the sidecar answers itself; unset parts keep the request's. */
export interface RedirectConfig {
  scheme?: "http" | "https";
  host?: string;
  port?: number;
  path?: string;
  prefixRewrite?: string;
  statusCode: number;
}

export interface DirectResponseConfig {
  status: number;
  body?: string;
  headers?: Record<string, string>;
}

/** Exactly one of forward, redirect, directResponse. */
export interface HttpRouteConfig {
  /** For `weft explain`, access logs and metrics labels. */
  name?: string;
  match: RouteMatch;
  forward?: RouteForward;
  redirect?: RedirectConfig;
  directResponse?: DirectResponseConfig;
}

export const MAX_ROUTES = 256;
const MAX_HEADER_OPS = 64;
const REDIRECT_STATUSES = [301, 302, 303, 307, 308];
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]{1,128}$/;

/** What the route checks need from the rest of checkSnapshot (passed in: no import cycle). */
export interface RouteCheckContext {
  hasCluster(name: string): boolean;
  checkRetries(v: unknown, path: string): void;
  checkSplits(v: unknown, path: string): void;
}

function cluster(v: unknown, p: string, ctx: RouteCheckContext): void {
  const c = str(v, p);
  if (!ctx.hasCluster(c)) fail(p, `no cluster "${c}" in the snapshot`);
}

function headerValue(v: unknown, p: string): void {
  // Values may be empty; CR, LF and NUL would split or end the header.
  if (typeof v !== "string" || v.length > 8192 || /[\r\n\0]/.test(v)) fail(p, "expected a header value");
}

function headerMap(v: unknown, p: string): void {
  const m = obj(v, p);
  const keys = Object.keys(m);
  if (keys.length > MAX_HEADER_OPS) fail(p, `more than ${MAX_HEADER_OPS} entries`);
  for (const k of keys) {
    if (!HEADER_NAME.test(k)) fail(p, `"${k}" is not a lowercase header name`);
    headerValue(m[k], `${p}.${k}`);
  }
}

function checkHeaderOps(v: unknown, p: string): void {
  const o = obj(v, p);
  if (o.add !== undefined) headerMap(o.add, `${p}.add`);
  if (o.set !== undefined) headerMap(o.set, `${p}.set`);
  if (o.remove !== undefined) {
    arr(o.remove, `${p}.remove`, MAX_HEADER_OPS).forEach((h, i) => {
      if (typeof h !== "string" || !HEADER_NAME.test(h))
        fail(`${p}.remove[${i}]`, "expected a lowercase header name");
    });
  }
}

function checkQuery(v: unknown, p: string): void {
  arr(v, p, 32).forEach((q, i) => {
    const qp = `${p}[${i}]`;
    const o = obj(q, qp);
    str(o.name, `${qp}.name`);
    const kinds = ["exact", "regex", "present"].filter((k) => o[k] !== undefined);
    if (kinds.length !== 1) fail(qp, "needs exactly one of exact, regex, present");
    if (o.exact !== undefined && typeof o.exact !== "string") fail(`${qp}.exact`, "expected a string");
    regex(o.regex, `${qp}.regex`);
    if (o.present !== undefined && o.present !== true) fail(`${qp}.present`, "expected true");
  });
}

function checkFault(v: unknown, p: string): void {
  const f = obj(v, p);
  if (f.delay === undefined && f.abort === undefined) fail(p, "needs delay or abort");
  if (f.delay !== undefined) {
    const d = obj(f.delay, `${p}.delay`);
    num(d.percent, `${p}.delay.percent`, 0, 100);
    int(d.durationMs, `${p}.delay.durationMs`, 0, 86_400_000);
  }
  if (f.abort !== undefined) {
    const a = obj(f.abort, `${p}.abort`);
    num(a.percent, `${p}.abort.percent`, 0, 100);
    if ((a.httpStatus === undefined) === (a.grpcStatus === undefined)) {
      fail(`${p}.abort`, "needs exactly one of httpStatus, grpcStatus");
    }
    if (a.httpStatus !== undefined) int(a.httpStatus, `${p}.abort.httpStatus`, 200, 599);
    if (a.grpcStatus !== undefined) int(a.grpcStatus, `${p}.abort.grpcStatus`, 1, 16);
  }
}

function checkForward(f: Obj, p: string, ctx: RouteCheckContext): void {
  cluster(f.cluster, `${p}.cluster`, ctx);
  if (f.splits !== undefined) ctx.checkSplits(f.splits, `${p}.splits`);
  if (
    f.prefixRewrite !== undefined &&
    (typeof f.prefixRewrite !== "string" || !f.prefixRewrite.startsWith("/"))
  ) {
    fail(`${p}.prefixRewrite`, 'expected a path starting with "/"');
  }
  optStr(f.hostRewrite, `${p}.hostRewrite`);
  if (f.timeoutMs !== undefined) int(f.timeoutMs, `${p}.timeoutMs`, 1, 86_400_000);
  if (f.idleTimeoutMs !== undefined) int(f.idleTimeoutMs, `${p}.idleTimeoutMs`, 1, 86_400_000);
  if (f.retries !== undefined) ctx.checkRetries(f.retries, `${p}.retries`);
  if (f.fault !== undefined) checkFault(f.fault, `${p}.fault`);
  if (f.mirror !== undefined) {
    const m = obj(f.mirror, `${p}.mirror`);
    cluster(m.cluster, `${p}.mirror.cluster`, ctx);
    num(m.percent, `${p}.mirror.percent`, 0, 100);
  }
  if (f.requestHeaders !== undefined) checkHeaderOps(f.requestHeaders, `${p}.requestHeaders`);
  if (f.responseHeaders !== undefined) checkHeaderOps(f.responseHeaders, `${p}.responseHeaders`);
}

function checkRedirect(v: unknown, p: string): void {
  const r = obj(v, p);
  if (r.scheme !== undefined) oneOf(r.scheme, `${p}.scheme`, ["http", "https"] as const);
  optStr(r.host, `${p}.host`);
  if (r.host !== undefined && /[\s/?#@\\]/.test(r.host as string)) fail(`${p}.host`, "expected a host name");
  if (r.port !== undefined) int(r.port, `${p}.port`, 1, 65535);
  for (const k of ["path", "prefixRewrite"] as const) {
    const v = r[k];
    if (v !== undefined && (typeof v !== "string" || !v.startsWith("/") || /[\s\r\n]/.test(v))) {
      fail(`${p}.${k}`, 'expected a path starting with "/"');
    }
  }
  if (r.path !== undefined && r.prefixRewrite !== undefined) fail(p, "has both path and prefixRewrite");
  if (!REDIRECT_STATUSES.includes(r.statusCode as number)) {
    fail(`${p}.statusCode`, `expected one of ${REDIRECT_STATUSES.join(", ")}`);
  }
}

function checkDirectResponse(v: unknown, p: string): void {
  const d = obj(v, p);
  int(d.status, `${p}.status`, 200, 599);
  if (d.body !== undefined && (typeof d.body !== "string" || d.body.length > 65_536)) {
    fail(`${p}.body`, "expected a string of at most 65536 characters");
  }
  if (d.headers !== undefined) headerMap(d.headers, `${p}.headers`);
}

/** Checks a listener's `routes`: matches, exactly one action each, clusters that exist. */
export function checkRoutes(v: unknown, p: string, ctx: RouteCheckContext): void {
  arr(v, p, MAX_ROUTES).forEach((r, i) => {
    const rp = `${p}[${i}]`;
    const route = obj(r, rp);
    optStr(route.name, `${rp}.name`);
    checkHttpMatch(route.match, `${rp}.match`);
    const m = route.match as Obj;
    const paths = ["pathExact", "pathPrefix", "pathRegex"].filter((k) => m[k] !== undefined);
    if (paths.length > 1) fail(`${rp}.match`, "has more than one of pathExact, pathPrefix, pathRegex");
    if (m.query !== undefined) checkQuery(m.query, `${rp}.match.query`);
    const actions = ["forward", "redirect", "directResponse"].filter((k) => route[k] !== undefined);
    if (actions.length !== 1) fail(rp, "needs exactly one of forward, redirect, directResponse");
    if (route.forward !== undefined) checkForward(obj(route.forward, `${rp}.forward`), `${rp}.forward`, ctx);
    if (route.redirect !== undefined) checkRedirect(route.redirect, `${rp}.redirect`);
    if (route.directResponse !== undefined) checkDirectResponse(route.directResponse, `${rp}.directResponse`);
  });
}

/** Checks header ops carried by a split target (Split entries may add/remove headers too). */
export { checkHeaderOps };
