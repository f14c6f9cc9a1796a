import { WeftApiError } from "@weft/api";
import { WeftError } from "@weft/core";
import { describe, expect, it } from "vitest";
import { EXIT, exitCodeFor } from "./exit-codes.js";

describe("exitCodeFor", () => {
  it.each([
    [new WeftError("WEFT_ERR_USAGE", { detail: "x" }), EXIT.USAGE],
    [new WeftError("WEFT_ERR_UNKNOWN_KIND", { kind: "x", expected: "y" }), EXIT.USAGE],
    [new WeftError("WEFT_ERR_CONFIG_INVALID", { detail: "x" }), EXIT.USAGE],
    [new WeftError("WEFT_ERR_UNREACHABLE", { addr: "a", detail: "refused" }), EXIT.UNREACHABLE],
    [new WeftError("WEFT_ERR_TIMEOUT", { detail: "slow" }), EXIT.UNREACHABLE],
    [new WeftApiError("WEFT_ERR_TIMEOUT", "upstream slow", 504), EXIT.ERROR],
    [new WeftApiError("WEFT_ERR_UNAUTHENTICATED", "no token", 401), EXIT.DENIED],
    [new WeftApiError("WEFT_ERR_PERMISSION_DENIED", "needs operator", 403), EXIT.DENIED],
    [new WeftApiError("WEFT_ERR_NOT_FOUND", "Intention api not found", 404), EXIT.NOT_FOUND],
    [new WeftApiError("WEFT_ERR_VALIDATION", "bad", 400), EXIT.USAGE],
    [new WeftApiError("WEFT_ERR_BODY_TOO_LARGE", "big", 413), EXIT.USAGE],
    [new WeftApiError("WEFT_ERR_CONFLICT", "raced", 409), EXIT.ERROR],
    [new WeftApiError("WEFT_ERR_IDENTITY_DENIED", "may not obtain api", 403), EXIT.DENIED],
    [new WeftApiError("WEFT_ERR_CSR_INVALID", "two URI SANs", 400), EXIT.USAGE],
    [new WeftApiError("WEFT_ERR_CERT_TTL_TOO_LONG", "100h > 72h", 400), EXIT.USAGE],
    [new WeftApiError("WEFT_ERR_CA_ROTATION_PENDING", "root r1 still retiring", 409), EXIT.ERROR],
    [new WeftApiError("WEFT_ERR_INTERNAL", "ref abc", 500), EXIT.ERROR],
    [new WeftApiError("WEFT_ERR_STORE_FAILED", "disk", 503), EXIT.ERROR],
    [new Error("plain"), EXIT.ERROR],
    ["a string", EXIT.ERROR],
  ])("%s -> %i", (err, code) => {
    expect(exitCodeFor(err)).toBe(code);
  });
});
