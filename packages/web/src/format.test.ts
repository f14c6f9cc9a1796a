import { describe, expect, it } from "vitest";
import {
  formatDate,
  formatDuration,
  formatExpiry,
  formatMs,
  formatRate,
  formatRps,
  healthText,
  isProxylessInstance,
  NO_DATA,
  nackText,
  overallHealth,
  rateClass,
} from "./format.js";

describe("formatRps", () => {
  it.each([
    [0, "0"],
    [0.25, "0.25"],
    [3.5, "3.5"],
    [9.999, "10"],
    [12.44, "12.4"],
    [1234.4, "1,234"],
    [null, NO_DATA],
    [Number.NaN, NO_DATA],
  ])("%s -> %s", (v, want) => expect(formatRps(v)).toBe(want));
});

describe("formatRate", () => {
  it.each([
    [1, "100%"],
    [0.9996, "99.9%"],
    [0.95, "95.0%"],
    [0, "0.0%"],
    [null, NO_DATA],
  ])("%s -> %s (never rounds a failure up to 100%%)", (v, want) => expect(formatRate(v)).toBe(want));
});

describe("formatMs", () => {
  it.each([
    [0.42, "0.42 ms"],
    [3.14, "3.1 ms"],
    [120.4, "120 ms"],
    [1250, "1.25 s"],
    [2000, "2 s"],
    [null, NO_DATA],
  ])("%s -> %s", (v, want) => expect(formatMs(v)).toBe(want));
});

describe("formatExpiry", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  it("says how long is left, coarsely", () => {
    expect(formatDuration(45_000)).toBe("45 s");
    expect(formatDuration(12 * 60_000)).toBe("12 min");
    expect(formatDuration(5 * 3600_000)).toBe("5 h");
    expect(formatDuration(3 * 86400_000)).toBe("3 d");
    expect(formatExpiry("2026-01-04T00:00:00Z", now)).toEqual({ text: "in 3 d", level: "ok" });
  });
  it("is 'soon' past half of the lifetime when notBefore is known, else within an hour", () => {
    expect(formatExpiry("2026-01-02T00:00:00Z", now, "2025-12-31T00:00:00Z").level).toBe("ok");
    expect(formatExpiry("2026-01-01T10:00:00Z", now, "2025-12-31T00:00:00Z").level).toBe("soon");
    expect(formatExpiry("2026-01-01T00:30:00Z", now).level).toBe("soon");
    expect(formatExpiry("2026-01-01T02:00:00Z", now).level).toBe("ok");
  });
  it("writes dates to the minute, in UTC", () => {
    expect(formatDate("2026-11-21T13:52:51.936Z")).toBe("2026-11-21 13:52 UTC");
    expect(formatDate("nope")).toBe(NO_DATA);
  });
  it("says expired, and answers no data for a bad date", () => {
    expect(formatExpiry("2025-12-31T23:55:00Z", now)).toEqual({
      text: "expired 5 min ago",
      level: "expired",
    });
    expect(formatExpiry("garbage", now).text).toBe(NO_DATA);
  });
});

describe("health and rate classes", () => {
  it("takes the worst state; no instance at all is critical", () => {
    expect(overallHealth({ passing: 2, warning: 0, critical: 0 })).toBe("passing");
    expect(overallHealth({ passing: 2, warning: 1, critical: 0 })).toBe("warning");
    expect(overallHealth({ passing: 2, warning: 1, critical: 1 })).toBe("critical");
    expect(overallHealth({ passing: 0, warning: 0, critical: 0 })).toBe("critical");
    expect(healthText({ passing: 2, warning: 0, critical: 1 })).toBe("2 passing, 1 critical");
    expect(healthText({ passing: 0, warning: 0, critical: 0 })).toBe("no instances");
  });
  it("classes success rates at 99 % and 95 %", () => {
    expect(rateClass(null)).toBe("idle");
    expect(rateClass(1)).toBe("good");
    expect(rateClass(0.99)).toBe("good");
    expect(rateClass(0.97)).toBe("warn");
    expect(rateClass(0.5)).toBe("bad");
  });
});

describe("proxyless marking and NACK wording", () => {
  it("marks an instance by the proxyless tag or meta", () => {
    const cases: { tags?: string[]; meta?: Record<string, string> }[] = [
      { tags: ["proxyless"], meta: {} },
      { tags: [], meta: { proxyless: "true" } },
      { tags: ["grpc"], meta: { proxyless: "false" } },
      {},
    ];
    expect(cases.map((c) => isProxylessInstance(c))).toEqual([true, true, false, false]);
  });
  it("words a NACK as weft explain does (the same function)", () => {
    const n = {
      typeUrl: "type.googleapis.com/envoy.config.cluster.v3.Cluster",
      type: "Cluster",
      version: "7",
      acceptedVersion: "6",
      message: "bad lb",
      at: "2026-01-01T00:00:00.000Z",
      count: 1,
    };
    expect(nackText("web-proxyless-x", n)).toBe(
      "node web-proxyless-x refused Cluster version 7: bad lb; it keeps version 6",
    );
    expect(nackText("x", { ...n, acceptedVersion: "", count: 3 })).toBe(
      "node x refused Cluster version 7 (3 times): bad lb; it has no accepted version of that type yet",
    );
    expect(nackText("x", { ...n, message: "" })).toBe(
      "node x refused Cluster version 7: (no message); it keeps version 6",
    );
  });
});
