import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fnv1a64Hex, hash32 } from "./hash.js";

/** A slow, obviously-correct FNV-1a 64 over TextEncoder's bytes. */
function referenceFnv1a64(s: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(s)) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, "0");
}

describe("ring hash function", () => {
  it("is FNV-1a 64 on the published test vectors", () => {
    expect(fnv1a64Hex("")).toBe("cbf29ce484222325");
    expect(fnv1a64Hex("a")).toBe("af63dc4c8601ec8c");
    expect(fnv1a64Hex("foobar")).toBe("85944171f73967e8");
  });

  it("matches a BigInt reference over UTF-8 for any string, lone surrogates included", () => {
    const units = fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 40 });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: "binary" }),
          units.map((u) => String.fromCharCode(...u)),
        ),
        (s) => {
          expect(fnv1a64Hex(s)).toBe(referenceFnv1a64(s));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("hashes long keys (past the shared buffer) the same way", () => {
    const long = "x€😀".repeat(3000);
    expect(fnv1a64Hex(long)).toBe(referenceFnv1a64(long));
    expect(fnv1a64Hex("short")).toBe(referenceFnv1a64("short"));
  });

  // Golden values: sidecars of different versions must agree on where a session goes.
  // A change here is a breaking change for session affinity.
  it("gives the pinned 32-bit values", () => {
    expect(hash32("")).toBe(3323002737);
    expect(hash32("a")).toBe(1987926311);
    expect(hash32("foobar")).toBe(2142452474);
    expect(hash32("user-42")).toBe(4284173518);
    expect(hash32("ep-0_0")).toBe(4264990692);
    expect(hash32("é☃😀")).toBe(4275440093);
  });

  it("spreads similar keys evenly over the 32-bit range", () => {
    const buckets = new Array<number>(16).fill(0);
    for (let i = 0; i < 16_000; i++) {
      const h = hash32(`ep-${i % 100}_${Math.floor(i / 100)}`);
      expect(Number.isInteger(h) && h >= 0 && h < 2 ** 32).toBe(true);
      buckets[h >>> 28]!++;
    }
    for (const b of buckets) expect(Math.abs(b - 1000)).toBeLessThan(150);
  });
});
