/**
 * Serves the built web UI (packages/web/dist) under /ui/ on the API port.
 *
 * The static files are public (the login page must load before there is a
 * token); every API call the UI makes carries the token as any client does.
 * Safety of the path, in this order: only GET/HEAD; the raw path is split
 * into segments and each is percent-decoded once; a segment that is empty
 * (`//`), `.`, `..`, or holds `/`, `\` or NUL after decoding is refused
 * (404, never a normalisation); the joined path must still be inside the
 * UI directory (a belt to the braces above); directories are never listed.
 * A path without a file extension that is not a file is an SPA route and
 * gets index.html. Hashed assets (`/ui/assets/*`, Vite names them by
 * content) are cached for a year; index.html is revalidated each time.
 */
import { readFile, stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, join, resolve, sep } from "node:path";

export const UI_PREFIX = "/ui";

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
  ".map": "application/json; charset=utf-8",
};

/** Files above this size are not served (the UI's bundle is a few tens of KiB). */
const MAX_FILE_BYTES = 8 * 1024 * 1024;

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  // Everything is bundled and same-origin: no CDN, no inline script or style.
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
} as const;

export type UiHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

/** Decoded path segments under /ui/, or undefined when the path is not one the UI may serve. */
export function uiPathSegments(rawPath: string): string[] | undefined {
  if (!rawPath.startsWith(`${UI_PREFIX}/`)) return undefined;
  const rest = rawPath.slice(UI_PREFIX.length + 1);
  if (rest === "") return [];
  const out: string[] = [];
  const raw = rest.split("/");
  for (let i = 0; i < raw.length; i++) {
    const r = raw[i] as string;
    // A trailing slash is allowed (`/ui/services/`), an empty segment elsewhere is not.
    if (r === "" && i === raw.length - 1) break;
    let d: string;
    try {
      d = decodeURIComponent(r);
    } catch {
      return undefined;
    }
    if (d === "" || d === "." || d === ".." || /[/\\\0]/.test(d)) return undefined;
    out.push(d);
  }
  return out;
}

/**
 * A request listener part for the UI: returns true when it answered (`/`,
 * `/ui`, `/ui/...`), false to let the API handle the request.
 */
export function createUiHandler(dir: string): UiHandler {
  const root = resolve(dir);
  const index = join(root, "index.html");

  const send = (
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    body: Buffer | string,
    headers: Record<string, string>,
  ) => {
    if (res.headersSent || res.destroyed) return;
    const buf = typeof body === "string" ? Buffer.from(body) : body;
    res.writeHead(status, { ...SECURITY_HEADERS, "content-length": String(buf.length), ...headers });
    res.end(req.method === "HEAD" ? undefined : buf);
  };
  const notFound = (req: IncomingMessage, res: ServerResponse) =>
    send(req, res, 404, "not found\n", {
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-store",
    });

  const serveFile = async (req: IncomingMessage, res: ServerResponse, file: string, immutable: boolean) => {
    const body = await readFile(file);
    const type = CONTENT_TYPES[extname(file).toLowerCase()] ?? "application/octet-stream";
    send(req, res, 200, body, {
      "content-type": type,
      "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
    });
  };

  const serve = async (req: IncomingMessage, res: ServerResponse, segments: string[]) => {
    const file = resolve(root, ...segments);
    // Defence in depth: the segment checks above already keep the path inside the root.
    if (file !== root && !file.startsWith(root + sep)) return notFound(req, res);
    const st = await stat(file).catch(() => undefined);
    if (st?.isFile()) {
      if (st.size > MAX_FILE_BYTES) return notFound(req, res);
      return serveFile(req, res, file, segments[0] === "assets" && segments.length === 2);
    }
    const last = segments[segments.length - 1] ?? "";
    // A missing asset is a 404; a path that looks like a page is a client-side route.
    if (segments[0] === "assets" || extname(last) !== "") return notFound(req, res);
    const hasIndex = await stat(index).then(
      (s) => s.isFile(),
      () => false,
    );
    if (!hasIndex) {
      return send(
        req,
        res,
        503,
        "The web UI is not built: run `npm run build` (it writes packages/web/dist).\n",
        { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
      );
    }
    return serveFile(req, res, index, false);
  };

  return (req, res) => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    if (path !== "/" && path !== UI_PREFIX && !path.startsWith(`${UI_PREFIX}/`)) return false;
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD") {
      // "/" with another method stays the API's (a JSON 404/405 as before).
      if (path === "/") return false;
      send(req, res, 405, "method not allowed\n", {
        "content-type": "text/plain; charset=utf-8",
        allow: "GET, HEAD",
        "cache-control": "no-store",
      });
      return true;
    }
    if (path === "/" || path === UI_PREFIX) {
      send(req, res, 302, "", { location: `${UI_PREFIX}/`, "cache-control": "no-store" });
      return true;
    }
    const segments = uiPathSegments(path);
    if (!segments) {
      notFound(req, res);
      return true;
    }
    serve(req, res, segments).catch(() => {
      if (!res.headersSent) notFound(req, res);
      else res.destroy();
    });
    return true;
  };
}
