/**
 * The HTTP API client: one method per endpoint of docs/api.md, used by the
 * CLI and by anything else that talks to the control plane (tests, sidecars
 * before they have a stream).
 *
 * Data flow: method -> `request()` (URL, auth header, JSON body, timeout)
 * -> node-fetch.ts (node:http) -> response: 2xx JSON is the typed result; an error body
 * `{error: {code, message}}` becomes a `WeftApiError` carrying the server's
 * code, message and status; a connection failure becomes
 * `WEFT_ERR_UNREACHABLE` naming the address; a client-side timeout becomes
 * `WEFT_ERR_TIMEOUT`.
 *
 * Several control-plane replicas: `addr` may list addresses separated by
 * commas ("10.0.0.1:7400,10.0.0.2:7400"). A request that cannot connect, or
 * gets no answer in time, is tried on the next address (each address at most
 * once per request); the one that answered is used first from then on. So
 * is a 503 (a replica cut off from the store, or between leaders): another
 * replica may serve it; when all answer 503 the last answer is returned.
 * Other HTTP error answers are returned as is. With one address nothing
 * changes.
 *
 * Blocking reads (`?index=N&wait=D`) get a per-request deadline of `wait`
 * plus a margin instead of `timeoutMs`, so a long-poll is never cut short by
 * the ordinary request timeout.
 */
import { ERRORS, type ErrorCode, parseDuration, WeftError } from "@weft/core";
import type { CaRootsResponse, RotateResponse, SignRequest, SignResponse } from "./ca.js";
import type {
  CheckState,
  CheckUpdate,
  HealthStatus,
  Instance,
  InstanceRegistration,
  ServiceInstancesResponse,
  ServiceSummary,
} from "./catalog.js";
import type { ExplainQuery, ExplainResponse } from "./explain.js";
import type {
  EdgesMetricsResponse,
  ProxyStatsAck,
  ProxyStatsReport,
  ServiceMetricsResponse,
  ServicesMetricsResponse,
} from "./metrics.js";
import { type FetchLike, type FetchResponse, nodeFetch } from "./node-fetch.js";
// Values only from zod-free modules: the sidecar loads this file through `@weft/api/client`.
import { BLOCKING_DEFAULT_WAIT_MS, BLOCKING_MAX_WAIT_MS } from "./patterns.js";
import type { ProxySnapshot, ProxyStreamMessage } from "./snapshot.js";
import type { XdsNodesResponse } from "./xds.js";

// The golden-metrics wire types and helpers (zod-free) reach the sidecar and the CLI through this entry.
export * from "./metrics.js";
// The xDS node state types and their zod-free helpers (proxyless marking, NACK wording), for the CLI.
export * from "./xds.js";

export interface WeftClientOptions {
  /** `host:port` (http assumed) or a URL such as `http://127.0.0.1:7400`; several, comma-separated, for failover. */
  addr: string;
  /** Bearer secret sent as `Authorization: Bearer <token>`. */
  token?: string | undefined;
  /** Deadline for ordinary (non-blocking) requests. Default 10 s. */
  timeoutMs?: number | undefined;
  /** For tests: a fetch implementation (`fetch` itself fits). Default: node-fetch.ts, node:http. */
  fetch?: FetchLike | undefined;
}

/** A blocking query: answer once the index is greater than `index`, or after `wait`. */
export interface BlockingQuery {
  index?: number | undefined;
  /** Milliseconds or a duration string ("30s"). */
  wait?: number | string | undefined;
  signal?: AbortSignal | undefined;
}

/** A read result with the store revision it was read at (the `X-Weft-Index` header). */
export interface Indexed<T> {
  value: T;
  index: number;
}

export interface ServerStatus {
  version: string;
  backend: string;
  /** Same as `backend` ("memory", "sqlite", "etcd"). Absent on older servers. */
  store?: string;
  /** Whether this replica runs the once-only duties (always true on an embedded store). Absent on older servers. */
  leader?: boolean;
  revision: number;
  dev: boolean;
}

/** A config resource as sent and stored: `kind`, `name` and the kind's fields. */
export interface ClientResource {
  kind: string;
  name: string;
  [field: string]: unknown;
}

export type ApplyAction = "created" | "updated" | "unchanged";

export interface ApplyResponse {
  applied: { kind: string; name: string; action: ApplyAction }[];
  revision: number;
}

export interface RegisterResult {
  instance: Instance;
  /** True for 201 (new registration), false for 200 (replaced). */
  created: boolean;
}

export interface TokenInfo {
  accessorId: string;
  description?: string | undefined;
  policies: string[];
  createdAt?: number | string | undefined;
  [field: string]: unknown;
}

export interface CreatedToken extends TokenInfo {
  /** The bearer secret; returned only on creation. */
  secretId: string;
}

export interface HealthQuery extends BlockingQuery {
  /** Which instances: passing only (default), passing+warning, or any. */
  status?: "passing" | "warning" | "any" | undefined;
}

export interface WatchOptions extends HealthQuery {
  /** Wait per long-poll round. Default "5m" (the server's cap). */
  wait?: number | string | undefined;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** Extra time given to a blocking query beyond its `wait`, for the answer to travel. */
const BLOCKING_MARGIN_MS = 5_000;

/**
 * An error answered by the server. `code` is the server's code when it is in
 * the catalogue; otherwise a code chosen from the HTTP status, with the
 * server's original code kept in `serverCode`.
 */
export class WeftApiError extends WeftError {
  override readonly status: number;
  readonly serverCode: string;

  constructor(code: ErrorCode, message: string, status: number, serverCode: string = code) {
    super(code, {});
    this.name = "WeftApiError";
    this.message = message;
    this.status = status;
    this.serverCode = serverCode;
  }
}

function isErrorCode(s: unknown): s is ErrorCode {
  return typeof s === "string" && Object.hasOwn(ERRORS, s);
}

function codeForStatus(status: number): ErrorCode {
  if (status === 401) return "WEFT_ERR_UNAUTHENTICATED";
  if (status === 403) return "WEFT_ERR_PERMISSION_DENIED";
  if (status === 404) return "WEFT_ERR_NOT_FOUND";
  if (status === 405) return "WEFT_ERR_METHOD_NOT_ALLOWED";
  if (status === 409) return "WEFT_ERR_CONFLICT";
  if (status === 413) return "WEFT_ERR_BODY_TOO_LARGE";
  if (status === 415) return "WEFT_ERR_UNSUPPORTED_MEDIA_TYPE";
  if (status === 503) return "WEFT_ERR_UNAVAILABLE";
  if (status === 504) return "WEFT_ERR_TIMEOUT";
  if (status >= 400 && status < 500) return "WEFT_ERR_VALIDATION";
  return "WEFT_ERR_INTERNAL";
}

/** Parses a comma-separated list of addresses (see `normalizeAddr`) into base URLs, at least one. */
export function normalizeAddrs(addrs: string): string[] {
  const parts = addrs.split(",").map((a) => a.trim());
  if (parts.length > 1 && parts.some((a) => a.length === 0)) {
    throw new WeftError("WEFT_ERR_USAGE", {
      detail: `invalid control plane address list "${addrs}": an empty entry`,
    });
  }
  return [...new Set(parts.map(normalizeAddr))];
}

/** Parses `host:port`, `:port`, `[v6]:port` or a URL into a base URL without a trailing slash. */
export function normalizeAddr(addr: string): string {
  const a = addr.trim();
  if (a.length === 0) throw new WeftError("WEFT_ERR_USAGE", { detail: "the control plane address is empty" });
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(a)
    ? a
    : `http://${a.startsWith(":") ? `127.0.0.1${a}` : a}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new WeftError("WEFT_ERR_USAGE", {
      detail: `invalid control plane address "${addr}"; expected host:port or http(s)://host:port`,
    });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new WeftError("WEFT_ERR_USAGE", {
      detail: `invalid control plane address "${addr}": scheme must be http or https`,
    });
  }
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, "")}`;
}

function waitParam(wait: number | string): string {
  return typeof wait === "number" ? `${Math.max(0, Math.round(wait))}ms` : wait;
}

/** How long the server may hold this read (it caps `wait`; an unparsable one gets a 400 at once). */
function waitMs(wait: number | string | undefined): number {
  if (wait === undefined) return BLOCKING_DEFAULT_WAIT_MS;
  if (typeof wait === "number") return Math.min(BLOCKING_MAX_WAIT_MS, wait);
  const r = parseDuration(wait);
  return r.ok ? Math.min(BLOCKING_MAX_WAIT_MS, r.ms) : BLOCKING_MAX_WAIT_MS;
}

function describeCause(e: unknown): string {
  // node:http rejects with the socket error itself; a fetch passed in (tests) wraps it:
  // TypeError("fetch failed", {cause: Error ECONNREFUSED}).
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur instanceof Error; i++) {
    const c = (cur as { cause?: unknown }).cause;
    if (!(c instanceof Error)) break;
    cur = c;
  }
  if (cur instanceof Error) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string" && code.length > 0) {
      if (code === "ECONNREFUSED") return "connection refused";
      if (code === "ENOTFOUND" || code === "EAI_AGAIN") return "host not found";
      if (code === "ECONNRESET" || code === "UND_ERR_SOCKET") return "connection reset";
      return `${code}`;
    }
    return cur.message;
  }
  return String(cur);
}

interface RequestOptions {
  query?: Record<string, string | number | undefined> | undefined;
  body?: unknown;
  /** Overrides the request deadline (blocking queries). */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

interface RawResponse<T> {
  status: number;
  body: T;
  index: number | undefined;
}

export class WeftClient {
  /** Every control-plane base URL, in the order given. */
  readonly baseUrls: readonly string[];
  readonly addr: string;
  /** Index in `baseUrls` of the address tried first (the last one that answered). */
  #current = 0;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;
  readonly #fetch: FetchLike;

  constructor(opts: WeftClientOptions) {
    this.addr = opts.addr;
    this.baseUrls = normalizeAddrs(opts.addr);
    this.#token = opts.token && opts.token.length > 0 ? opts.token : undefined;
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#fetch = opts.fetch ?? nodeFetch;
  }

  /** The base URL requests go to first: the last address that answered. */
  get baseUrl(): string {
    return this.baseUrls[this.#current] as string;
  }

  /** Moves on from `failed` to the next address (unless another request already did). */
  #failover(failed: string): void {
    if (this.baseUrls.length > 1 && this.baseUrl === failed) {
      this.#current = (this.#current + 1) % this.baseUrls.length;
    }
  }

  /** The address named in errors: the one that failed, or the whole list after all failed. */
  #addrFor(base: string, last: boolean): string {
    return this.baseUrls.length === 1 ? this.addr : last ? this.baseUrls.join(",") : base;
  }

  // --- status ---

  /** GET /v1/status: liveness, backend and current store revision. No token needed. */
  async status(): Promise<ServerStatus> {
    return (await this.#request<ServerStatus>("GET", "/v1/status")).body;
  }

  // --- catalog ---

  /** GET /v1/catalog/services (blocking). */
  async listServices(q: BlockingQuery = {}): Promise<Indexed<ServiceSummary[]>> {
    const r = await this.#blocking<ServiceSummary[]>("/v1/catalog/services", q);
    return { value: r.body, index: r.index ?? 0 };
  }

  /** PUT /v1/catalog/instances: register (201) or replace (200) an instance. */
  async registerInstance(reg: InstanceRegistration): Promise<RegisterResult> {
    const r = await this.#request<Instance>("PUT", "/v1/catalog/instances", { body: reg });
    return { instance: r.body, created: r.status === 201 };
  }

  /** GET /v1/catalog/instances/:id */
  async getInstance(id: string): Promise<Instance> {
    return (await this.#request<Instance>("GET", `/v1/catalog/instances/${enc(id)}`)).body;
  }

  /** DELETE /v1/catalog/instances/:id */
  async deregisterInstance(id: string): Promise<{ deleted: boolean }> {
    return (await this.#request<{ deleted: boolean }>("DELETE", `/v1/catalog/instances/${enc(id)}`)).body;
  }

  /** DELETE /v1/catalog/services/:name: every instance of the service, in one transaction. */
  async deregisterService(name: string): Promise<{ deleted: number }> {
    return (await this.#request<{ deleted: number }>("DELETE", `/v1/catalog/services/${enc(name)}`)).body;
  }

  /** PUT /v1/catalog/instances/:id/checks/:checkId: a TTL heartbeat. */
  async updateCheck(instanceId: string, checkId: string, update: CheckUpdate): Promise<CheckState> {
    const path = `/v1/catalog/instances/${enc(instanceId)}/checks/${enc(checkId)}`;
    return (await this.#request<CheckState>("PUT", path, { body: update })).body;
  }

  /** Shorthand heartbeat: report `passing` (or the given status) for a TTL check. */
  heartbeat(instanceId: string, checkId = "ttl", status: HealthStatus = "passing", output?: string) {
    return this.updateCheck(instanceId, checkId, output === undefined ? { status } : { status, output });
  }

  /** GET /v1/health/service/:name (blocking): passing instances by default. */
  async healthService(name: string, q: HealthQuery = {}): Promise<ServiceInstancesResponse> {
    const r = await this.#blocking<ServiceInstancesResponse>(`/v1/health/service/${enc(name)}`, q, {
      status: q.status === "passing" ? undefined : q.status,
    });
    return r.body;
  }

  /**
   * Long-poll helper: yields the service's instances now (or once the index
   * passes `opts.index`) and again after every change, until `signal` aborts
   * (the loop then ends quietly) or a request fails (the error is thrown).
   * When the server's index goes backwards (a restored or restarted store)
   * the watch starts over from 0, as Consul's clients do.
   */
  async *watchService(name: string, opts: WatchOptions = {}): AsyncGenerator<ServiceInstancesResponse> {
    let index = opts.index ?? 0;
    const wait = opts.wait ?? "5m";
    while (!opts.signal?.aborted) {
      let r: ServiceInstancesResponse;
      try {
        r = await this.healthService(name, { ...opts, index, wait });
      } catch (e) {
        if (opts.signal?.aborted) return;
        throw e;
      }
      if (r.index < index) {
        index = 0;
        continue;
      }
      if (r.index > index || index === 0) {
        index = r.index;
        yield r;
      }
    }
  }

  // --- config ---

  /** POST /v1/config/apply: all or nothing. */
  async applyConfig(resources: readonly unknown[]): Promise<ApplyResponse> {
    return (await this.#request<ApplyResponse>("POST", "/v1/config/apply", { body: { resources } })).body;
  }

  /** POST /v1/config/validate: schema and cross-resource checks against the stored set, no write. */
  async validateConfig(resources: readonly unknown[]): Promise<{ valid: boolean }> {
    return (await this.#request<{ valid: boolean }>("POST", "/v1/config/validate", { body: { resources } }))
      .body;
  }

  /** GET /v1/config/:kind (blocking). */
  async listConfig(kind: string, q: BlockingQuery = {}): Promise<Indexed<ClientResource[]>> {
    const r = await this.#blocking<ClientResource[]>(`/v1/config/${enc(kind)}`, q);
    return { value: r.body, index: r.index ?? 0 };
  }

  /** GET /v1/config/:kind/:name */
  async getConfig(kind: string, name: string): Promise<ClientResource> {
    return (await this.#request<ClientResource>("GET", `/v1/config/${enc(kind)}/${enc(name)}`)).body;
  }

  /** DELETE /v1/config/:kind/:name */
  async deleteConfig(kind: string, name: string): Promise<{ deleted: boolean }> {
    return (await this.#request<{ deleted: boolean }>("DELETE", `/v1/config/${enc(kind)}/${enc(name)}`)).body;
  }

  // --- ACL ---

  /** GET /v1/acl/token/self */
  async tokenSelf(): Promise<TokenInfo> {
    return (await this.#request<TokenInfo>("GET", "/v1/acl/token/self")).body;
  }

  /** POST /v1/acl/tokens: the secret is returned only here. */
  async createToken(req: { policies: string[]; description?: string | undefined }): Promise<CreatedToken> {
    return (await this.#request<CreatedToken>("POST", "/v1/acl/tokens", { body: req })).body;
  }

  /** GET /v1/acl/tokens: without secrets. */
  async listTokens(): Promise<TokenInfo[]> {
    return (await this.#request<TokenInfo[]>("GET", "/v1/acl/tokens")).body;
  }

  /** DELETE /v1/acl/tokens/:accessorId */
  async deleteToken(accessorId: string): Promise<unknown> {
    return (await this.#request<unknown>("DELETE", `/v1/acl/tokens/${enc(accessorId)}`)).body;
  }

  // --- CA ---

  /** GET /v1/ca/roots (blocking): the trust bundle. Any valid token may read it. */
  async caRoots(q: BlockingQuery = {}): Promise<CaRootsResponse> {
    return (await this.#blocking<CaRootsResponse>("/v1/ca/roots", q)).body;
  }

  /** POST /v1/ca/sign: a leaf for the CSR's SPIFFE ID; the token needs service:<name>:write. */
  async caSign(req: SignRequest): Promise<SignResponse> {
    return (await this.#request<SignResponse>("POST", "/v1/ca/sign", { body: req })).body;
  }

  /** POST /v1/ca/rotate: a new active root, cross-signed by the old one (operator). */
  async caRotate(): Promise<RotateResponse> {
    return (await this.#request<RotateResponse>("POST", "/v1/ca/rotate", { body: {} })).body;
  }

  // --- proxy config ---

  /** GET /v1/proxy/snapshot/:id: the snapshot the instance's proxy would receive now. */
  async proxySnapshot(instanceId: string): Promise<ProxySnapshot> {
    return (await this.#request<ProxySnapshot>("GET", `/v1/proxy/snapshot/${enc(instanceId)}`)).body;
  }

  /**
   * GET /v1/proxy/stream/:id: the proxy's config stream. Yields each message
   * (unchecked JSON: the caller runs `checkSnapshot`) until the server ends
   * the stream, `signal` aborts (returns quietly) or `idleMs` passes without
   * a byte (WEFT_ERR_TIMEOUT: a dead connection looks quiet). A line longer
   * than `maxLineBytes` ends the stream with WEFT_ERR_BODY_TOO_LARGE.
   */
  async *proxyStream(
    instanceId: string,
    opts: { signal?: AbortSignal; idleMs: number; maxLineBytes?: number },
  ): AsyncGenerator<ProxyStreamMessage> {
    const path = `/v1/proxy/stream/${enc(instanceId)}`;
    const max = opts.maxLineBytes ?? 64 * 1024 * 1024;
    const ac = new AbortController();
    const onAbort = () => ac.abort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    let idle: NodeJS.Timeout | undefined;
    let idleFired = false;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        idleFired = true;
        ac.abort();
      }, opts.idleMs);
      idle.unref?.();
    };
    const headers: Record<string, string> = { accept: "application/x-ndjson" };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    let base = this.baseUrl;
    try {
      arm();
      let res: FetchResponse | undefined;
      for (let attempt = 1; res === undefined; attempt++) {
        base = this.baseUrl;
        try {
          res = await this.#fetch(new URL(base + path), { headers, signal: ac.signal });
        } catch (e) {
          if (opts.signal?.aborted) return;
          // The next connect goes to the next replica.
          this.#failover(base);
          if (idleFired) {
            throw new WeftError("WEFT_ERR_TIMEOUT", {
              detail: `${path} at ${this.#addrFor(base, false)}: no answer within ${opts.idleMs} ms`,
            });
          }
          // Refused at once: the other replicas are tried now, not after the caller's backoff.
          if (attempt >= this.baseUrls.length) {
            throw new WeftError(
              "WEFT_ERR_UNREACHABLE",
              { addr: this.#addrFor(base, true), detail: describeCause(e) },
              { cause: e },
            );
          }
        }
      }
      if (!res.ok || !res.body) {
        // A replica that cannot serve (503): the next connect goes to the next one.
        if (res.status === 503) this.#failover(base);
        const text = await res.text().catch(() => "");
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        throw errorFromResponse(res.status, parsed, `GET ${path}`);
      }
      const decoder = new TextDecoder();
      let buf = "";
      try {
        for await (const chunk of res.body) {
          arm();
          buf += decoder.decode(chunk, { stream: true });
          let nl = buf.indexOf("\n");
          while (nl >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            nl = buf.indexOf("\n");
            if (line.trim().length === 0) continue;
            let msg: unknown;
            try {
              msg = JSON.parse(line);
            } catch {
              throw new WeftError("WEFT_ERR_UNAVAILABLE", { detail: `${path}: a stream line is not JSON` });
            }
            yield msg as ProxyStreamMessage;
          }
          if (buf.length > max) {
            throw new WeftError("WEFT_ERR_UNAVAILABLE", {
              detail: `${path}: a stream message exceeds ${max} bytes`,
            });
          }
        }
      } catch (e) {
        if (e instanceof WeftError) throw e;
        if (opts.signal?.aborted) return;
        // A dead or silent replica: reconnect to the next one.
        this.#failover(base);
        if (idleFired) {
          throw new WeftError("WEFT_ERR_TIMEOUT", {
            detail: `${path} at ${this.#addrFor(base, false)}: nothing received for ${opts.idleMs} ms`,
          });
        }
        throw new WeftError(
          "WEFT_ERR_UNREACHABLE",
          { addr: this.#addrFor(base, false), detail: describeCause(e) },
          { cause: e },
        );
      }
    } finally {
      clearTimeout(idle);
      opts.signal?.removeEventListener("abort", onAbort);
      ac.abort();
    }
  }

  /** POST /v1/proxy/stats/:id: a sidecar's golden-metric deltas (its token must write its service). */
  async pushProxyStats(instanceId: string, report: ProxyStatsReport): Promise<ProxyStatsAck> {
    const path = `/v1/proxy/stats/${enc(instanceId)}`;
    return (await this.#request<ProxyStatsAck>("POST", path, { body: report })).body;
  }

  // --- golden metrics ---

  /** GET /v1/metrics/services: rate, success rate and latency per service (as destination). */
  async metricsServices(): Promise<ServicesMetricsResponse> {
    return (await this.#request<ServicesMetricsResponse>("GET", "/v1/metrics/services")).body;
  }

  /** GET /v1/metrics/services/:name: one service and its inbound and outbound edges. */
  async metricsService(name: string): Promise<ServiceMetricsResponse> {
    return (await this.#request<ServiceMetricsResponse>("GET", `/v1/metrics/services/${enc(name)}`)).body;
  }

  /** GET /v1/metrics/edges: every source -> destination edge with traffic in the window. */
  async metricsEdges(): Promise<EdgesMetricsResponse> {
    return (await this.#request<EdgesMetricsResponse>("GET", "/v1/metrics/edges")).body;
  }

  // --- explain ---

  /** GET /v1/explain: what the mesh would do with one request from `from` to `to`. */
  async explain(q: ExplainQuery): Promise<ExplainResponse> {
    const params = new URLSearchParams({ from: q.from, to: q.to });
    if (q.method !== undefined) params.set("method", q.method);
    if (q.path !== undefined) params.set("path", q.path);
    for (const [name, value] of q.headers ?? []) params.append("header", `${name}:${value}`);
    return (await this.#request<ExplainResponse>("GET", `/v1/explain?${params}`)).body;
  }

  // --- xDS ---

  /** GET /v1/xds/nodes: connected xDS nodes (proxyless gRPC clients) and their NACKs; `service` filters. */
  async xdsNodes(q: { service?: string | undefined } = {}): Promise<XdsNodesResponse> {
    const query = q.service !== undefined ? `?${new URLSearchParams({ service: q.service })}` : "";
    return (await this.#request<XdsNodesResponse>("GET", `/v1/xds/nodes${query}`)).body;
  }

  // --- plumbing ---

  #blocking<T>(path: string, q: BlockingQuery, extra: Record<string, string | undefined> = {}) {
    const blocking = q.index !== undefined && q.index > 0;
    const query: Record<string, string | number | undefined> = { ...extra };
    if (blocking) {
      query.index = q.index;
      if (q.wait !== undefined) query.wait = waitParam(q.wait);
    }
    const timeoutMs = blocking ? waitMs(q.wait) + BLOCKING_MARGIN_MS : undefined;
    return this.#request<T>("GET", path, { query, timeoutMs, signal: q.signal });
  }

  async #request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<RawResponse<T>> {
    // Each address at most once, starting with the last one that answered.
    for (let attempt = 1; ; attempt++) {
      const base = this.baseUrl;
      try {
        return await this.#requestAt<T>(base, method, path, opts);
      } catch (e) {
        const retry = attempt < this.baseUrls.length && !opts.signal?.aborted && replicaFailed(e);
        if (!retry) throw e;
        this.#failover(base);
      }
    }
  }

  async #requestAt<T>(
    base: string,
    method: string,
    path: string,
    opts: RequestOptions,
  ): Promise<RawResponse<T>> {
    const url = new URL(base + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    const timeoutMs = opts.timeoutMs ?? this.#timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;

    let res: FetchResponse;
    let text: string;
    try {
      res = await this.#fetch(url, { method, headers, body, signal });
      text = await res.text();
    } catch (e) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? e;
      if (timeout.aborted) {
        throw new WeftError(
          "WEFT_ERR_TIMEOUT",
          { detail: `${method} ${path} at ${this.#addrFor(base, false)}: no answer within ${timeoutMs} ms` },
          { cause: e },
        );
      }
      throw new WeftError(
        "WEFT_ERR_UNREACHABLE",
        { addr: this.#addrFor(base, false), detail: describeCause(e) },
        { cause: e },
      );
    }

    const indexHeader = res.headers.get("x-weft-index");
    const index = indexHeader !== null && /^\d+$/.test(indexHeader) ? Number(indexHeader) : undefined;
    let parsed: unknown;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    if (res.ok) {
      if (parsed === undefined && text.length > 0) {
        throw new WeftApiError(
          "WEFT_ERR_INTERNAL",
          `${method} ${path}: the server answered ${res.status} with a body that is not JSON`,
          res.status,
        );
      }
      return { status: res.status, body: parsed as T, index };
    }
    throw errorFromResponse(res.status, parsed, `${method} ${path}`);
  }
}

/** Whether another replica should be tried: no connection, no answer in time, or 503 (cannot serve now). */
function replicaFailed(e: unknown): boolean {
  if (e instanceof WeftApiError) return e.status === 503;
  return e instanceof WeftError && (e.code === "WEFT_ERR_UNREACHABLE" || e.code === "WEFT_ERR_TIMEOUT");
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

/** Turns an error response into a WeftApiError; exported for tests and other HTTP callers. */
export function errorFromResponse(status: number, body: unknown, what: string): WeftApiError {
  const err = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const serverCode = typeof err?.code === "string" ? err.code : undefined;
  const message =
    typeof err?.message === "string" && err.message.length > 0
      ? err.message
      : `${what}: the server answered ${status}`;
  const code = isErrorCode(serverCode) ? serverCode : codeForStatus(status);
  return new WeftApiError(code, message, status, serverCode ?? code);
}
