/**
 * The config resource kinds and the one entry point that checks a value
 * against them. `parseResource` never throws: it returns the parsed,
 * defaulted, deep-frozen resource or a list of issues, each with a field
 * path and a message saying what was expected.
 */
import { z } from "zod";
import { type Gateway, gatewaySchema } from "./gateway.js";
import { type Intention, intentionSchema } from "./intention.js";
import { type Mesh, meshSchema } from "./mesh.js";
import { type Resolver, resolverSchema } from "./resolver.js";
import { type Route, routeSchema } from "./route.js";
import { type ServiceDefaults, serviceDefaultsSchema } from "./service-defaults.js";
import { type Split, splitSchema } from "./split.js";
import { type Workload, workloadSchema } from "./workload.js";

export * from "./common.js";
export * from "./gateway.js";
export * from "./intention.js";
export * from "./mesh.js";
export * from "./resolver.js";
export * from "./route.js";
export * from "./service-defaults.js";
export * from "./split.js";
export * from "./workload.js";

export const KINDS = [
  "Mesh",
  "Workload",
  "Intention",
  "ServiceDefaults",
  "Route",
  "Split",
  "Resolver",
  "Gateway",
] as const;
export type Kind = (typeof KINDS)[number];

export const SCHEMAS = {
  Mesh: meshSchema,
  Workload: workloadSchema,
  Intention: intentionSchema,
  ServiceDefaults: serviceDefaultsSchema,
  Route: routeSchema,
  Split: splitSchema,
  Resolver: resolverSchema,
  Gateway: gatewaySchema,
} as const satisfies Record<Kind, z.ZodType>;

export const resourceSchema = z.discriminatedUnion("kind", [
  meshSchema,
  workloadSchema,
  intentionSchema,
  serviceDefaultsSchema,
  routeSchema,
  splitSchema,
  resolverSchema,
  gatewaySchema,
]);

export type Resource = Mesh | Workload | Intention | ServiceDefaults | Route | Split | Resolver | Gateway;
export type ResourceInput = z.input<typeof resourceSchema>;
export type ResourceOfKind<K extends Kind> = Extract<Resource, { kind: K }>;

export interface ValidationIssue {
  path: (string | number)[];
  message: string;
}

export type ParseResult<T = Resource> = { ok: true; resource: T } | { ok: false; issues: ValidationIssue[] };

const ALIASES: ReadonlyMap<string, Kind> = (() => {
  const m = new Map<string, Kind>();
  for (const k of KINDS) {
    const lower = k.toLowerCase();
    m.set(lower, k);
    m.set(lower.endsWith("s") ? lower : `${lower}s`, k);
  }
  m.set("meshes", "Mesh");
  m.set("servicedefault", "ServiceDefaults");
  return m;
})();

/**
 * The kind a user typed, case-insensitively ("intention", "service-defaults",
 * "routes" all work); undefined when it names no kind.
 */
export function kindFromString(s: string): Kind | undefined {
  if (typeof s !== "string" || s.length > 64) return undefined;
  return ALIASES.get(s.toLowerCase().replace(/[-_]/g, ""));
}

export function isKind(s: unknown): s is Kind {
  return typeof s === "string" && (KINDS as readonly string[]).includes(s);
}

// ---------------------------------------------------------------- messages

function describeValue(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "number" && Number.isNaN(v)) return "NaN";
  if (typeof v === "object") return "a mapping";
  return typeof v;
}

const EXPECTED: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "an integer",
  boolean: "true or false",
  object: "a mapping",
  array: "a list",
  record: "a mapping",
  literal: "a fixed value",
};

function quote(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

/**
 * One wording for every schema error, applied at parse time so that no
 * message depends on zod's locale: "expected a number, got string".
 */
const errorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case "invalid_type": {
      if (iss.input === undefined) return `required: expected ${EXPECTED[iss.expected] ?? iss.expected}`;
      return `expected ${EXPECTED[iss.expected] ?? iss.expected}, got ${describeValue(iss.input)}`;
    }
    case "invalid_value": {
      const values = iss.values.map(quote);
      if (iss.input === undefined)
        return `required: expected ${values.length === 1 ? values[0] : `one of ${values.join(", ")}`}`;
      if (values.length === 1) return `expected ${values[0]}, got ${quote(iss.input)}`;
      return `expected one of ${values.join(", ")}, got ${quote(iss.input)}`;
    }
    case "too_small": {
      const n = String(iss.minimum);
      if (iss.origin === "array" || iss.origin === "set") return `expected at least ${n} item(s)`;
      if (iss.origin === "string") return `expected at least ${n} character(s)`;
      return `expected a number ${iss.inclusive ? ">=" : ">"} ${n}, got ${quote(iss.input)}`;
    }
    case "too_big": {
      const n = String(iss.maximum);
      if (iss.origin === "array" || iss.origin === "set") return `expected at most ${n} item(s)`;
      if (iss.origin === "string") return `expected at most ${n} character(s)`;
      return `expected a number ${iss.inclusive ? "<=" : "<"} ${n}, got ${quote(iss.input)}`;
    }
    case "invalid_format":
      return `invalid ${iss.format}`;
    case "not_multiple_of":
      return `expected a multiple of ${String(iss.divisor)}`;
    case "invalid_union":
      return "does not match any allowed form";
    default:
      return undefined;
  }
};

function toPath(path: readonly PropertyKey[]): (string | number)[] {
  return path.map((p) => (typeof p === "number" ? p : String(p)));
}

/** Flattens zod issues into ours: one issue per unknown key, pointing at that key. */
export function toValidationIssues(issues: readonly z.core.$ZodIssue[]): ValidationIssue[] {
  const out: ValidationIssue[] = [];
  for (const iss of issues) {
    const path = toPath(iss.path);
    if (iss.code === "unrecognized_keys") {
      for (const key of iss.keys) {
        out.push({ path: [...path, key], message: `unknown field ${JSON.stringify(key)}` });
      }
    } else if (iss.code === "invalid_key") {
      const inner = iss.issues[0]?.message ?? "invalid key";
      const key = path[path.length - 1];
      out.push({ path, message: `invalid key ${JSON.stringify(String(key))}: ${inner}` });
    } else if (iss.code === "invalid_element") {
      out.push({ path, message: iss.issues[0]?.message ?? iss.message });
    } else {
      out.push({ path, message: iss.message });
    }
  }
  return out;
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === "object" && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const child of Object.values(v as object)) deepFreeze(child);
  }
  return v;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Parses one resource of a known kind (the caller has dispatched on `kind`). */
export function parseResourceOfKind<K extends Kind>(kind: K, value: unknown): ParseResult<ResourceOfKind<K>> {
  try {
    const r = SCHEMAS[kind].safeParse(value, { error: errorMap });
    if (r.success) return { ok: true, resource: deepFreeze(r.data) as ResourceOfKind<K> };
    return { ok: false, issues: toValidationIssues(r.error.issues) };
  } catch (e) {
    // A schema must not throw, but input is hostile (getters, proxies): never let it escape.
    return { ok: false, issues: [{ path: [], message: `could not be checked: ${describeThrown(e)}` }] };
  }
}

function describeThrown(e: unknown): string {
  try {
    return e instanceof Error ? e.message : String(e);
  } catch {
    return "unknown error";
  }
}

/**
 * Checks a value (a parsed YAML or JSON document) against the schema of its
 * `kind`. Never throws.
 */
export function parseResource(value: unknown): ParseResult {
  try {
    if (!isPlainObject(value)) {
      return {
        ok: false,
        issues: [{ path: [], message: `expected a mapping with kind and name, got ${describeValue(value)}` }],
      };
    }
    const kind = value.kind;
    const expected = KINDS.join(", ");
    if (kind === undefined) {
      return { ok: false, issues: [{ path: ["kind"], message: `required: expected one of ${expected}` }] };
    }
    if (!isKind(kind)) {
      const guess = typeof kind === "string" ? kindFromString(kind) : undefined;
      const hint = guess ? `; did you mean "${guess}"?` : "";
      const got = typeof kind === "string" ? JSON.stringify(kind.slice(0, 64)) : describeValue(kind);
      return {
        ok: false,
        issues: [{ path: ["kind"], message: `unknown kind ${got}; expected one of ${expected}${hint}` }],
      };
    }
    return parseResourceOfKind(kind, value);
  } catch (e) {
    return { ok: false, issues: [{ path: [], message: `could not be checked: ${describeThrown(e)}` }] };
  }
}

/** A stable identity for a resource within a set: "Kind/name". */
export function resourceKey(r: { kind: string; name: string }): string {
  return `${r.kind}/${r.name}`;
}
