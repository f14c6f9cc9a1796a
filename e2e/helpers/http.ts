/**
 * Raw HTTP for end-to-end tests, deliberately not the API client: tests
 * exercise the wire contract (status, headers, error bodies) as any client
 * would see it, including bodies the client would never send.
 */
import { request } from "node:http";

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: test code reads arbitrary JSON fields
  body: any;
  /** Date.now() when the response headers arrived. */
  receivedAt: number;
}

export interface HttpOptions {
  method?: string;
  token?: string | undefined;
  /** An object is sent as JSON; a string or Buffer is sent as is. */
  body?: unknown;
  contentType?: string;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

/**
 * One request with node:http. Resolves with the response even when the
 * server answers (e.g. 413) and closes before the whole body was sent.
 */
export function http(baseUrl: string, path: string, opts: HttpOptions = {}): Promise<HttpResult> {
  const url = new URL(path, `${baseUrl}/`);
  let payload: Buffer | undefined;
  if (opts.body !== undefined) {
    payload =
      typeof opts.body === "string"
        ? Buffer.from(opts.body)
        : Buffer.isBuffer(opts.body)
          ? opts.body
          : Buffer.from(JSON.stringify(opts.body));
  }
  const headers: Record<string, string> = { accept: "application/json", ...opts.headers };
  if (payload) {
    headers["content-type"] = opts.contentType ?? "application/json";
    headers["content-length"] = String(payload.length);
  }
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? (payload ? "POST" : "GET"), headers, agent: false });
    const timer = setTimeout(() => {
      req.destroy(
        new Error(`${opts.method ?? "GET"} ${path}: no answer within ${opts.timeoutMs ?? 15_000} ms`),
      );
    }, opts.timeoutMs ?? 15_000);
    let answered = false;
    req.on("response", (res) => {
      answered = true;
      const receivedAt = Date.now();
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        text += c;
      });
      res.on("end", () => {
        clearTimeout(timer);
        let body: unknown;
        try {
          body = text.length > 0 ? JSON.parse(text) : undefined;
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body, receivedAt });
      });
      res.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    req.on("error", (e) => {
      // An early answer followed by a reset while we were still uploading is still an answer.
      if (answered) return;
      clearTimeout(timer);
      reject(e);
    });
    if (payload) {
      req.write(payload, () => {});
    }
    req.end();
  });
}

/** Creates an ACL token with an operator token; throws unless the API answers 200. */
export async function createToken(
  baseUrl: string,
  operatorToken: string,
  policies: string[],
  description?: string,
): Promise<{ secretId: string; accessorId: string }> {
  const t = await http(baseUrl, "/v1/acl/tokens", {
    token: operatorToken,
    body: description === undefined ? { policies } : { description, policies },
  });
  if (t.status !== 200) throw new Error(`creating a token for ${policies.join(", ")}: ${t.status} ${t.text}`);
  return { secretId: t.body.secretId, accessorId: t.body.accessorId };
}
