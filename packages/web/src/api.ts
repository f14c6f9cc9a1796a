/**
 * The UI's API client: same-origin fetch with the ACL token from
 * sessionStorage (`authorization: Bearer`). A 401 clears the token and
 * calls `onUnauthenticated` (the app goes back to the login page); any
 * other error answer becomes an ApiError carrying the catalogued code and
 * message, which views show as is (the control plane's messages name the
 * field at fault).
 */
import type { ApplyResponse, ClientResource, XdsNodesResponse } from "@weft/api";

const TOKEN_KEY = "weft.token";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface ApiOptions {
  /** Called once per 401 answer (bad, revoked or missing token). */
  onUnauthenticated(): void;
}

export class Api {
  #token: string | null;
  readonly #o: ApiOptions;

  constructor(o: ApiOptions) {
    this.#o = o;
    this.#token = readToken();
  }

  get hasToken(): boolean {
    return this.#token !== null;
  }

  get token(): string | null {
    return this.#token;
  }

  setToken(token: string | null): void {
    this.#token = token;
    try {
      if (token === null) sessionStorage.removeItem(TOKEN_KEY);
      else sessionStorage.setItem(TOKEN_KEY, token);
    } catch {
      // Storage refused (private mode): the token lives for this page only.
    }
  }

  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.#token !== null) headers.authorization = `Bearer ${this.#token}`;
    const init: RequestInit = { method, headers, cache: "no-store" };
    if (signal) init.signal = signal;
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const text = await res.text();
    let json: unknown;
    try {
      json = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
      const e = new ApiError(res.status, err?.code ?? `HTTP_${res.status}`, err?.message ?? res.statusText);
      if (res.status === 401) {
        this.setToken(null);
        this.#o.onUnauthenticated();
      }
      throw e;
    }
    return json as T;
  }

  get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.request<T>("GET", path, undefined, signal);
  }

  /** Whether `token` (or no token, for a --dev server) is accepted, without storing it. */
  static async probe(token: string | null): Promise<boolean> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const res = await fetch("/v1/acl/token/self", { headers, cache: "no-store" });
    return res.ok;
  }

  // --- typed calls (the paths of docs/api.md; the same calls as packages/api/src/client.ts) ---

  listConfig(kind: string, signal?: AbortSignal): Promise<ClientResource[]> {
    return this.get<ClientResource[]>(`/v1/config/${encodeURIComponent(kind)}`, signal);
  }

  /** `weft apply`: POST /v1/config/apply, all or nothing. */
  apply(resources: readonly unknown[]): Promise<ApplyResponse> {
    return this.request<ApplyResponse>("POST", "/v1/config/apply", { resources });
  }

  /** `weft xds --service NAME`: the service's xDS nodes (proxyless gRPC clients) and their NACKs. */
  xdsNodes(service: string, signal?: AbortSignal): Promise<XdsNodesResponse> {
    return this.get<XdsNodesResponse>(`/v1/xds/nodes?service=${encodeURIComponent(service)}`, signal);
  }

  /** `weft delete KIND NAME`. */
  deleteConfig(kind: string, name: string): Promise<{ deleted: boolean }> {
    return this.request("DELETE", `/v1/config/${encodeURIComponent(kind)}/${encodeURIComponent(name)}`);
  }
}

function readToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/** The error text a view shows. */
export function errorText(e: unknown): string {
  if (e instanceof ApiError) return `${e.message} (${e.code})`;
  if (e instanceof Error) return e.message;
  return String(e);
}
