import { describe, expect, it } from "vitest";
import { toYaml, yamlScalar } from "./yaml.js";

describe("toYaml", () => {
  it("writes a resource in block style, keys in order", () => {
    const y = toYaml({
      kind: "Intention",
      name: "api",
      sources: [
        { name: "web", action: "allow" },
        { name: "*", permissions: [{ action: "allow", http: { methods: ["GET"], pathPrefix: "/a b" } }] },
      ],
      empty: [],
      obj: {},
    });
    expect(y).toBe(
      [
        "kind: Intention",
        "name: api",
        "sources:",
        "- name: web",
        "  action: allow",
        '- name: "*"',
        "  permissions:",
        "  - action: allow",
        "    http:",
        "      methods:",
        "      - GET",
        "      pathPrefix: /a b",
        "empty: []",
        "obj: {}",
        "",
      ].join("\n"),
    );
  });
  it("quotes strings YAML would read as something else", () => {
    expect(yamlScalar("true")).toBe('"true"');
    expect(yamlScalar("no")).toBe('"no"');
    expect(yamlScalar("123")).toBe('"123"');
    expect(yamlScalar("5s")).toBe('"5s"');
    expect(yamlScalar("a: b")).toBe('"a: b"');
    expect(yamlScalar("")).toBe('""');
    expect(yamlScalar("x #y")).toBe('"x #y"');
    expect(yamlScalar("web")).toBe("web");
    expect(yamlScalar(3)).toBe("3");
    expect(yamlScalar(null)).toBe("null");
  });
  it("writes nested lists and scalars at the top", () => {
    expect(toYaml([[1, 2], "x"])).toBe("- - 1\n  - 2\n- x\n");
    expect(toYaml("plain")).toBe("plain\n");
  });
});
