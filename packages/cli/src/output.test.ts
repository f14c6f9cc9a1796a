import { WeftError } from "@weft/core";
import { describe, expect, it } from "vitest";
import { formatError, paint, plural, stripAnsi, table } from "./output.js";
import { yamlDocs } from "./output-yaml.js";

describe("table", () => {
  it("aligns columns, two spaces apart, last column unpadded", () => {
    const t = table(
      ["NAME", "INSTANCES", "TAGS"],
      [
        ["api", "2", "v1,v2"],
        ["payments-gateway", "10", "-"],
      ],
    );
    expect(t).toBe(
      "NAME              INSTANCES  TAGS\n" +
        "api               2          v1,v2\n" +
        "payments-gateway  10         -\n",
    );
  });

  it("ignores ANSI colour codes when measuring", () => {
    const t = table(["A", "B"], [[paint("ok", "green", true), "x"]]);
    const lines = t.split("\n");
    expect(lines[1]).not.toBe("ok  x");
    expect(stripAnsi(lines[1] ?? "")).toBe("ok  x");
  });

  it("renders headers alone for no rows", () => {
    expect(table(["A", "BB"], [])).toBe("A  BB\n");
  });
});

describe("formatError", () => {
  it("uses the catalogue code", () => {
    expect(formatError(new WeftError("WEFT_ERR_NOT_FOUND", { what: "Intention api" }))).toBe(
      "error: Intention api not found (WEFT_ERR_NOT_FOUND)",
    );
  });
  it("never prints a stack for foreign errors", () => {
    const s = formatError(new TypeError("boom"));
    expect(s).toBe("error: boom (WEFT_ERR_INTERNAL)");
    expect(s).not.toContain("at ");
  });
});

describe("misc", () => {
  it("paint is a no-op when disabled", () => {
    expect(paint("x", "red", false)).toBe("x");
  });
  it("plural", () => {
    expect(plural(1, "resource")).toBe("1 resource");
    expect(plural(3, "resource")).toBe("3 resources");
  });
  it("yamlDocs separates documents", () => {
    expect(
      yamlDocs([
        { kind: "A", name: "a" },
        { kind: "B", name: "b" },
      ]),
    ).toBe("kind: A\nname: a\n---\nkind: B\nname: b\n");
  });
});
