import { describe, expect, it } from "vitest";
import { compileMatches, firstMatch, hostMatches, hostOf } from "./route-match.js";

describe("route matching", () => {
  it("extracts the host of an authority", () => {
    expect(hostOf("Web.Test:8080")).toBe("web.test");
    expect(hostOf("web.test.")).toBe("web.test");
    expect(hostOf("[::1]:443")).toBe("[::1]");
    expect(hostOf(undefined)).toBe("");
  });

  it("matches hosts exactly, by wildcard (one or more labels) or any", () => {
    expect(hostMatches("*", "")).toBe(true);
    expect(hostMatches("*.example.com", "a.example.com")).toBe(true);
    expect(hostMatches("*.example.com", "a.b.example.com")).toBe(true);
    expect(hostMatches("*.example.com", "example.com")).toBe(false);
    expect(hostMatches("*.example.com", "evilexample.com")).toBe(false);
    expect(hostMatches("a.test", "a.test")).toBe(true);
  });

  it("takes the first route whose host and path match", () => {
    const t = compileMatches([
      { host: "a.test", pathExact: "/x" },
      { host: "a.test", pathRegex: "/items/[0-9]+" },
      { host: "*", pathPrefix: "/api/" },
      { host: "a.test" },
    ]);
    expect(firstMatch(t, "a.test", "/x")?.index).toBe(0);
    expect(firstMatch(t, "a.test", "/x/")?.index).toBe(3);
    expect(firstMatch(t, "a.test", "/items/12")?.index).toBe(1);
    expect(firstMatch(t, "a.test", "/items/12/x")?.index).toBe(3);
    expect(firstMatch(t, "b.test", "/api/v1")?.index).toBe(2);
    expect(firstMatch(t, "b.test", "/other")).toBeUndefined();
  });
});
