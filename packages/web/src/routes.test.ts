import { describe, expect, it } from "vitest";
import { hrefOf, parseRoute, type Route } from "./routes.js";

describe("routes", () => {
  it.each<[string, Route]>([
    ["/ui/", { view: "services" }],
    ["/ui/services", { view: "services" }],
    ["/ui/services/books", { view: "service", name: "books" }],
    ["/ui/topology", { view: "topology" }],
    ["/ui/intentions", { view: "intentions" }],
    ["/ui/config", { view: "config" }],
    ["/ui/config/Route", { view: "config", kind: "Route" }],
    ["/ui/ca", { view: "ca" }],
    ["/ui/login", { view: "login" }],
    ["/ui/services/a/b", { view: "not-found", path: "/ui/services/a/b" }],
    ["/ui/%E0%A4%A", { view: "not-found", path: "/ui/%E0%A4%A" }],
  ])("%s", (path, want) => expect(parseRoute(path)).toEqual(want));

  it("round-trips every view through its href", () => {
    const all: Route[] = [
      { view: "services" },
      { view: "service", name: "a b" },
      { view: "topology" },
      { view: "intentions" },
      { view: "config", kind: "Split" },
      { view: "ca" },
      { view: "login" },
    ];
    for (const r of all) expect(parseRoute(hrefOf(r))).toEqual(r);
  });
});
