import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseSpiffeId, parseWorkloadId, SPIFFE_ID_MAX_BYTES, workloadId } from "./spiffe.js";

describe("parseSpiffeId (SPIFFE ID spec)", () => {
  it.each([
    ["spiffe://weft.local", { trustDomain: "weft.local", segments: [] }],
    [
      "spiffe://weft.local/ns/default/svc/api",
      { trustDomain: "weft.local", segments: ["ns", "default", "svc", "api"] },
    ],
    ["spiffe://a_b-c.9/x.y/Z_1", { trustDomain: "a_b-c.9", segments: ["x.y", "Z_1"] }],
  ])("accepts %s", (text, id) => {
    expect(parseSpiffeId(text)).toEqual({ ok: true, id });
  });

  it.each([
    ["https://weft.local/ns/default/svc/api", "scheme"],
    ["SPIFFE://weft.local/x", "scheme"],
    ["spiffe://", "trust domain is empty"],
    ["spiffe:///x", "trust domain is empty"],
    ["spiffe://weft.local:8443/x", "port"],
    ["spiffe://user@weft.local/x", "userinfo"],
    ["spiffe://Weft.Local/x", "trust domain has characters"],
    ["spiffe://weft.local/x?y=1", "query"],
    ["spiffe://weft.local/x#frag", "fragment"],
    ["spiffe://weft.local/", "empty segment"],
    ["spiffe://weft.local//x", "empty segment"],
    ["spiffe://weft.local/x/", "empty segment"],
    ["spiffe://weft.local/./x", "dot segment"],
    ["spiffe://weft.local/x/..", "dot segment"],
    ["spiffe://weft.local/a%2Fb", "path has characters"],
    ["spiffe://weft.local/a b", "path has characters"],
    [`spiffe://weft.local/${"a".repeat(SPIFFE_ID_MAX_BYTES)}`, "longer than"],
  ])("refuses %s (%s)", (text, reason) => {
    const r = parseSpiffeId(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain(reason);
  });

  it("never throws on arbitrary strings", () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 300 }),
        (s) => typeof parseSpiffeId(`spiffe://${s}`).ok === "boolean",
      ),
    );
  });
});

describe("parseWorkloadId", () => {
  it("reads trust domain, namespace and service", () => {
    expect(parseWorkloadId("spiffe://weft.local/ns/default/svc/api")).toEqual({
      ok: true,
      id: { trustDomain: "weft.local", namespace: "default", service: "api" },
    });
  });

  it.each([
    ["spiffe://weft.local", "path is not"],
    ["spiffe://weft.local/ns/default/svc", "path is not"],
    ["spiffe://weft.local/ns/default/svc/api/extra", "path is not"],
    ["spiffe://weft.local/svc/api/ns/default", "path is not"],
    ["spiffe://weft.local/ns/default/svc/API", "not a DNS label"],
    ["spiffe://weft.local/ns/de_fault/svc/api", "not a DNS label"],
  ])("refuses %s", (text, reason) => {
    const r = parseWorkloadId(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain(reason);
  });

  it("round-trips workloadId", () => {
    expect(parseWorkloadId(workloadId("corp.example", "web"))).toEqual({
      ok: true,
      id: { trustDomain: "corp.example", namespace: "default", service: "web" },
    });
  });
});
