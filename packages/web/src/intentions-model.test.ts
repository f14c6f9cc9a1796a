import { describe, expect, it } from "vitest";
import {
  describePermission,
  draftOf,
  type IntentionResource,
  isIntention,
  move,
  precedenceRows,
  resourceOf,
  sourcesByPrecedence,
} from "./intentions-model.js";

const api: IntentionResource = {
  kind: "Intention",
  name: "api",
  sources: [
    { name: "*", action: "deny" },
    { name: "web", action: "allow" },
    {
      name: "admin",
      permissions: [
        { action: "allow", http: { pathPrefix: "/admin", methods: ["GET", "HEAD"] } },
        { action: "deny", http: { headers: [{ name: "x-env", exact: "prod" }] } },
      ],
    },
  ],
};

describe("precedence", () => {
  it("ranks exact names (in order) before the wildcard", () => {
    expect(sourcesByPrecedence(api.sources).map((s) => s.name)).toEqual(["web", "admin", "*"]);
  });
  it("lists rows by destination, closing with the default policy when there is no wildcard", () => {
    const books: IntentionResource = {
      kind: "Intention",
      name: "books",
      sources: [{ name: "web", action: "allow" }],
    };
    const rows = precedenceRows([books, api], "deny");
    expect(rows.map((r) => [r.destination, r.rank, r.source, r.action])).toEqual([
      ["api", 1, "web", "allow"],
      ["api", 2, "admin", "L7"],
      ["api", 3, "*", "deny"],
      ["books", 1, "web", "allow"],
      ["books", 2, "(any other)", "deny"],
    ]);
    expect(rows[1]?.rules).toEqual(["allow GET,HEAD pathPrefix /admin", "deny header x-env exact prod"]);
    expect(rows[4]?.isDefault).toBe(true);
  });
  it("describes a permission", () => {
    expect(describePermission({ action: "allow", http: { pathExact: "/x" } })).toBe("allow pathExact /x");
  });
});

describe("the form's draft", () => {
  it("round-trips a resource, keeping L7 permissions untouched", () => {
    expect(resourceOf(draftOf(api))).toEqual(api);
  });
  it("trims names and turns a plain row into an action", () => {
    expect(resourceOf({ destination: " api ", sources: [{ name: " web ", action: "allow" }] })).toEqual({
      kind: "Intention",
      name: "api",
      sources: [{ name: "web", action: "allow" }],
    });
  });
  it("does not validate: an invalid name goes to the API as typed", () => {
    expect(
      resourceOf({ destination: "api", sources: [{ name: "Bad Name", action: "deny" }] }).sources[0]?.name,
    ).toBe("Bad Name");
  });
  it("moves rows within bounds", () => {
    expect(move([1, 2, 3], 0, 1)).toEqual([2, 1, 3]);
    expect(move([1, 2, 3], 2, -1)).toEqual([1, 3, 2]);
    expect(move([1, 2, 3], 0, -1)).toEqual([1, 2, 3]);
  });
  it("recognises intentions", () => {
    expect(isIntention(api)).toBe(true);
    expect(isIntention({ kind: "Route", name: "api", sources: [] })).toBe(false);
    expect(isIntention(null)).toBe(false);
  });
});
