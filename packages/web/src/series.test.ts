import { describe, expect, it } from "vitest";
import { Series, sparklinePath } from "./series.js";

describe("Series", () => {
  it("keeps the newest points up to its capacity", () => {
    const s = new Series(3);
    for (let i = 1; i <= 5; i++) s.push(i * 1000, i);
    expect(s.points.map((p) => p.v)).toEqual([3, 4, 5]);
    expect(s.last()).toBe(5);
  });
  it("stores NaN as no data and finds the last real value", () => {
    const s = new Series(4);
    s.push(1, 7);
    s.push(2, Number.NaN);
    s.push(3, null);
    expect(s.points.map((p) => p.v)).toEqual([7, null, null]);
    expect(s.last()).toBe(7);
  });
  it("refuses a capacity below 2", () => {
    expect(() => new Series(1)).toThrow();
  });
});

describe("sparklinePath", () => {
  it("puts the newest point at the right edge and scales 0..max", () => {
    expect(sparklinePath([0, 5, 10], { width: 100, height: 20, slots: 3, pad: 0 })).toBe(
      "M0 20 L50 10 L100 0",
    );
  });
  it("right-aligns a short series in its slots", () => {
    expect(sparklinePath([10, 10], { width: 100, height: 20, slots: 5, pad: 0, max: 10 })).toBe(
      "M75 0 L100 0",
    );
  });
  it("leaves a gap for no data instead of drawing zero", () => {
    expect(sparklinePath([1, null, 1], { width: 20, height: 10, slots: 3, pad: 0, max: 1 })).toBe(
      "M0 0 M20 0",
    );
  });
  it("draws all-zero as a flat line at the bottom, fixed bounds clamp", () => {
    expect(sparklinePath([0, 0], { width: 10, height: 10, slots: 2, pad: 1 })).toBe("M0 9 L10 9");
    expect(sparklinePath([2], { width: 10, height: 10, slots: 1, pad: 0, min: 0, max: 1 })).toBe("M0 0");
    expect(sparklinePath([null, null], { width: 10, height: 10, slots: 2 })).toBe("");
  });
});
