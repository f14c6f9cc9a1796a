import { describe, expect, it } from "vitest";
import { canonicalPath } from "../authz/canonical-path.js";
import type { HttpRouteConfig } from "../snapshot.js";
import { applyHeaderOps, type MutableHeaders } from "./header-ops.js";
import { redirectLocation, rewritePath } from "./rewrite.js";
import { compileRouteTable, type RouteRequest } from "./route-table.js";

function req(method: string, target: string, headers: Record<string, string> = {}): RouteRequest {
  const c = canonicalPath(target);
  if (!c.ok) throw new Error(c.reason);
  return { method, path: c.path, query: c.query, headers: (n) => headers[n] };
}

const fwd = (cluster: string) => ({ forward: { cluster } });

describe("compileRouteTable", () => {
  const routes: HttpRouteConfig[] = [
    {
      name: "canary",
      match: { pathPrefix: "/api", headers: [{ name: "x-canary", exact: "1", invert: false }] },
      ...fwd("api.v2"),
    },
    { match: { pathPrefix: "/api", query: [{ name: "beta", present: true }] }, ...fwd("api.beta") },
    { match: { pathExact: "/old" }, redirect: { path: "/new", statusCode: 301 } },
    { match: { pathRegex: "/items/[0-9]+", methods: ["DELETE"] }, directResponse: { status: 405 } },
    { match: { pathPrefix: "/search", query: [{ name: "q", regex: "[a-z]+" }] }, ...fwd("search") },
  ];
  const table = compileRouteTable(routes);

  it("takes the first matching route, in declared order", () => {
    expect(table.match(req("GET", "/api/x", { "x-canary": "1" }))?.index).toBe(0);
    expect(table.match(req("GET", "/api/x?beta", { "x-canary": "1" }))?.index).toBe(0);
    expect(table.match(req("GET", "/api/x?beta"))?.index).toBe(1);
    expect(table.match(req("GET", "/api/x"))).toBeUndefined();
  });

  it("matches on the canonical path, methods and query values (decoded)", () => {
    expect(table.match(req("GET", "/a/../old"))?.index).toBe(2);
    expect(table.match(req("delete", "/items/42"))?.index).toBe(3);
    expect(table.match(req("GET", "/items/42"))).toBeUndefined();
    expect(table.match(req("GET", "/search?q=abc"))?.index).toBe(4);
    expect(table.match(req("GET", "/search?q=ABC&q=def"))?.index).toBe(4);
    expect(table.match(req("GET", "/search?q=ab%20c"))).toBeUndefined();
    expect(table.match(req("GET", "/search?q=ab+c"))).toBeUndefined();
  });

  it("describes routes and traces up to the first match", () => {
    const t = table.trace(req("GET", "/old"));
    expect(t.map((x) => x.matched)).toEqual([false, false, true]);
    expect(t[0]?.route.description).toBe('route[0] "canary" (pathPrefix /api, header x-canary exact "1")');
    expect(t[2]?.route.description).toBe("route[2] (pathExact /old)");
  });

  it("is empty without routes", () => {
    expect(compileRouteTable(undefined).match(req("GET", "/"))).toBeUndefined();
  });
});

describe("rewritePath", () => {
  it("replaces the matched prefix, or the whole path", () => {
    expect(rewritePath({ pathPrefix: "/api/" }, "/v2/", "/api/books")).toBe("/v2/books");
    expect(rewritePath({ pathPrefix: "/api" }, "/", "/api/books")).toBe("/books");
    expect(rewritePath({ pathPrefix: "/" }, "/v2/", "/a")).toBe("/v2/a");
    expect(rewritePath({ pathExact: "/x" }, "/y", "/x")).toBe("/y");
    expect(rewritePath({ pathRegex: "/x.*" }, "/y", "/xz")).toBe("/y");
  });
});

describe("redirectLocation", () => {
  const base = { scheme: "http" as const, authority: "shop:8080", path: "/old/a", query: "?x=1" };
  it("keeps what the redirect does not set", () => {
    expect(redirectLocation({ path: "/new", statusCode: 301 }, {}, base)).toBe("http://shop:8080/new?x=1");
    expect(redirectLocation({ host: "other", statusCode: 302 }, {}, base)).toBe("http://other/old/a?x=1");
    expect(redirectLocation({ host: "other", port: 8443, statusCode: 302 }, {}, base)).toBe(
      "http://other:8443/old/a?x=1",
    );
  });
  it("drops the old port on a scheme change, and default ports", () => {
    expect(redirectLocation({ scheme: "https", statusCode: 308 }, {}, base)).toBe("https://shop/old/a?x=1");
    expect(redirectLocation({ scheme: "https", port: 443, statusCode: 308 }, {}, base)).toBe(
      "https://shop/old/a?x=1",
    );
    expect(redirectLocation({ port: 9000, statusCode: 302 }, {}, { ...base, authority: "[::1]:8080" })).toBe(
      "http://[::1]:9000/old/a?x=1",
    );
  });
  it("rewrites the matched prefix", () => {
    expect(redirectLocation({ prefixRewrite: "/new/", statusCode: 302 }, { pathPrefix: "/old/" }, base)).toBe(
      "http://shop:8080/new/a?x=1",
    );
  });
});

describe("applyHeaderOps", () => {
  it("removes, then sets, then adds", () => {
    const h: MutableHeaders = { a: "1", b: "2", c: ["x", "y"] };
    applyHeaderOps(h, { remove: ["a", "b"], set: { b: "new" }, add: { c: "z", d: "4", b: "more" } });
    expect(h).toEqual({ b: ["new", "more"], c: ["x", "y", "z"], d: "4" });
  });
});
