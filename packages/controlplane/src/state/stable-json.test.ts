import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stableJson } from "./stable-json.js";

/** The same value with every object's keys inserted in reverse order. */
function reverseKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reverseKeys);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(
      Object.entries(v)
        .reverse()
        .map(([k, x]) => [k, reverseKeys(x)]),
    );
  }
  return v;
}

describe("stableJson", () => {
  it("sorts object keys recursively and keeps array order", () => {
    expect(stableJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });

  it("sorts by code unit, not locale", () => {
    expect(stableJson({ b: 1, B: 2, a: 3, é: 4, "10": 5, "9": 6 })).toBe(
      '{"10":5,"9":6,"B":2,"a":3,"b":1,"é":4}',
    );
  });

  it("skips undefined members like JSON.stringify", () => {
    expect(stableJson({ a: undefined, b: 1 })).toBe('{"b":1}');
  });

  it("keeps a __proto__ key as a key", () => {
    const v = JSON.parse('{"__proto__":{"x":1},"a":2}');
    expect(stableJson(v)).toBe('{"__proto__":{"x":1},"a":2}');
  });

  it("refuses what JSON cannot carry instead of writing null", () => {
    for (const bad of [[undefined], Number.NaN, Number.POSITIVE_INFINITY, () => 1, 1n, Symbol("s")]) {
      expect(() => stableJson(bad)).toThrow(TypeError);
    }
    expect(() => stableJson({ a: [1, undefined] })).toThrow(/array element 1/);
  });

  it("round-trips any JSON value", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(JSON.parse(stableJson(v))).toEqual(JSON.parse(JSON.stringify(v)));
      }),
    );
  });

  it("does not depend on key insertion order", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(stableJson(reverseKeys(v))).toBe(stableJson(v));
      }),
    );
  });
});
