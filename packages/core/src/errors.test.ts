import { describe, expect, it } from "vitest";
import { ERRORS, isWeftError, WeftError, weftError } from "./errors.js";

describe("error catalogue", () => {
  it("every code is WEFT_ERR_ prefixed with a 4xx/5xx status", () => {
    for (const [code, spec] of Object.entries(ERRORS)) {
      expect(code).toMatch(/^WEFT_ERR_[A-Z0-9_]+$/);
      expect(spec.status).toBeGreaterThanOrEqual(400);
      expect(spec.status).toBeLessThan(600);
    }
  });

  it("renders templates and serialises to the API error body", () => {
    const e = weftError("WEFT_ERR_NOT_FOUND", { what: 'service "api"' });
    expect(e).toBeInstanceOf(WeftError);
    expect(e.status).toBe(404);
    expect(isWeftError(e, "WEFT_ERR_NOT_FOUND")).toBe(true);
    expect(e.toJSON()).toEqual({ error: { code: "WEFT_ERR_NOT_FOUND", message: 'service "api" not found' } });
  });

  it("keeps the cause", () => {
    const cause = new Error("disk full");
    const e = weftError("WEFT_ERR_STORE_FAILED", { detail: "disk full" }, { cause });
    expect(e.cause).toBe(cause);
  });
});
