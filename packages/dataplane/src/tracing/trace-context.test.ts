import { describe, expect, it } from "vitest";
import type { HeaderMap } from "../http/types.js";
import {
  extract,
  formatTraceparent,
  inject,
  parseB3Single,
  parseTraceparent,
  type TraceContext,
} from "./trace-context.js";

const T = "4bf92f3577b34da6a3ce929d0e0e4736";
const S = "00f067aa0ba902b7";
const S2 = "b7ad6b7169203331";

describe("parseTraceparent", () => {
  it("reads a valid version 00 header, sampled or not", () => {
    expect(parseTraceparent(`00-${T}-${S}-01`)).toEqual({ traceId: T, spanId: S, sampled: true });
    expect(parseTraceparent(`00-${T}-${S}-00`)).toEqual({ traceId: T, spanId: S, sampled: false });
    // Other flag bits do not matter; only bit 0 is "sampled".
    expect(parseTraceparent(`00-${T}-${S}-03`)?.sampled).toBe(true);
    expect(parseTraceparent(` 00-${T}-${S}-01 `)?.traceId).toBe(T);
  });

  it("reads a future version as 00, with or without extra fields", () => {
    expect(parseTraceparent(`cc-${T}-${S}-01`)).toEqual({ traceId: T, spanId: S, sampled: true });
    expect(parseTraceparent(`cc-${T}-${S}-01-what-comes-next`)?.spanId).toBe(S);
  });

  it.each([
    ["absent", undefined],
    ["empty", ""],
    ["version ff", `ff-${T}-${S}-01`],
    ["version 00 with extra fields", `00-${T}-${S}-01-extra`],
    ["future version glued to the flags", `cc-${T}-${S}-01x`],
    ["uppercase hex", `00-${T.toUpperCase()}-${S}-01`],
    ["all-zero trace id", `00-${"0".repeat(32)}-${S}-01`],
    ["all-zero span id", `00-${T}-${"0".repeat(16)}-01`],
    ["short trace id", `00-${T.slice(1)}-${S}-01`],
    ["wrong separators", `00_${T}_${S}_01`],
    ["non-hex flags", `00-${T}-${S}-zz`],
    ["non-hex version", `0g-${T}-${S}-01`],
    ["a header injection attempt", `00-${T}-${S}-01\r\nx-evil: 1`],
  ])("ignores %s", (_what, value) => {
    expect(parseTraceparent(value)).toBeUndefined();
  });

  it("formats what it parses", () => {
    const ctx: TraceContext = { traceId: T, spanId: S, sampled: true };
    expect(formatTraceparent(ctx)).toBe(`00-${T}-${S}-01`);
    expect(parseTraceparent(formatTraceparent({ ...ctx, sampled: false }))).toEqual({
      ...ctx,
      sampled: false,
    });
  });
});

describe("parseB3Single", () => {
  it.each([
    [`${T}-${S}`, { ctx: { traceId: T, spanId: S, sampled: true } }],
    [`${T}-${S}-1`, { ctx: { traceId: T, spanId: S, sampled: true } }],
    [`${T}-${S}-0`, { ctx: { traceId: T, spanId: S, sampled: false } }],
    [`${T}-${S}-d`, { ctx: { traceId: T, spanId: S, sampled: true } }],
    [`${T}-${S}-1-${S2}`, { ctx: { traceId: T, spanId: S, sampled: true } }],
    // A 64-bit trace id is left-padded to 128 bits.
    [
      `a3ce929d0e0e4736-${S}-1`,
      { ctx: { traceId: `${"0".repeat(16)}a3ce929d0e0e4736`, spanId: S, sampled: true } },
    ],
    ["0", { sampled: false }],
    ["1", { sampled: true }],
    ["d", { sampled: true }],
  ])("reads %s", (value, expected) => {
    expect(parseB3Single(value)).toEqual(expected);
  });

  it.each([
    ["garbage", "hello"],
    ["bad sampling", `${T}-${S}-x`],
    ["bad parent", `${T}-${S}-1-nothex`],
    ["too many fields", `${T}-${S}-1-${S2}-extra`],
    ["zero trace id", `${"0".repeat(32)}-${S}-1`],
    ["odd-length trace id", `${T.slice(2)}-${S}-1`],
    ["empty", ""],
  ])("ignores %s", (_what, value) => {
    expect(parseB3Single(value)).toEqual({});
  });
});

describe("extract", () => {
  it("prefers W3C over B3 and keeps tracestate", () => {
    const e = extract({
      traceparent: `00-${T}-${S}-01`,
      tracestate: "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7",
      b3: `${"1".repeat(32)}-${S2}-0`,
    });
    expect(e).toEqual({
      parent: {
        traceId: T,
        spanId: S,
        sampled: true,
        traceState: "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7",
      },
      b3: "single",
    });
  });

  it("falls back to B3 when traceparent is invalid, and drops the tracestate that came with it", () => {
    const e = extract({ traceparent: "00-bogus", tracestate: "a=b", b3: `${T}-${S}-1` });
    expect(e.parent).toEqual({ traceId: T, spanId: S, sampled: true });
  });

  it("reads multi-header B3, the debug flag meaning sampled", () => {
    expect(extract({ "x-b3-traceid": T, "x-b3-spanid": S, "x-b3-sampled": "0" })).toEqual({
      parent: { traceId: T, spanId: S, sampled: false },
      b3: "multi",
    });
    expect(extract({ "x-b3-traceid": T, "x-b3-spanid": S, "x-b3-flags": "1" }).parent?.sampled).toBe(true);
    expect(extract({ "x-b3-sampled": "0" })).toEqual({ sampled: false, b3: "multi" });
  });

  it("ignores repeated traceparent fields, half a B3 context and oversized or binary tracestate", () => {
    expect(extract({ traceparent: [`00-${T}-${S}-01`, `00-${T}-${S2}-01`] }).parent).toBeUndefined();
    expect(extract({ "x-b3-traceid": T }).parent).toBeUndefined();
    expect(
      extract({ traceparent: `00-${T}-${S}-01`, tracestate: "a=b\u0000" }).parent?.traceState,
    ).toBeUndefined();
    const huge = `a=${"x".repeat(10_000)}`;
    expect(extract({ traceparent: `00-${T}-${S}-01`, tracestate: huge }).parent?.traceState).toBeUndefined();
  });

  it("joins repeated tracestate fields into one list", () => {
    expect(extract({ traceparent: `00-${T}-${S}-01`, tracestate: ["a=1", "b=2"] }).parent?.traceState).toBe(
      "a=1,b=2",
    );
  });

  it("finds nothing in a request without trace headers", () => {
    expect(extract({ "content-type": "text/plain" })).toEqual({});
  });
});

describe("inject", () => {
  const child: TraceContext = { traceId: T, spanId: S2, sampled: true };

  it("always writes traceparent and leaves B3 alone when the request had none", () => {
    const h: HeaderMap = { accept: "*/*" };
    inject(h, child, undefined, S);
    expect(h).toEqual({ accept: "*/*", traceparent: `00-${T}-${S2}-01` });
  });

  it("answers in the single B3 form with the parent span id", () => {
    const h: HeaderMap = { b3: `${T}-${S}-1` };
    inject(h, child, "single", S);
    expect(h.b3).toBe(`${T}-${S2}-1-${S}`);
    expect(h.traceparent).toBe(`00-${T}-${S2}-01`);
  });

  it("answers in the multi B3 form, replacing a debug flag by an explicit decision", () => {
    const h: HeaderMap = { "x-b3-traceid": T, "x-b3-spanid": S, "x-b3-flags": "1" };
    inject(h, { ...child, sampled: false }, "multi", S);
    expect(h).toEqual({
      "x-b3-traceid": T,
      "x-b3-spanid": S2,
      "x-b3-sampled": "0",
      "x-b3-parentspanid": S,
      traceparent: `00-${T}-${S2}-00`,
    });
  });

  it("passes tracestate on, and removes one the context does not carry", () => {
    const h: HeaderMap = { tracestate: "stale=1" };
    inject(h, { ...child, traceState: "k=v" }, undefined, undefined);
    expect(h.tracestate).toBe("k=v");
    inject(h, child, undefined, undefined);
    expect(h.tracestate).toBeUndefined();
  });

  it("round-trips: what inject writes, extract reads back", () => {
    for (const form of [undefined, "single", "multi"] as const) {
      const h: HeaderMap = {};
      inject(h, child, form, S);
      expect(extract(h).parent).toEqual(child);
    }
  });
});
