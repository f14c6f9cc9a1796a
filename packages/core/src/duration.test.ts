import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatDuration, parseDuration } from "./duration.js";

describe("parseDuration", () => {
  it.each([
    ["0", 0],
    ["0s", 0],
    ["250ms", 250],
    ["1s", 1000],
    ["1.5s", 1500],
    ["2m", 120_000],
    ["1h30m", 5_400_000],
    ["1h2m3s4ms", 3_723_004],
    ["24h", 86_400_000],
  ])("%s -> %i ms", (text, ms) => {
    expect(parseDuration(text)).toEqual({ ok: true, ms });
  });

  it.each(["", "5", "s", "1d", "1 s", "-1s", "1s2", "abc", "1e3s", "1h".repeat(40), "100000000h"])(
    "refuses %j",
    (text) => {
      const r = parseDuration(text);
      expect(r.ok).toBe(false);
    },
  );

  it("never throws and round-trips through formatDuration", () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        parseDuration(s);
      }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 * 86_400_000 }), (ms) => {
        expect(parseDuration(formatDuration(ms))).toEqual({ ok: true, ms });
      }),
    );
  });
});
