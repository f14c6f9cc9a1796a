import { describe, expect, it } from "vitest";
import { assignLayers, edgePath, layoutGraph } from "./layout.js";

const e = (source: string, destination: string) => ({ source, destination });

describe("assignLayers", () => {
  it("puts callers left of callees by the longest call path", () => {
    const l = assignLayers(["web", "api", "books"], [e("web", "api"), e("api", "books"), e("web", "books")]);
    expect(Object.fromEntries(l)).toEqual({ web: 0, api: 1, books: 2 });
  });
  it("survives cycles and self-calls, and ignores edges to unknown nodes", () => {
    const l = assignLayers(
      ["a", "b", "c"],
      [e("a", "b"), e("b", "c"), e("c", "a"), e("b", "b"), e("x", "a")],
    );
    expect(Object.fromEntries(l)).toEqual({ a: 0, b: 1, c: 2 });
  });
  it("places unconnected nodes in the first layer", () => {
    expect(Object.fromEntries(assignLayers(["z", "y"], []))).toEqual({ y: 0, z: 0 });
  });
});

describe("layoutGraph", () => {
  const opts = { width: 1000, height: 600, margin: 100 };
  it("is deterministic whatever the input order", () => {
    const a = layoutGraph(["c", "a", "b"], [e("a", "b"), e("b", "c")], opts);
    const b = layoutGraph(["b", "c", "a"], [e("b", "c"), e("a", "b")], opts);
    expect([...a.nodes].sort()).toEqual([...b.nodes].sort());
  });
  it("spreads layers over the width and keeps every node inside the margins", () => {
    const l = layoutGraph(
      ["web", "api", "books", "db", "auth"],
      [e("web", "api"), e("api", "books"), e("books", "db"), e("web", "auth")],
      opts,
    );
    expect(l.nodes.get("web")?.x).toBe(100);
    expect(l.nodes.get("db")?.x).toBe(900);
    for (const p of l.nodes.values()) {
      expect(p.x).toBeGreaterThanOrEqual(100);
      expect(p.x).toBeLessThanOrEqual(900);
      expect(p.y).toBeGreaterThanOrEqual(100);
      expect(p.y).toBeLessThanOrEqual(500);
    }
  });
  it("does not put a skipped middle node on the line of a call that skips it", () => {
    const l = layoutGraph(
      ["web", "api", "books"],
      [e("web", "api"), e("api", "books"), e("web", "books")],
      opts,
    );
    const web = l.nodes.get("web")!;
    const api = l.nodes.get("api")!;
    const books = l.nodes.get("books")!;
    expect(web.y).toBe(books.y);
    expect(Math.abs(api.y - web.y)).toBeGreaterThan(50);
  });
  it("centres a single node", () => {
    expect(layoutGraph(["solo"], [], opts).nodes.get("solo")).toEqual({ x: 500, y: 300, layer: 0 });
  });
});

describe("edgePath", () => {
  it("starts and ends outside the nodes' radius and bends opposite edges apart", () => {
    const ab = edgePath({ x: 0, y: 0 }, { x: 100, y: 0 }, 10);
    const ba = edgePath({ x: 100, y: 0 }, { x: 0, y: 0 }, 10);
    expect(ab.d.startsWith("M10 0 Q")).toBe(true);
    expect(ab.labelY).toBeLessThan(0);
    expect(ba.labelY).toBeGreaterThan(0);
  });
  it("draws a loop for a self-call", () => {
    const p = edgePath({ x: 50, y: 50 }, { x: 50, y: 50 }, 10);
    expect(p.d).toContain("C");
    expect(p.labelY).toBeLessThan(50);
  });
});
