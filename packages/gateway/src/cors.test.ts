import { describe, expect, it } from "vitest";
import { CorsPolicy } from "./cors.js";

const base = {
  allowOrigins: [],
  allowMethods: ["GET"],
  allowHeaders: [],
  exposeHeaders: [],
  allowCredentials: false,
};

describe("CorsPolicy", () => {
  it("ignores requests without Origin", () => {
    expect(
      new CorsPolicy({ ...base, allowOrigins: ["*"] }).decide("GET", undefined, undefined, undefined),
    ).toEqual({ kind: "none" });
  });

  it("matches origins exactly or by full-match regex", () => {
    const p = new CorsPolicy({
      ...base,
      allowOrigins: ["https://a.test"],
      allowOriginRegex: ["https://[a-z]+\\.b\\.test"],
    });
    expect(p.decide("GET", "https://a.test", undefined, undefined).kind).toBe("actual");
    expect(p.decide("GET", "https://x.b.test", undefined, undefined).kind).toBe("actual");
    expect(p.decide("GET", "https://x.b.test.evil", undefined, undefined).kind).toBe("none");
    expect(p.decide("GET", "https://a.test.evil", undefined, undefined).kind).toBe("none");
  });

  it("refuses preflights for methods or headers not allowed", () => {
    const p = new CorsPolicy({ ...base, allowOrigins: ["https://a.test"], allowHeaders: ["X-Token"] });
    expect(p.decide("OPTIONS", "https://a.test", "DELETE", undefined)).toMatchObject({
      kind: "preflight",
      status: 403,
    });
    expect(p.decide("OPTIONS", "https://a.test", "GET", "x-token, x-other")).toMatchObject({
      kind: "preflight",
      status: 403,
    });
    expect(p.decide("OPTIONS", "https://a.test", "get", "X-TOKEN")).toMatchObject({
      kind: "preflight",
      status: 204,
    });
  });

  it("echoes the origin with credentials, never * with credentials", () => {
    const any = new CorsPolicy({ ...base, allowOrigins: ["*"] });
    expect(any.decide("GET", "https://z.test", undefined, undefined)).toMatchObject({
      responseHeaders: { "access-control-allow-origin": "*" },
    });
    const creds = new CorsPolicy({
      ...base,
      allowOrigins: ["https://a.test"],
      allowCredentials: true,
      exposeHeaders: ["x-id"],
    });
    expect(creds.decide("GET", "https://a.test", undefined, undefined)).toEqual({
      kind: "actual",
      responseHeaders: {
        "access-control-allow-origin": "https://a.test",
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": "x-id",
        vary: "origin",
      },
    });
  });
});
