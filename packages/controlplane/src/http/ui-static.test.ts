import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUiHandler, uiPathSegments } from "./ui-static.js";

let root: string;
let dist: string;
let server: Server;
let port = 0;

/** A raw request (no client-side normalisation of the path). */
function get(
  path: string,
  method = "GET",
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "weft-ui-"));
  dist = join(root, "dist");
  mkdirSync(join(dist, "assets"), { recursive: true });
  writeFileSync(join(dist, "index.html"), "<!doctype html><title>Weft</title>");
  writeFileSync(join(dist, "assets", "index-abc123.js"), "console.log(1)");
  writeFileSync(join(dist, "assets", "index-abc123.css"), "body{}");
  // A file beside the UI directory that traversal must never reach.
  writeFileSync(join(root, "secret.txt"), "secret");
  const ui = createUiHandler(dist);
  server = createServer((req, res) => {
    if (ui(req, res)) return;
    res.writeHead(404, { "content-type": "application/json" });
    res.end('{"api":true}');
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(root, { recursive: true, force: true });
});

describe("UI static files", () => {
  it("serves index.html for /ui/ and for client-side routes, revalidated, with a CSP", async () => {
    for (const p of ["/ui/", "/ui/services", "/ui/services/books", "/ui/login/"]) {
      const r = await get(p);
      expect(r.status, p).toBe(200);
      expect(r.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(r.headers["cache-control"]).toBe("no-cache");
      expect(r.headers["content-security-policy"]).toContain("default-src 'self'");
      expect(r.headers["x-content-type-options"]).toBe("nosniff");
      expect(r.body).toContain("<title>Weft</title>");
    }
  });

  it("serves hashed assets with their type and a long cache", async () => {
    const js = await get("/ui/assets/index-abc123.js");
    expect(js.status).toBe(200);
    expect(js.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(js.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(js.body).toBe("console.log(1)");
    const css = await get("/ui/assets/index-abc123.css");
    expect(css.headers["content-type"]).toBe("text/css; charset=utf-8");
  });

  it("answers HEAD without a body, and 405 for other methods", async () => {
    const head = await get("/ui/assets/index-abc123.js", "HEAD");
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe("14");
    expect(head.body).toBe("");
    const post = await get("/ui/services", "POST");
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe("GET, HEAD");
  });

  it("redirects / and /ui to /ui/, and leaves the API's paths (and / with other methods) alone", async () => {
    for (const p of ["/", "/ui", "/?x=1"]) {
      const r = await get(p);
      expect(r.status, p).toBe(302);
      expect(r.headers.location).toBe("/ui/");
    }
    expect((await get("/v1/status")).body).toBe('{"api":true}');
    expect((await get("/uix")).body).toBe('{"api":true}');
    expect((await get("/", "POST")).body).toBe('{"api":true}');
  });

  it.each([
    "/ui/../secret.txt",
    "/ui/%2e%2e/secret.txt",
    "/ui/assets/..%2F..%2Fsecret.txt",
    "/ui/..%5Csecret.txt",
    "/ui//etc/passwd",
    "/ui/assets/%00x.js",
    "/ui/./index.html",
    "/ui/%E0%A4%A",
  ])("refuses %s with 404, never a file outside the UI", async (p) => {
    const r = await get(p);
    expect(r.status).toBe(404);
    expect(r.body).not.toContain("secret");
  });

  it("404s a missing asset or file (no SPA fallback for them) and never lists a directory", async () => {
    expect((await get("/ui/assets/missing.js")).status).toBe(404);
    expect((await get("/ui/favicon.ico")).status).toBe(404);
    expect((await get("/ui/assets/")).status).toBe(404);
    expect((await get("/ui/assets")).status).toBe(404);
  });

  it("says the UI is not built when index.html is missing", async () => {
    const empty = mkdtempSync(join(tmpdir(), "weft-ui-empty-"));
    const ui = createUiHandler(join(empty, "dist"));
    const s = createServer((req, res) => {
      if (!ui(req, res)) res.end("api");
    });
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const saved = port;
    port = (s.address() as AddressInfo).port;
    try {
      const r = await get("/ui/");
      expect(r.status).toBe(503);
      expect(r.body).toContain("npm run build");
    } finally {
      port = saved;
      await new Promise<void>((r) => s.close(() => r()));
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe("uiPathSegments", () => {
  it("decodes once and refuses dot, empty and separator segments", () => {
    expect(uiPathSegments("/ui/")).toEqual([]);
    expect(uiPathSegments("/ui/a/b/")).toEqual(["a", "b"]);
    expect(uiPathSegments("/ui/a%20b")).toEqual(["a b"]);
    expect(uiPathSegments("/ui/%252e%252e")).toEqual(["%2e%2e"]);
    expect(uiPathSegments("/ui/a//b")).toBeUndefined();
    expect(uiPathSegments("/ui/a/%2F")).toBeUndefined();
    expect(uiPathSegments("/v1/x")).toBeUndefined();
  });
});
