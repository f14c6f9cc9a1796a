import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  checkSnapshot,
  type HealthStatus,
  type Instance,
  type Intention,
  instanceRegistrationSchema,
  intentionSchema,
  type Mesh,
  meshSchema,
  type Resolver,
  type Route,
  resolverSchema,
  routeSchema,
  type ServiceDefaults,
  SNAPSHOT_LIMITS,
  type Split,
  serviceDefaultsSchema,
  splitSchema,
} from "@weft/api";
import { isWeftError } from "@weft/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stableJson } from "../state/stable-json.js";
import {
  buildSnapshot,
  endpointWeight,
  type SnapshotInputs,
  snapshotVersion,
  tryBuildSnapshot,
} from "./build.js";

// ---------------------------------------------------------------- fixtures

/**
 * Golden files live in testdata/golden/ because biome.json leaves that
 * folder alone: a reformatted golden file would no longer match the bytes
 * the builder writes. `UPDATE_GOLDEN=1 npx vitest run packages/controlplane/src/snapshot`
 * rewrites the *.snapshot.json files; review the diff before keeping it.
 */
const GOLDEN_DIR = fileURLToPath(new URL("./testdata/golden/", import.meta.url));
const UPDATE = process.env.UPDATE_GOLDEN === "1";

type RawInstance = Record<string, unknown> & { status?: HealthStatus };

interface CaseFile {
  description: string;
  mesh: unknown;
  instance: RawInstance;
  resources: { kind: string; name: string }[];
  instances: Record<string, RawInstance[]>;
}

/** A catalog Instance from registration fields (checked by the real schema) plus a status. */
function toInstance(raw: RawInstance, modifyIndex = 1): Instance {
  const { status = "passing", ...fields } = raw;
  const reg = instanceRegistrationSchema.parse(fields);
  if (reg.id === undefined) throw new Error(`test instance of ${reg.service} needs an id`);
  const inst: Instance = {
    id: reg.id,
    service: reg.service,
    address: reg.address,
    port: reg.port,
    ports: reg.ports ?? {},
    tags: reg.tags,
    meta: reg.meta,
    datacenter: reg.datacenter,
    checks: [],
    status,
    registeredAt: 0,
    modifyIndex,
  };
  if (reg.locality) inst.locality = reg.locality;
  if (reg.proxy) inst.proxy = reg.proxy;
  return inst;
}

interface Resources {
  mesh: Mesh;
  intentions: Map<string, Intention>;
  defaults: Map<string, ServiceDefaults>;
  resolvers: Map<string, Resolver>;
  splits: Map<string, Split>;
  routes: Map<string, Route>;
}

function parseResources(mesh: unknown, resources: readonly { kind: string }[]): Resources {
  const out: Resources = {
    mesh: meshSchema.parse(mesh),
    intentions: new Map(),
    defaults: new Map(),
    resolvers: new Map(),
    splits: new Map(),
    routes: new Map(),
  };
  for (const r of resources) {
    if (r.kind === "Intention") {
      const it = intentionSchema.parse(r);
      out.intentions.set(it.name, it);
    } else if (r.kind === "ServiceDefaults") {
      const sd = serviceDefaultsSchema.parse(r);
      out.defaults.set(sd.name, sd);
    } else if (r.kind === "Resolver") {
      const rs = resolverSchema.parse(r);
      out.resolvers.set(rs.name, rs);
    } else if (r.kind === "Split") {
      const sp = splitSchema.parse(r);
      out.splits.set(sp.name, sp);
    } else if (r.kind === "Route") {
      const rt = routeSchema.parse(r);
      out.routes.set(rt.name, rt);
    } else {
      throw new Error(`golden inputs do not take ${r.kind} resources (yet)`);
    }
  }
  return out;
}

function inputsFrom(
  own: Instance,
  res: Resources,
  instances: Record<string, readonly Instance[]>,
): SnapshotInputs {
  return {
    instance: own,
    mesh: res.mesh,
    intention: (s) => res.intentions.get(s),
    serviceDefaults: (s) => res.defaults.get(s),
    resolver: (s) => res.resolvers.get(s),
    split: (s) => res.splits.get(s),
    route: (s) => res.routes.get(s),
    gateway: () => undefined,
    instances: (s) => (Object.hasOwn(instances, s) ? (instances[s] as Instance[]) : []),
  };
}

function loadCase(name: string): { file: CaseFile; inputs: SnapshotInputs } {
  const file = JSON.parse(readFileSync(`${GOLDEN_DIR}${name}.input.json`, "utf8")) as CaseFile;
  const instances: Record<string, Instance[]> = {};
  for (const [svc, list] of Object.entries(file.instances)) instances[svc] = list.map((r) => toInstance(r));
  return {
    file,
    inputs: inputsFrom(toInstance(file.instance), parseResources(file.mesh, file.resources), instances),
  };
}

const CASES = readdirSync(GOLDEN_DIR)
  .filter((f) => f.endsWith(".input.json"))
  .map((f) => f.slice(0, -".input.json".length))
  .sort();

const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;

// ---------------------------------------------------------------- golden

describe("buildSnapshot golden files", () => {
  it("has the cases the builder is specified by", () => {
    expect(CASES).toEqual(
      expect.arrayContaining([
        "no-upstreams-default-deny",
        "web-two-upstreams",
        "intention-l7-ordering",
        "service-defaults-lb",
        "weights-from-meta",
        "mesh-allow",
        "routes-all-actions",
        "resolver-failover-redirect",
        "protocol-majority",
        "split-subsets",
        "service-defaults-rate-limit",
        "service-defaults-retries",
        "service-defaults-outlier",
        "mesh-tracing",
        "access-logs-service-defaults",
        "access-logs-mesh-off",
      ]),
    );
  });

  it.each(CASES)("%s", (name) => {
    const { inputs } = loadCase(name);
    const { snapshot } = buildSnapshot(inputs);
    const text = json(snapshot);
    const goldenPath = `${GOLDEN_DIR}${name}.snapshot.json`;
    if (UPDATE) writeFileSync(goldenPath, text);
    let golden: string;
    try {
      golden = readFileSync(goldenPath, "utf8");
    } catch {
      throw new Error(`no golden file ${goldenPath}; run UPDATE_GOLDEN=1 and review it`);
    }
    expect(text).toBe(golden);
    // JSON-clean: no undefined members anywhere (toStrictEqual tells them from absent ones).
    expect(JSON.parse(text)).toStrictEqual(snapshot);
    expect(checkSnapshot(snapshot).ok).toBe(true);
    const { version, ...content } = snapshot;
    expect(version).toMatch(/^[0-9a-f]{16}$/);
    expect(snapshotVersion(content)).toBe(version);
  });
});

// ---------------------------------------------------------------- semantics

describe("buildSnapshot", () => {
  it("orders intention sources exact names first (declared order), then the wildcard", () => {
    const { snapshot } = buildSnapshot(loadCase("intention-l7-ordering").inputs);
    expect(snapshot.inbound.authz.sources.map((s) => s.name)).toEqual(["web", "admin", "*"]);
    const web = snapshot.inbound.authz.sources[0];
    expect(web?.permissions?.[1]?.http.methods).toEqual(["GET", "HEAD"]);
    expect(web?.permissions?.[0]?.http.headers?.[0]).toEqual({
      name: "x-debug",
      present: true,
      invert: false,
    });
    expect(snapshot.inbound.authz.intention).toBe(true);
  });

  it("excludes critical instances and sorts endpoints by id, whatever the input order", () => {
    const { snapshot } = buildSnapshot(loadCase("web-two-upstreams").inputs);
    expect(snapshot.clusters.api?.endpoints.map((e) => [e.id, e.health])).toEqual([
      ["api-1", "warning"],
      ["api-2", "passing"],
    ]);
    expect(snapshot.upstreams.map((u) => [u.service, u.protocol])).toEqual([
      ["api", "http"],
      ["db", "tcp"],
    ]);
  });

  it("reads meta.weight as an integer 1..10000, else 1", () => {
    const table: [string | undefined, number][] = [
      ["1", 1],
      ["5", 5],
      ["10000", 10_000],
      ["00042", 42],
      [undefined, 1],
      ["", 1],
      ["0", 1],
      ["10001", 1],
      ["100000", 1],
      ["2.5", 1],
      ["-3", 1],
      ["+3", 1],
      [" 7", 1],
      ["7 ", 1],
      ["1e3", 1],
      ["0x10", 1],
      ["heavy", 1],
    ];
    for (const [text, weight] of table) expect([text, endpointWeight(text)]).toEqual([text, weight]);
  });

  it("does not mutate its inputs (frozen inputs build fine and keep their order)", () => {
    const { inputs } = loadCase("web-two-upstreams");
    const api = inputs.instances("api");
    const before = api.map((i) => i.id);
    const deepFreeze = (v: unknown): void => {
      if (v && typeof v === "object" && !Object.isFrozen(v)) {
        Object.freeze(v);
        for (const c of Object.values(v)) deepFreeze(c);
      }
    };
    for (const s of ["api", "db"]) deepFreeze(inputs.instances(s));
    deepFreeze(inputs.instance);
    expect(() => buildSnapshot(inputs)).not.toThrow();
    expect(inputs.instances("api").map((i) => i.id)).toEqual(before);
  });
});

// ---------------------------------------------------------------- determinism

const STATUSES: HealthStatus[] = ["passing", "warning", "critical"];
const PROTOCOLS = ["tcp", "http", "http2", "grpc"] as const;

const arbInstance = (service: string) =>
  fc
    .record({
      id: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,6}$/),
      port: fc.integer({ min: 1, max: 65535 }),
      status: fc.constantFrom(...STATUSES),
      weight: fc.option(fc.oneof(fc.integer({ min: -5, max: 20_000 }).map(String), fc.string()), {
        nil: undefined,
      }),
      protocol: fc.option(fc.constantFrom(...PROTOCOLS), { nil: undefined }),
      zone: fc.option(fc.constantFrom("a", "b"), { nil: undefined }),
    })
    .map((r) =>
      toInstance({
        id: `${service}-${r.id}`,
        service,
        address: "10.0.0.1",
        port: r.port,
        status: r.status,
        ...(r.weight === undefined ? {} : { meta: { weight: r.weight } }),
        ...(r.protocol === undefined ? {} : { proxy: { protocol: r.protocol } }),
        ...(r.zone === undefined ? {} : { locality: { zone: r.zone } }),
      }),
    );

/** A list of instances with unique ids, and the same list in another order. */
const arbListAndShuffle = (service: string) =>
  fc
    .uniqueArray(arbInstance(service), { selector: (i) => i.id, maxLength: 25 })
    .chain((list) =>
      fc.tuple(
        fc.constant(list),
        fc.shuffledSubarray(list, { minLength: list.length, maxLength: list.length }),
      ),
    );

const WEB = toInstance({
  id: "web-1",
  service: "web",
  address: "10.0.0.1",
  port: 21000,
  proxy: {
    protocol: "http",
    upstreams: [
      { service: "api", localPort: 9001 },
      { service: "db", localPort: 9002 },
    ],
  },
});
const NO_RESOURCES = parseResources({ kind: "Mesh", name: "mesh" }, []);

describe("determinism", () => {
  it("gives byte-identical JSON and the same version for the same instances in any order", () => {
    fc.assert(
      fc.property(arbListAndShuffle("api"), arbListAndShuffle("db"), ([api, api2], [db, db2]) => {
        const a = buildSnapshot(inputsFrom(WEB, NO_RESOURCES, { api, db }));
        const b = buildSnapshot(inputsFrom(WEB, NO_RESOURCES, { api: api2, db: db2 }));
        expect(JSON.stringify(b.snapshot)).toBe(JSON.stringify(a.snapshot));
        expect(b.snapshot.version).toBe(a.snapshot.version);
        expect(b.deps).toEqual(a.deps);
      }),
      { numRuns: 200 },
    );
  });

  it("changes the version iff the content changes", () => {
    fc.assert(
      fc.property(arbListAndShuffle("api"), arbListAndShuffle("api"), ([a], [b]) => {
        const sa = buildSnapshot(inputsFrom(WEB, NO_RESOURCES, { api: a })).snapshot;
        const sb = buildSnapshot(inputsFrom(WEB, NO_RESOURCES, { api: b })).snapshot;
        const { version: va, ...ca } = sa;
        const { version: vb, ...cb } = sb;
        expect(va === vb).toBe(stableJson(ca) === stableJson(cb));
      }),
      { numRuns: 200 },
    );
  });

  it("keeps the version for changes the proxy cannot see, and changes it for ones it can", () => {
    const base = () => ({
      api: [
        toInstance({ id: "api-1", service: "api", address: "10.0.1.1", port: 21000, meta: { weight: "3" } }),
        toInstance({ id: "api-2", service: "api", address: "10.0.1.2", port: 21000, status: "critical" }),
      ],
      other: [toInstance({ id: "other-1", service: "other", address: "10.9.0.1", port: 1 })],
    });
    const version = (mutate: (l: ReturnType<typeof base>) => void) => {
      const l = base();
      mutate(l);
      return buildSnapshot(inputsFrom(WEB, NO_RESOURCES, l)).snapshot.version;
    };
    const v0 = version(() => {});
    const same: [string, (l: ReturnType<typeof base>) => void][] = [
      ["modifyIndex", (l) => Object.assign(l.api[0] as Instance, { modifyIndex: 99 })],
      ["tags", (l) => Object.assign(l.api[0] as Instance, { tags: ["canary"] })],
      ["a critical instance's address", (l) => Object.assign(l.api[1] as Instance, { address: "10.0.9.9" })],
      ["a service that is no upstream", (l) => Object.assign(l.other[0] as Instance, { status: "critical" })],
    ];
    const changed: [string, (l: ReturnType<typeof base>) => void][] = [
      ["weight", (l) => Object.assign(l.api[0] as Instance, { meta: { weight: "4" } })],
      ["passing -> warning", (l) => Object.assign(l.api[0] as Instance, { status: "warning" })],
      ["critical -> passing", (l) => Object.assign(l.api[1] as Instance, { status: "passing" })],
      ["port", (l) => Object.assign(l.api[0] as Instance, { port: 21001 })],
      ["locality", (l) => Object.assign(l.api[0] as Instance, { locality: { zone: "z" } })],
    ];
    for (const [what, m] of same) expect([what, version(m)]).toEqual([what, v0]);
    for (const [what, m] of changed) expect([what, version(m) !== v0]).toEqual([what, true]);
  });

  it("snapshotVersion ignores key order and a version member", () => {
    const { snapshot } = buildSnapshot(loadCase("service-defaults-lb").inputs);
    const { version, ...content } = snapshot;
    const reversed = JSON.parse(JSON.stringify(content), function (this: unknown, _k, v: unknown) {
      return v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).reverse())
        : v;
    });
    expect(JSON.stringify(reversed)).not.toBe(JSON.stringify(content));
    expect(snapshotVersion(reversed)).toBe(version);
    expect(snapshotVersion(snapshot)).toBe(version);
  });
});

// ---------------------------------------------------------------- deps

/** Inputs whose lookups are counted per key. */
function counted(inputs: SnapshotInputs) {
  const calls = { intention: new Map<string, number>(), defaults: new Map<string, number>() };
  const instanceCalls = new Map<string, number>();
  /** Wraps a lookup so each call is counted under its key. */
  const count =
    <T>(m: Map<string, number>, f: (s: string) => T) =>
    (s: string): T => {
      m.set(s, (m.get(s) ?? 0) + 1);
      return f(s);
    };
  const wrapped: SnapshotInputs = {
    ...inputs,
    intention: count(calls.intention, (s) => inputs.intention(s)),
    serviceDefaults: count(calls.defaults, (s) => inputs.serviceDefaults(s)),
    instances: count(instanceCalls, (s) => inputs.instances(s)),
  };
  return { wrapped, calls, instanceCalls };
}

describe("deps", () => {
  it("lists every service and resource read, present or absent, sorted", () => {
    const { inputs } = loadCase("web-two-upstreams");
    const { wrapped, calls, instanceCalls } = counted(inputs);
    const { deps } = buildSnapshot(wrapped);
    expect(deps).toEqual({
      services: ["api", "db", "web"],
      config: [
        "Gateway/web",
        "Intention/web",
        "Mesh/mesh",
        "Resolver/api",
        "Resolver/db",
        // db is tcp: routes are HTTP, so its Route is never read.
        "Route/api",
        "ServiceDefaults/api",
        "ServiceDefaults/db",
        "ServiceDefaults/web",
        "Split/api",
        "Split/db",
      ],
    });
    // Exactly what was read: every lookup is in deps, and each key was looked up once.
    expect([...instanceCalls.keys()].sort()).toEqual(["api", "db"]);
    expect([...calls.intention.keys()]).toEqual(["web"]);
    expect([...calls.defaults.keys()].sort()).toEqual(["api", "db", "web"]);
    for (const n of [...instanceCalls.values(), ...calls.intention.values(), ...calls.defaults.values()]) {
      expect(n).toBe(1);
    }
  });

  it("lists only the own service and resources for a proxy without upstreams", () => {
    const { deps } = buildSnapshot(loadCase("no-upstreams-default-deny").inputs);
    expect(deps).toEqual({
      services: ["billing"],
      // Gateway/billing: a proxy named like a Gateway resource is that gateway (its route subsets).
      config: ["Gateway/billing", "Intention/billing", "Mesh/mesh", "ServiceDefaults/billing"],
    });
  });

  it("lists an upstream named twice once", () => {
    const own = toInstance({
      id: "web-1",
      service: "web",
      address: "10.0.0.1",
      port: 21000,
      proxy: {
        upstreams: [
          { service: "api", localPort: 9001 },
          { service: "api", localPort: 9011 },
        ],
      },
    });
    const { snapshot, deps } = buildSnapshot(inputsFrom(own, NO_RESOURCES, {}));
    expect(deps.services).toEqual(["api", "web"]);
    expect(snapshot.upstreams.map((u) => u.cluster)).toEqual(["api", "api"]);
    expect(Object.keys(snapshot.clusters)).toEqual(["api"]);
  });
});

// ---------------------------------------------------------------- limits

function manyInstances(service: string, n: number): Instance[] {
  return Array.from({ length: n }, (_, i) =>
    toInstance({ id: `${service}-${i}`, service, address: "10.0.0.1", port: 20000 + (i % 1000) }),
  );
}

describe("invalid snapshots", () => {
  const ONE_UPSTREAM = toInstance({
    id: "web-1",
    service: "web",
    address: "10.0.0.1",
    port: 21000,
    proxy: { upstreams: [{ service: "api", localPort: 9001 }] },
  });

  it("accepts exactly maxEndpointsPerCluster endpoints", () => {
    const api = manyInstances("api", SNAPSHOT_LIMITS.maxEndpointsPerCluster);
    const { snapshot } = buildSnapshot(inputsFrom(ONE_UPSTREAM, NO_RESOURCES, { api }));
    expect(snapshot.clusters.api?.endpoints).toHaveLength(SNAPSHOT_LIMITS.maxEndpointsPerCluster);
  });

  it("throws WEFT_ERR_VALIDATION naming the problem beyond maxEndpointsPerCluster", () => {
    const api = manyInstances("api", SNAPSHOT_LIMITS.maxEndpointsPerCluster + 1);
    const inputs = inputsFrom(ONE_UPSTREAM, NO_RESOURCES, { api });
    let thrown: unknown;
    try {
      buildSnapshot(inputs);
    } catch (e) {
      thrown = e;
    }
    expect(isWeftError(thrown, "WEFT_ERR_VALIDATION")).toBe(true);
    expect((thrown as Error).message).toContain("clusters.api.endpoints");
    expect((thrown as Error).message).toContain('proxy "web-1"');
    // The result form keeps the deps, so the caller knows what to watch to retry.
    const r = tryBuildSnapshot(inputs);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe("WEFT_ERR_VALIDATION");
      expect(r.deps.services).toEqual(["api", "web"]);
    }
  });

  it("does not count critical instances against the endpoint limit", () => {
    const api = manyInstances("api", SNAPSHOT_LIMITS.maxEndpointsPerCluster + 5);
    for (const i of api.slice(0, 5)) i.status = "critical";
    expect(() => buildSnapshot(inputsFrom(ONE_UPSTREAM, NO_RESOURCES, { api }))).not.toThrow();
  });

  it("throws beyond maxUpstreams and on a local port used twice", () => {
    // The registration schema refuses both; an Instance built some other way must not get through.
    const withUpstreams = (upstreams: { service: string; localPort: number }[]): Instance => ({
      ...ONE_UPSTREAM,
      proxy: { protocol: "tcp", upstreams },
    });
    const many = Array.from({ length: SNAPSHOT_LIMITS.maxUpstreams + 1 }, (_, i) => ({
      service: `svc-${i}`,
      localPort: 9000 + i,
    }));
    const tooMany = tryBuildSnapshot(inputsFrom(withUpstreams(many), NO_RESOURCES, {}));
    expect(tooMany.ok ? "" : tooMany.error.message).toContain("upstreams: more than 64");
    const clash = tryBuildSnapshot(
      inputsFrom(
        withUpstreams([
          { service: "api", localPort: 9001 },
          { service: "db", localPort: 9001 },
        ]),
        NO_RESOURCES,
        {},
      ),
    );
    expect(clash.ok ? "" : clash.error.message).toContain("upstreams[1].localPort");
    expect(() => buildSnapshot(inputsFrom(withUpstreams(many), NO_RESOURCES, {}))).toThrow(/upstreams/);
  });

  it("refuses a value JSON cannot carry with WEFT_ERR_VALIDATION, not a TypeError", () => {
    const api = [{ ...manyInstances("api", 1)[0], locality: { zone: Number.NaN } } as unknown as Instance];
    const r = tryBuildSnapshot(inputsFrom(ONE_UPSTREAM, NO_RESOURCES, { api }));
    expect(r.ok ? "" : r.error.code).toBe("WEFT_ERR_VALIDATION");
    expect(() => buildSnapshot(inputsFrom(ONE_UPSTREAM, NO_RESOURCES, { api }))).toThrow(/not a JSON number/);
  });

  it("refuses a hostile upstream name instead of polluting the clusters object", () => {
    const own: Instance = {
      ...ONE_UPSTREAM,
      proxy: { protocol: "tcp", upstreams: [{ service: "__proto__", localPort: 9001 }] },
    };
    const r = tryBuildSnapshot(inputsFrom(own, NO_RESOURCES, {}));
    expect(r.ok).toBe(false);
    expect(({} as Record<string, unknown>).service).toBeUndefined();
  });
});
