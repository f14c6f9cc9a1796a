/**
 * Request bodies: JSON only, at most `limit` bytes, enforced while streaming
 * (a declared Content-Length over the limit is refused before reading; a
 * chunked body is cut the moment it passes the limit, never buffered past it).
 */
import type { IncomingMessage } from "node:http";
import { weftError } from "@weft/core";
import type { z } from "zod";

export const MAX_BODY_BYTES = 1024 * 1024;

/** True when the request carries a body (Content-Length > 0 or chunked). */
export function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers["content-length"];
  if (cl !== undefined) return cl !== "0";
  return req.headers["transfer-encoding"] !== undefined;
}

function isJsonType(ct: string | undefined): boolean {
  if (ct === undefined) return false;
  const media = (ct.split(";")[0] ?? "").trim().toLowerCase();
  return media === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(media);
}

/** Reads and parses a JSON body; `undefined` when there is none. Throws 413/415/400 as catalogued. */
export async function readJsonBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<unknown> {
  if (!hasBody(req)) return undefined;
  const ct = req.headers["content-type"];
  if (!isJsonType(ct)) {
    throw weftError("WEFT_ERR_UNSUPPORTED_MEDIA_TYPE", { contentType: (ct ?? "(none)").slice(0, 100) });
  }
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) throw weftError("WEFT_ERR_BODY_TOO_LARGE", { limit });
  const buf = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("aborted", onAborted);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        chunks.length = 0;
        req.pause();
        reject(weftError("WEFT_ERR_BODY_TOO_LARGE", { limit }));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onAborted = () => {
      cleanup();
      reject(weftError("WEFT_ERR_VALIDATION", { detail: "request body aborted by the client" }));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("aborted", onAborted);
  });
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(buf);
  } catch {
    throw weftError("WEFT_ERR_INVALID_JSON", { detail: "body is not valid UTF-8" });
  }
  if (text.trim().length === 0) throw weftError("WEFT_ERR_INVALID_JSON", { detail: "body is empty" });
  try {
    return JSON.parse(text);
  } catch (e) {
    throw weftError("WEFT_ERR_INVALID_JSON", { detail: describeJsonError(e, text) });
  }
}

/** The parser's message plus the line and column of the error when it names a position. */
function describeJsonError(e: unknown, text: string): string {
  const msg = (e instanceof Error ? e.message : String(e)).slice(0, 200);
  const m = /position (\d+)/.exec(msg);
  if (m) {
    const pos = Number(m[1]);
    const before = text.slice(0, pos);
    const line = before.split("\n").length;
    const col = pos - before.lastIndexOf("\n");
    return `${msg.replace(/\s*\(line \d+ column \d+\)$/, "")} (line ${line}, column ${col})`;
  }
  if (/Unexpected end of JSON input/.test(msg)) return `${msg} at position ${text.length}`;
  return msg;
}

/** Formats zod issues as "path: message; ..." naming each field. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], prefix = ""): string {
  return issues
    .slice(0, 20)
    .map((i) => {
      const path = formatPath(i.path);
      const where = prefix ? (path ? `${prefix}.${path}` : prefix) : path || "(body)";
      return `${where}: ${i.message}`;
    })
    .join("; ");
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out.length === 0 ? String(p) : `.${String(p)}`;
  }
  return out;
}

/** Parses `body` with `schema`, throwing 400 WEFT_ERR_VALIDATION naming the fields. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  if (body === undefined)
    throw weftError("WEFT_ERR_VALIDATION", { detail: "(body): a JSON body is required" });
  const r = schema.safeParse(body);
  if (!r.success) throw weftError("WEFT_ERR_VALIDATION", { detail: formatIssues(r.error.issues) });
  return r.data;
}
