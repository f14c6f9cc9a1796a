import { describe, expect, it } from "vitest";
import { BuiltinCaProvider } from "./builtin-provider.js";
import { expectCode } from "./ca-fixtures.suite.js";
import { createCaProvider } from "./provider.js";
import { describeCaProvider } from "./provider.suite.js";

describeCaProvider("builtin", () => new BuiltinCaProvider());

describe("builtin provider registration", () => {
  it("is created by name and refuses settings it does not have", async () => {
    expect(createCaProvider("builtin").name).toBe("builtin");
    await expectCode(() => createCaProvider("nope"), "WEFT_ERR_CONFIG_INVALID");
    await expectCode(() => createCaProvider("builtin", { keyType: "rsa" }), "WEFT_ERR_CONFIG_INVALID");
  });
});
