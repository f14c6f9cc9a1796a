import { describe, expect, test } from "vitest";
import { MAX_DEPTH, MAX_DOCUMENTS, MAX_NODES, MAX_TEXT_BYTES, parseDocuments } from "./documents.js";

const text = `# a comment
kind: Split
name: api
splits:
  - weight: 90
    subset: v1
  - {weight: 10, subset: v2}
---
kind: Resolver
name: api
subsets:
  v1: {meta: {version: v1}}
`;

describe("parseDocuments", () => {
  test("splits a stream into documents with their start lines", () => {
    const { documents, errors } = parseDocuments(text);
    expect(errors).toEqual([]);
    expect(documents.map((d) => [d.index, d.line, d.column])).toEqual([
      [0, 2, 1],
      [1, 9, 1],
    ]);
    expect(documents[0]?.value).toEqual({
      kind: "Split",
      name: "api",
      splits: [
        { weight: 90, subset: "v1" },
        { weight: 10, subset: "v2" },
      ],
    });
  });

  test.each([
    [0, ["name"], { line: 3, column: 1 }],
    [0, ["splits", 0], { line: 5, column: 5 }],
    [0, ["splits", 0, "subset"], { line: 6, column: 5 }],
    [0, ["splits", 1, "weight"], { line: 7, column: 6 }],
    [0, ["splits", 1, "missing"], { line: 7, column: 5 }],
    [0, ["splits", 7], { line: 4, column: 1 }],
    [1, ["subsets", "v1", "meta", "version"], { line: 12, column: 15 }],
    [1, [], { line: 9, column: 1 }],
  ])("document %i: locates %j", (index, path, expected) => {
    const doc = parseDocuments(text).documents[index];
    expect(doc?.locate(path)).toEqual(expected);
  });

  test("reads JSON, and JSON documents separated by ---", () => {
    const { documents, errors } = parseDocuments(
      '{"kind": "Mesh",\n "name": "mesh"}\n---\n{"kind": "Split"}\n',
    );
    expect(errors).toEqual([]);
    expect(documents.map((d) => d.value)).toEqual([{ kind: "Mesh", name: "mesh" }, { kind: "Split" }]);
    expect(documents[0]?.locate(["name"])).toEqual({ line: 2, column: 2 });
  });

  test("skips empty documents and comment-only texts", () => {
    expect(parseDocuments("").documents).toEqual([]);
    expect(parseDocuments("# nothing\n").documents).toEqual([]);
    const { documents } = parseDocuments("---\nkind: Mesh\n---\n---\n");
    expect(documents.map((d) => d.index)).toEqual([0]);
  });

  test.each([
    ["bad YAML", "kind: Mesh\nname: [mesh\n", 3, "flow"],
    ["a bad indent", "kind: Mesh\nname: mesh\n  bad: indent\n", 2, "nested mappings"],
    ["an unclosed quote", "kind: 'Mesh\n", 2, "quote"],
    ["a duplicate key", "kind: Mesh\nname: a\nname: b\n", 3, 'duplicate key "name"'],
    ["a nested duplicate key", "kind: Mesh\nmeta:\n  a: 1\n  b: 2\n  a: 3\n", 5, 'duplicate key "a"'],
    ["a collection as a key", "[a, b]: 1\n", 1, "plain scalars"],
    ["a complex key", "? a\n: 1\n", 1, "complex mapping keys"],
    ["a duplicate key in JSON", '{"a": 1, "a": 2}', 1, "unique"],
    ["an unresolved tag", "kind: !custom Mesh\n", 1, "tag"],
    ["a tab-indented mapping", "kind: Mesh\nmeta:\n\tk: v\n", 3, ""],
  ])("reports %s with its line", (_, input, line, message) => {
    const { documents, errors } = parseDocuments(input);
    expect(documents).toEqual([]);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]?.line).toBe(line);
    expect(errors[0]?.message.toLowerCase()).toContain(message);
  });

  test("a bad document does not hide the good ones", () => {
    const { documents, errors } = parseDocuments("kind: Mesh\n---\na: [\n---\nkind: Split\n");
    expect(documents.map((d) => d.index)).toEqual([0, 2]);
    expect(errors.map((e) => e.index)).toEqual([1]);
  });

  test("refuses an alias bomb", () => {
    const bomb = [
      "a: &a [x, x, x, x, x, x, x, x, x, x]",
      "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]",
      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]",
      "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]",
      "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]",
    ].join("\n");
    const { documents, errors } = parseDocuments(bomb);
    expect(documents).toEqual([]);
    expect(errors[0]?.message).toContain("alias");
  });

  test("a few aliases are fine", () => {
    const { documents, errors } = parseDocuments("a: &t [v1]\nb: *t\n");
    expect(errors).toEqual([]);
    expect(documents[0]?.value).toEqual({ a: ["v1"], b: ["v1"] });
  });

  test("refuses a text over 4 MiB", () => {
    const big = `a: "${"x".repeat(MAX_TEXT_BYTES)}"\n`;
    const { documents, errors } = parseDocuments(big);
    expect(documents).toEqual([]);
    expect(errors[0]).toMatchObject({ line: 1, column: 1 });
    expect(errors[0]?.message).toContain("4 MiB");
  });

  test("counts the 4 MiB limit in UTF-8 bytes", () => {
    const emoji = "😀".repeat(MAX_TEXT_BYTES / 4); // 4 bytes each: exactly the limit
    expect(parseDocuments(`${emoji}`).errors).toEqual([]);
    expect(parseDocuments(`${emoji}é`).errors[0]?.message).toContain("4 MiB");
    expect(parseDocuments(`${"é".repeat(MAX_TEXT_BYTES / 2)}x`).errors[0]?.message).toContain("4 MiB");
  });

  test("refuses more than 1,000 documents", () => {
    const many = "---\na: 1\n".repeat(MAX_DOCUMENTS + 1);
    const { documents, errors } = parseDocuments(many);
    expect(documents).toEqual([]);
    expect(errors[0]?.message).toContain(`more than ${MAX_DOCUMENTS} documents`);
    expect(parseDocuments("---\na: 1\n".repeat(MAX_DOCUMENTS)).documents).toHaveLength(MAX_DOCUMENTS);
  });

  test.each([
    ["flow", `${"[".repeat(200_000)}${"]".repeat(200_000)}`],
    ["compact sequences", `${"- ".repeat(200_000)}x\n`],
    ["block indentation", Array.from({ length: 2000 }, (_, i) => `${" ".repeat(i)}k${i}:\n`).join("")],
  ])("refuses deep %s nesting quickly, before yaml recurses", (_, input) => {
    const started = Date.now();
    const r = parseDocuments(input);
    expect(r.documents).toEqual([]);
    expect(r.errors[0]?.message).toContain(`nested deeper than ${MAX_DEPTH} levels`);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  test("accepts nesting up to the limit", () => {
    const r = parseDocuments(`${"[".repeat(MAX_DEPTH - 1)}${"]".repeat(MAX_DEPTH - 1)}`);
    expect(r.errors).toEqual([]);
  });

  test("regular expressions with brackets are not mistaken for nesting", () => {
    const regex = "^/[a-z]+/[0-9]{1,3}/[(]+/[[]$";
    const text = Array.from({ length: 100 }, (_, i) => `r${i}: ${regex}`).join("\n");
    const r = parseDocuments(text);
    expect(r.errors).toEqual([]);
    const value = r.documents[0]?.value as Record<string, string> | undefined;
    expect(value?.r99).toBe(regex);
  });

  test("refuses more than MAX_NODES values", () => {
    const r = parseDocuments("- [1, 2, 3, 4, 5, 6, 7, 8, 9]\n".repeat(MAX_NODES / 9));
    expect(r.documents).toEqual([]);
    expect(r.errors[0]?.message).toContain(`more than ${MAX_NODES} values`);
  });
});
