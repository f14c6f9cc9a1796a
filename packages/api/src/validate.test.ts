import fc from "fast-check";
import { describe, expect, it, test } from "vitest";
import { parseResource, type Resource } from "./resources/index.js";
import { formatPath, validateFile, validateFiles, validateSet } from "./validate.js";

const product = `kind: Workload
name: web
command: ["node", "web.js"]
replicas: 2
protocol: http
health: {http: /healthz}
upstreams: [{service: api, localPort: 9101}]
env: {KEY: value}
tags: [v1]
meta: {version: v1}
---
kind: Workload
name: api-v1
service: api
protocol: http
command: [node, api.js]
meta: {version: v1}
---
kind: Workload
name: api-v2
service: api
protocol: http
command: [node, api.js]
meta: {version: v2}
---
kind: Intention
name: api
sources:
  - {name: web, action: allow}
  - name: admin
    permissions:
      - {action: allow, http: {pathPrefix: /admin, methods: [GET]}}
  - {name: "*", action: deny}
---
kind: ServiceDefaults
name: api
---
kind: Route
name: api
routes:
  - match: {pathPrefix: /beta}
    destination: {subset: v2}
---
kind: Split
name: api
splits: [{weight: 90, subset: v1}, {weight: 10, subset: v2}]
---
kind: Resolver
name: api
subsets: {v1: {meta: {version: v1}}, v2: {meta: {version: v2}}}
---
kind: Gateway
name: edge
type: ingress
listeners:
  - port: 8080
    protocol: http
    routes: [{host: "*", pathPrefix: /, service: web}]
---
kind: Mesh
name: mesh
defaultPolicy: deny
`;

describe("validateFile", () => {
  test("accepts the PRODUCT.md example, every kind", () => {
    const { resources, errors } = validateFile(product, "weft.yaml");
    expect(errors.map((e) => e.text)).toEqual([]);
    expect(resources.map((r) => `${r.kind}/${r.name}`)).toEqual([
      "Workload/web",
      "Workload/api-v1",
      "Workload/api-v2",
      "Intention/api",
      "ServiceDefaults/api",
      "Route/api",
      "Split/api",
      "Resolver/api",
      "Gateway/edge",
      "Mesh/mesh",
    ]);
  });

  test("renders an error with file, line, column, document, field path and message", () => {
    const text = [
      "kind: Mesh", // 1
      "name: mesh", // 2
      "---", // 3
      "kind: Split", // 4
      "name: api", // 5
      "splits:", // 6
      "  - weight: 90", // 7
      "    subset: v1", // 8
      '  - weight: "10"', // 9
      "    subset: v2", // 10
    ].join("\n");
    const { errors } = validateFile(text, "weft.yaml");
    expect(errors.map((e) => e.text)).toEqual([
      'weft.yaml:9:5: Split "api": splits[1].weight: expected a number, got string',
    ]);
    expect(errors[0]).toMatchObject({
      file: "weft.yaml",
      line: 9,
      column: 5,
      document: 'Split "api"',
      path: ["splits", 1, "weight"],
    });
  });

  test.each([
    [
      "an unknown field",
      "kind: Mesh\nname: mesh\nmtls: strict\n",
      'weft.yaml:3:1: Mesh "mesh": mtls: unknown field "mtls"',
    ],
    [
      "an unknown nested field",
      "kind: Workload\nname: web\ncommand: [node]\nhealth:\n  http: /h\n  path: /x\n",
      'weft.yaml:6:3: Workload "web": health.path: unknown field "path"',
    ],
    [
      "a document without a name",
      "kind: Mesh\n---\nkind: Split\nsplits: []\n",
      "weft.yaml:3:1: document 2: name: required",
    ],
    [
      "an unknown kind",
      "kind: Service\nname: web\n",
      'weft.yaml:1:1: Service "web": kind: unknown kind "Service"',
    ],
    ["bad YAML", "kind: Mesh\nname: mesh\n  oops: 1\n", "weft.yaml:2:7: document 1: Nested mappings"],
    ["a non-mapping document", "- a\n- b\n", "weft.yaml:1:1: document 1: expected a mapping"],
    [
      "__proto__ in YAML",
      "kind: Mesh\nname: mesh\n__proto__: {defaultPolicy: allow}\n",
      'weft.yaml:3:1: Mesh "mesh": __proto__: unknown field "__proto__"',
    ],
    [
      "__proto__ in JSON",
      '{"kind": "Mesh", "name": "mesh", "__proto__": {"defaultPolicy": "allow"}}',
      'weft.yaml:1:34: Mesh "mesh": __proto__: unknown field',
    ],
    [
      "a meta key needing quotes",
      "kind: Workload\nname: w\ncommand: [x]\nmeta:\n  '-x': y\n",
      'meta["-x"]: invalid key "-x"',
    ],
  ])("renders %s", (_, text, expected) => {
    const { errors } = validateFile(text, "weft.yaml");
    expect(errors.map((e) => e.text).join("\n")).toContain(expected);
  });

  test("reports every schema error of every document, in line order", () => {
    const text = "kind: Mesh\nname: prod\n---\nkind: Split\nname: api\nsplits: [{weight: 50}]\n";
    const { errors } = validateFile(text, "f.yaml");
    expect(errors.map((e) => [e.line, e.path.join(".")])).toEqual([
      [2, "name"],
      [6, "splits"],
    ]);
  });

  test("semantic errors carry the line of the offending field", () => {
    const text = [
      "kind: Split", // 1
      "name: api", // 2
      "splits:", // 3
      "  - {weight: 50, subset: v1}", // 4
      "  - {weight: 50, subset: v3}", // 5
      "---", // 6
      "kind: Resolver", // 7
      "name: api", // 8
      "subsets: {v1: {tags: [v1]}}", // 9
    ].join("\n");
    const { errors } = validateFile(text, "weft.yaml");
    expect(errors.map((e) => e.text)).toEqual([
      'weft.yaml:5:18: Split "api": splits[1].subset: subset "v3" is not defined by Resolver "api"; it defines "v1"',
    ]);
  });

  test("a JSON file is read the same way", () => {
    const json = JSON.stringify({ kind: "Split", name: "api", splits: [{ weight: "x" }] }, null, 2);
    const { errors } = validateFile(json, "split.json");
    expect(errors[0]?.text).toBe(
      'split.json:6:7: Split "api": splits[0].weight: expected a number, got string',
    );
  });

  test("property: any string never makes validateFile throw", () => {
    const yamlish = fc
      .array(
        fc.oneof(
          fc.constantFrom(
            "kind: ",
            "name: ",
            "---\n",
            "- ",
            ": ",
            "[",
            "]",
            "{",
            "}",
            "&a ",
            "*a",
            "? ",
            "\n",
            "  ",
            '"',
            "'",
          ),
          fc.constantFrom("Mesh", "Split", "Workload", "mesh", "splits", "weight", "1", "x"),
          fc.string(),
        ),
        { maxLength: 60 },
      )
      .map((parts) => parts.join(""));
    fc.assert(
      fc.property(fc.oneof(fc.string(), yamlish), (text) => {
        const r = validateFile(text, "f.yaml");
        expect(Array.isArray(r.errors)).toBe(true);
        for (const e of r.errors) expect(e.text.startsWith("f.yaml:")).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});

function parse(doc: unknown): Resource {
  const r = parseResource(doc);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.resource;
}

const resolver = (name: string, extra: Record<string, unknown> = {}) =>
  parse({ kind: "Resolver", name, subsets: { v1: { tags: ["v1"] }, v2: { tags: ["v2"] } }, ...extra });
const workload = (name: string, extra: Record<string, unknown> = {}) =>
  parse({ kind: "Workload", name, command: ["node"], protocol: "http", ...extra });

interface SetCase {
  name: string;
  set: Resource[];
  existing?: Resource[];
  localMesh?: boolean;
  /** Expected issues as [index, path, message substring]; empty for a valid set. */
  issues: [number, (string | number)[], string][];
}

const setCases: SetCase[] = [
  { name: "an empty set", set: [], issues: [] },
  {
    name: "a duplicate kind and name",
    set: [resolver("api"), resolver("api")],
    issues: [[1, ["name"], 'Resolver "api" is defined twice']],
  },
  {
    name: "the same name in two kinds",
    set: [resolver("api"), parse({ kind: "ServiceDefaults", name: "api" })],
    issues: [],
  },
  {
    name: "two Mesh resources",
    set: [parse({ kind: "Mesh", name: "mesh" }), parse({ kind: "Mesh", name: "mesh" })],
    issues: [[1, ["kind"], "only one Mesh"]],
  },
  {
    name: "a split subset defined by the resolver in the set",
    set: [parse({ kind: "Split", name: "api", splits: [{ weight: 100, subset: "v2" }] }), resolver("api")],
    issues: [],
  },
  {
    name: "a split subset defined by an existing resolver",
    set: [parse({ kind: "Split", name: "api", splits: [{ weight: 100, subset: "v2" }] })],
    existing: [resolver("api")],
    issues: [],
  },
  {
    name: "a split subset the resolver does not define",
    set: [
      parse({
        kind: "Split",
        name: "api",
        splits: [
          { weight: 50, subset: "v1" },
          { weight: 50, subset: "v3" },
        ],
      }),
      resolver("api"),
    ],
    issues: [[0, ["splits", 1, "subset"], 'subset "v3" is not defined by Resolver "api"']],
  },
  {
    name: "a split subset with no resolver at all",
    set: [parse({ kind: "Split", name: "api", splits: [{ weight: 100, subset: "v1" }] })],
    issues: [[0, ["splits", 0, "subset"], '"api" has no Resolver']],
  },
  {
    name: "the set's resolver replaces the existing one",
    set: [
      parse({ kind: "Split", name: "api", splits: [{ weight: 100, subset: "v2" }] }),
      parse({ kind: "Resolver", name: "api", subsets: { v1: {} } }),
    ],
    existing: [resolver("api")],
    issues: [[0, ["splits", 0, "subset"], 'subset "v2" is not defined']],
  },
  {
    name: "a resolver dropping a subset a stored split still uses",
    set: [parse({ kind: "Resolver", name: "api", subsets: { v1: {} } })],
    existing: [
      resolver("api"),
      parse({
        kind: "Split",
        name: "api",
        splits: [
          { weight: 90, subset: "v1" },
          { weight: 10, subset: "v2" },
        ],
      }),
    ],
    issues: [[0, ["subsets"], 'subset "v2" is still used by Split "api" (splits[1].subset)']],
  },
  {
    name: "a resolver dropping a subset whose stored user is replaced in the same set",
    set: [
      parse({ kind: "Resolver", name: "api", subsets: { v1: {} } }),
      parse({ kind: "Split", name: "api", splits: [{ weight: 100, subset: "v1" }] }),
    ],
    existing: [
      resolver("api"),
      parse({ kind: "Split", name: "api", splits: [{ weight: 100, subset: "v2" }] }),
    ],
    issues: [],
  },
  {
    name: "a route subset on another service",
    set: [
      parse({ kind: "Route", name: "api", routes: [{ destination: { service: "admin", subset: "blue" } }] }),
      resolver("admin"),
    ],
    issues: [[0, ["routes", 0, "destination", "subset"], 'subset "blue" is not defined by Resolver "admin"']],
  },
  {
    name: "a mirror subset",
    set: [
      parse({
        kind: "Route",
        name: "api",
        routes: [{ destination: { mirror: { service: "shadow", subset: "v1" } } }],
      }),
    ],
    issues: [[0, ["routes", 0, "destination", "mirror", "subset"], '"shadow" has no Resolver']],
  },
  {
    name: "a gateway route subset",
    set: [
      parse({
        kind: "Gateway",
        name: "edge",
        type: "ingress",
        listeners: [{ port: 80, routes: [{ service: "web", subset: "v9" }] }],
      }),
      resolver("web"),
    ],
    issues: [[0, ["listeners", 0, "routes", 0, "subset"], 'subset "v9"']],
  },
  {
    name: "a failover target subset on another service",
    set: [
      resolver("api", { failover: { targets: [{ service: "backup", subset: "v7" }] } }),
      resolver("backup"),
    ],
    issues: [[0, ["failover", "targets", 0, "subset"], 'subset "v7" is not defined by Resolver "backup"']],
  },
  {
    name: "a redirect cycle",
    set: [resolver("a", { redirect: { service: "b" } }), resolver("b", { redirect: { service: "a" } })],
    issues: [
      [0, ["redirect", "service"], "cycle: a -> b -> a"],
      [1, ["redirect", "service"], "cycle: b -> a -> b"],
    ],
  },
  {
    name: "a failover cycle through three services, one existing",
    set: [
      resolver("a", { failover: { targets: [{ service: "b" }] } }),
      resolver("b", { failover: { targets: [{ subset: "v1" }, { service: "c" }] } }),
    ],
    existing: [resolver("c", { redirect: { service: "a" } })],
    issues: [
      [0, ["failover", "targets", 0, "service"], "cycle: a -> b -> c -> a"],
      [1, ["failover", "targets", 1, "service"], "cycle: b -> c -> a -> b"],
    ],
  },
  {
    name: "a failover chain without a cycle",
    set: [
      resolver("a", { failover: { targets: [{ service: "b" }] } }),
      resolver("b", { failover: { targets: [{ service: "c" }] } }),
    ],
    issues: [],
  },
  {
    name: "failover to the same service in another datacenter is no cycle",
    set: [
      resolver("a", { failover: { targets: [{ service: "b", datacenter: "dc2" }] } }),
      resolver("b", { redirect: { service: "a" } }),
    ],
    issues: [],
  },
  {
    name: "a route on a tcp service",
    set: [
      parse({ kind: "Route", name: "db", routes: [{}] }),
      parse({ kind: "ServiceDefaults", name: "db", protocol: "tcp" }),
    ],
    issues: [[0, ["name"], "speaks tcp"]],
  },
  {
    name: "L7 permissions on a tcp workload's service",
    set: [
      parse({
        kind: "Intention",
        name: "db",
        sources: [{ name: "web", permissions: [{ action: "allow", http: { methods: ["GET"] } }] }],
      }),
      workload("db", { protocol: "tcp" }),
    ],
    localMesh: false,
    issues: [[0, ["sources", 0, "permissions"], "speaks tcp"]],
  },
  {
    name: "a local mesh whose upstreams resolve",
    set: [
      workload("web", { upstreams: [{ service: "api", localPort: 9101 }] }),
      workload("api-v1", { service: "api" }),
    ],
    issues: [],
  },
  {
    name: "an upstream no workload provides",
    set: [workload("web", { upstreams: [{ service: "ap", localPort: 9101 }] }), workload("api")],
    issues: [[0, ["upstreams", 0, "service"], 'no Workload in this file provides service "ap"']],
  },
  {
    name: "an upstream served by a terminating gateway",
    set: [
      workload("web", { upstreams: [{ service: "payments", localPort: 9101 }] }),
      parse({
        kind: "Gateway",
        name: "egress",
        type: "terminating",
        services: [{ name: "payments", host: "127.0.0.1", port: 9999 }],
      }),
    ],
    issues: [],
  },
  {
    name: "unresolved upstreams are allowed when the set is not a local mesh",
    set: [workload("web", { upstreams: [{ service: "ap", localPort: 9101 }] })],
    localMesh: false,
    issues: [],
  },
  {
    name: "the same localPort in two workloads",
    set: [
      workload("web", { upstreams: [{ service: "api", localPort: 9101 }] }),
      workload("api", { upstreams: [{ service: "web", localPort: 9101 }] }),
    ],
    issues: [
      [
        1,
        ["upstreams", 0, "localPort"],
        'port 9101 is already used by Workload "web" upstreams[0].localPort',
      ],
    ],
  },
  {
    name: "a gateway listener on a workload's fixed port",
    set: [
      workload("web", { port: 8080 }),
      parse({
        kind: "Gateway",
        name: "edge",
        type: "ingress",
        listeners: [{ port: 8080, routes: [{ service: "web" }] }],
      }),
    ],
    issues: [[1, ["listeners", 0, "port"], 'port 8080 is already used by Workload "web" port']],
  },
  {
    name: "listener ports on two gateways",
    set: [
      workload("web"),
      parse({
        kind: "Gateway",
        name: "a",
        type: "ingress",
        listeners: [{ port: 8080, routes: [{ service: "web" }] }],
      }),
      parse({
        kind: "Gateway",
        name: "b",
        type: "ingress",
        listeners: [{ port: 8080, routes: [{ service: "web" }] }],
      }),
    ],
    issues: [[2, ["listeners", 0, "port"], 'port 8080 is already used by Gateway "a"']],
  },
];

describe("validateSet", () => {
  test.each(setCases)("$name", ({ set, existing, localMesh, issues }) => {
    const got = validateSet(set, existing, localMesh === undefined ? {} : { localMesh });
    const summary = got.map((i) => `${i.index} ${JSON.stringify(i.path)} ${i.message}`);
    expect(got, summary.join("\n")).toHaveLength(issues.length);
    for (const [index, path, message] of issues) {
      const hit = got.find(
        (i) =>
          i.index === index && JSON.stringify(i.path) === JSON.stringify(path) && i.message.includes(message),
      );
      expect(
        hit,
        `expected ${index} ${JSON.stringify(path)} "${message}" in\n${summary.join("\n")}`,
      ).toBeDefined();
    }
  });
});

test.each([
  [["splits", 1, "weight"], "splits[1].weight"],
  [["meta", "app.io/x"], 'meta["app.io/x"]'],
  [[], ""],
  [[0], "[0]"],
])("formatPath(%j) = %s", (path, expected) => {
  expect(formatPath(path)).toBe(expected);
});

describe("validateFiles (a directory as one set)", () => {
  const resolver =
    "kind: Resolver\nname: api\nsubsets:\n  v1: {meta: {version: v1}}\n  v2: {meta: {version: v2}}\n";
  const split = (subset: string) =>
    `kind: Split\nname: api\nsplits:\n  - {weight: 50, subset: v1}\n  - {weight: 50, subset: ${subset}}\n`;

  it("resolves references across files", () => {
    const r = validateFiles([
      { fileName: "a-split.yaml", text: split("v2") },
      { fileName: "b-resolver.yaml", text: resolver },
    ]);
    expect(r.errors).toEqual([]);
    expect(r.resources.map((x) => x.kind)).toEqual(["Split", "Resolver"]);
  });

  it("names the file that holds the broken reference", () => {
    const r = validateFiles([
      { fileName: "a-split.yaml", text: split("v3") },
      { fileName: "b-resolver.yaml", text: resolver },
    ]);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]?.file).toBe("a-split.yaml");
    expect(r.errors[0]?.line).toBe(5);
    expect(r.errors[0]?.text).toMatch(/^a-split\.yaml:5:\d+: Split "api": splits\[1\]\.subset: .*v3/);
  });

  it("refuses the same resource defined in two files", () => {
    const r = validateFiles([
      { fileName: "one.yaml", text: resolver },
      { fileName: "two.yaml", text: resolver },
    ]);
    expect(r.errors.length).toBeGreaterThan(0);
    expect(r.errors.some((e) => e.file === "two.yaml" && /Resolver "api"/.test(e.text))).toBe(true);
  });
});
