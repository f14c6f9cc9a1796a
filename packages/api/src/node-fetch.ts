/**
 * The control-plane client's HTTP transport: node:http / node:https with
 * kept-alive agents, shaped like the part of `fetch` that WeftClient uses
 * (a URL, method, headers, a string body, an abort signal; status, headers,
 * text and a streamed body back).
 *
 * Why not `globalThis.fetch`: on first use it loads Node's bundled undici and
 * compiles its llhttp WebAssembly, about 10 MB of resident memory and tens of
 * milliseconds of start-up in every process that calls it. Every sidecar
 * talks to the control plane, and a sidecar's memory is paid once per
 * workload instance (bench/README.md, "idle sidecar").
 */
import http from "node:http";
import https from "node:https";

export interface FetchInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | undefined;
  signal?: AbortSignal | undefined;
}

export interface FetchResponse {
  readonly ok: boolean;
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  text(): Promise<string>;
  /** The body as it arrives; consuming it (or `text()`) hands the connection back for reuse. */
  readonly body: AsyncIterable<Uint8Array> | null;
}

/** What WeftClient calls to reach the control plane; `fetch` itself fits (tests pass a scripted one). */
export type FetchLike = (url: URL, init: FetchInit) => Promise<FetchResponse>;

// An idle kept-alive connection is closed after this long: before the control
// plane's own keep-alive timeout (5 s), so a request never goes out on a
// connection the server is closing.
export const IDLE_MS = 4_000;
const httpAgent = new http.Agent({ keepAlive: true, timeout: IDLE_MS });
const httpsAgent = new https.Agent({ keepAlive: true, timeout: IDLE_MS });

export const nodeFetch: FetchLike = (url, init) =>
  new Promise<FetchResponse>((resolve, reject) => {
    const { signal, body } = init;
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const tls = url.protocol === "https:";
    const headers: Record<string, string> = { ...init.headers };
    if (body !== undefined) headers["content-length"] = String(Buffer.byteLength(body));
    const req = (tls ? https : http).request(url, {
      method: init.method ?? "GET",
      headers,
      agent: tls ? httpsAgent : httpAgent,
      ...(signal ? { signal } : {}),
    });
    req.once("error", reject);
    req.once("response", (res) => resolve(new NodeResponse(res)));
    req.end(body);
  });

class NodeResponse implements FetchResponse {
  readonly ok: boolean;
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  readonly body: AsyncIterable<Uint8Array>;

  constructor(res: http.IncomingMessage) {
    this.status = res.statusCode ?? 0;
    this.ok = this.status >= 200 && this.status < 300;
    this.headers = {
      get: (name) => {
        const v = res.headers[name.toLowerCase()];
        return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
      },
    };
    this.body = res;
  }

  async text(): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of this.body) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }
}
