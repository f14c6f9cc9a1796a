import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { KINDS, kindFromString, parseResource, resourceSchema } from "./index.js";

describe("kindFromString", () => {
  test.each([
    ["intention", "Intention"],
    ["Intention", "Intention"],
    ["INTENTIONS", "Intention"],
    ["servicedefaults", "ServiceDefaults"],
    ["service-defaults", "ServiceDefaults"],
    ["routes", "Route"],
    ["mesh", "Mesh"],
    ["meshes", "Mesh"],
    ["gateway", "Gateway"],
    ["workloads", "Workload"],
    ["nope", undefined],
    ["services", undefined],
    ["", undefined],
  ])("%s -> %s", (input, expected) => {
    expect(kindFromString(input)).toBe(expected);
  });
});

describe("parseResource", () => {
  test.each([
    ["no kind", { name: "x" }, "required: expected one of Mesh"],
    [
      "an unknown kind",
      { kind: "VirtualService", name: "x" },
      'unknown kind "VirtualService"; expected one of Mesh, Workload',
    ],
    ["a kind in the wrong case", { kind: "intention", name: "x" }, 'did you mean "Intention"?'],
    ["a kind that is not a string", { kind: 7, name: "x" }, "unknown kind number"],
  ])("refuses %s with one issue at kind", (_, input, message) => {
    const r = parseResource(input);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues).toHaveLength(1);
    expect(r.issues[0]?.path).toEqual(["kind"]);
    expect(r.issues[0]?.message).toContain(message);
  });

  test.each([null, 3, "kind: Mesh", [], [{ kind: "Mesh" }]])("refuses a non-mapping: %j", (input) => {
    const r = parseResource(input);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues[0]?.message).toContain("expected a mapping");
  });

  test("every kind has a schema in the discriminated union", () => {
    for (const kind of KINDS) {
      const r = resourceSchema.safeParse({ kind, name: "x" });
      // Most kinds need more fields; the point is the union dispatches on kind rather than refusing it.
      if (!r.success) expect(r.error.issues.some((i) => i.path[0] === "kind")).toBe(false);
    }
  });

  test("resourceSchema parses through the union, transforms included", () => {
    const w = resourceSchema.parse({ kind: "Workload", name: "web", command: ["node"] });
    expect(w).toMatchObject({ kind: "Workload", service: "web", replicas: 1 });
    const s = resourceSchema.parse({ kind: "Split", name: "api", splits: [{ weight: 100 }] });
    expect(s).toEqual({ kind: "Split", name: "api", splits: [{ weight: 100, service: "api" }] });
  });

  test("the result is deep-frozen", () => {
    const r = parseResource({ kind: "Split", name: "api", splits: [{ weight: 100 }] });
    if (!r.ok) expect.fail("refused");
    expect(Object.isFrozen(r.resource)).toBe(true);
    if (r.resource.kind === "Split") expect(Object.isFrozen(r.resource.splits[0])).toBe(true);
  });

  test("hostile objects (throwing getters, proxies) do not make it throw", () => {
    const getter = Object.defineProperty({ kind: "Mesh" }, "name", {
      enumerable: true,
      get() {
        throw new Error("boom");
      },
    });
    const proxy = new Proxy(
      {},
      {
        get() {
          throw new Error("trap");
        },
        ownKeys() {
          throw new Error("trap");
        },
      },
    );
    expect(parseResource(getter).ok).toBe(false);
    expect(parseResource(proxy).ok).toBe(false);
  });

  test("property: any JSON value, or any mapping with a real kind, never makes it throw", () => {
    const withKind = fc.record({
      kind: fc.constantFrom(...KINDS, "Other"),
      name: fc.oneof(fc.string(), fc.constant("api")),
      rest: fc.dictionary(fc.string(), fc.jsonValue()),
    });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue(),
          withKind.map(({ rest, ...r }) => ({ ...rest, ...r })),
        ),
        (value) => {
          const r = parseResource(value);
          expect(typeof r.ok).toBe("boolean");
          if (!r.ok) {
            expect(r.issues.length).toBeGreaterThan(0);
            for (const i of r.issues) expect(typeof i.message).toBe("string");
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
