/**
 * Validation of a file of resources, in layers (ARCHITECTURE.md, habit 7):
 *   1. text -> documents (documents.ts: YAML syntax, limits, duplicate keys);
 *   2. document -> resource (resources/: schema per kind, unknown keys refused,
 *      defaults filled, single-resource rules);
 *   3. resources -> set (validateSet: rules across resources, optionally
 *      against what is already stored).
 * Each error names file:line:column, the document and the field path:
 *   weft.yaml:12:5: Split "api": splits[1].weight: expected a number, got string
 */
import { parseDocuments, type SourceDocument } from "./documents.js";
import {
  type Gateway,
  type Kind,
  MESH_NAME,
  parseResource,
  type Resolver,
  type Resource,
  type ResourceOfKind,
  resourceKey,
  type ValidationIssue,
  type Workload,
} from "./resources/index.js";

export interface FileError {
  file: string;
  line: number;
  column: number;
  /** `Split "api"`, or `document 3` when the document has no usable kind and name. */
  document: string;
  path: (string | number)[];
  message: string;
  /** The whole error as one line: `file:line:col: document: path: message`. */
  text: string;
}

export interface SetOptions {
  /**
   * The set is a whole local mesh (a `weft up` file): every upstream must name
   * a service some Workload (or a terminating gateway) in the set provides,
   * and ports bound on the host (upstream local ports, fixed app ports,
   * gateway listeners) must not collide. Default: true when the set holds a
   * Workload.
   */
  localMesh?: boolean;
}

export interface ValidateOptions extends SetOptions {
  /** Resources already stored, for references the file does not define itself. */
  existing?: readonly Resource[];
}

export interface ValidatedFile {
  /** Resources that passed the schema, in file order. Use them only when `errors` is empty. */
  resources: Resource[];
  errors: FileError[];
}

export interface SetIssue extends ValidationIssue {
  /** Index into the `resources` given to validateSet. */
  index: number;
  kind: Kind;
  name: string;
}

/** `splits[1].weight`, `meta["app.io/x"]`. */
export function formatPath(path: readonly (string | number)[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(p)) out += out === "" ? p : `.${p}`;
    else out += `[${JSON.stringify(p)}]`;
  }
  return out;
}

function documentLabel(value: unknown, index: number): string {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const { kind, name } = value as Record<string, unknown>;
    if (typeof kind === "string" && typeof name === "string" && kind.length <= 64 && name.length <= 253) {
      return `${kind} ${JSON.stringify(name)}`;
    }
  }
  return `document ${index + 1}`;
}

export function renderError(e: Omit<FileError, "text">): string {
  const where = `${e.file}:${e.line}:${e.column}`;
  const path = formatPath(e.path);
  return `${where}: ${e.document}: ${path ? `${path}: ` : ""}${e.message}`;
}

function fileError(e: Omit<FileError, "text">): FileError {
  return { ...e, text: renderError(e) };
}

export interface SourceText {
  text: string;
  fileName: string;
}

function crashError(fileName: string, e: unknown): FileError {
  return fileError({
    file: fileName,
    line: 1,
    column: 1,
    document: "file",
    path: [],
    message: `could not be checked: ${e instanceof Error ? e.message : String(e)}`,
  });
}

/**
 * Validates a file's text: syntax, schema of every document, then the set
 * rules (only once every document passed its schema, so that one broken
 * document does not cause follow-on errors in others). Never throws.
 */
export function validateFile(text: string, fileName: string, options: ValidateOptions = {}): ValidatedFile {
  return validateFiles([{ text, fileName }], options);
}

/**
 * Validates several files as ONE set (a directory given to `weft apply -f`
 * or `weft validate -f`): references and port collisions are checked across
 * all of them, and each error names the file it is in. Never throws.
 */
export function validateFiles(files: readonly SourceText[], options: ValidateOptions = {}): ValidatedFile {
  const resources: Resource[] = [];
  const errors: FileError[] = [];
  const sources: { doc: SourceDocument; label: string; fileName: string }[] = [];
  for (const { text, fileName } of files) {
    try {
      const parsed = parseDocuments(text);
      for (const e of parsed.errors) {
        const document = e.index === undefined ? "file" : `document ${e.index + 1}`;
        errors.push(
          fileError({
            file: fileName,
            line: e.line,
            column: e.column,
            document,
            path: [],
            message: e.message,
          }),
        );
      }
      for (const doc of parsed.documents) {
        const label = documentLabel(doc.value, doc.index);
        const r = parseResource(doc.value);
        if (r.ok) {
          resources.push(r.resource);
          sources.push({ doc, label, fileName });
        } else {
          for (const issue of r.issues) {
            const at = doc.locate(issue.path);
            errors.push(
              fileError({ file: fileName, ...at, document: label, path: issue.path, message: issue.message }),
            );
          }
        }
      }
    } catch (e) {
      errors.push(crashError(fileName, e));
    }
  }
  if (errors.length === 0) {
    try {
      for (const issue of validateSet(resources, options.existing, options)) {
        const src = sources[issue.index];
        const at = src ? src.doc.locate(issue.path) : { line: 1, column: 1 };
        errors.push(
          fileError({
            file: src?.fileName ?? files[0]?.fileName ?? "input",
            ...at,
            document: src?.label ?? `${issue.kind} ${JSON.stringify(issue.name)}`,
            path: issue.path,
            message: issue.message,
          }),
        );
      }
    } catch (e) {
      errors.push(crashError(files[0]?.fileName ?? "input", e));
    }
  }
  const order = new Map(files.map((f, i) => [f.fileName, i]));
  errors.sort(
    (a, b) => (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0) || a.line - b.line || a.column - b.column,
  );
  return { resources, errors };
}

// ---------------------------------------------------------------- set rules

/** Resources by kind and name: those in the set win over existing ones. */
class Lookup {
  readonly #byKey = new Map<string, Resource>();
  constructor(set: readonly Resource[], existing: readonly Resource[]) {
    for (const r of existing) this.#byKey.set(resourceKey(r), r);
    for (const r of set) this.#byKey.set(resourceKey(r), r);
  }
  get<K extends Kind>(kind: K, name: string): ResourceOfKind<K> | undefined {
    return this.#byKey.get(`${kind}/${name}`) as ResourceOfKind<K> | undefined;
  }
  all<K extends Kind>(kind: K): ResourceOfKind<K>[] {
    return [...this.#byKey.values()].filter((r): r is ResourceOfKind<K> => r.kind === kind);
  }
}

/**
 * Rules across resources. `existing` supplies what is already stored
 * (resources in `resources` replace existing ones of the same kind and name).
 * Issues point at resources by index. Never throws on schema-valid input.
 */
export function validateSet(
  resources: readonly Resource[],
  existing: readonly Resource[] = [],
  options: SetOptions = {},
): SetIssue[] {
  const issues: SetIssue[] = [];
  const add = (index: number, path: (string | number)[], message: string) => {
    const r = resources[index] as Resource;
    issues.push({ index, kind: r.kind, name: r.name, path, message });
  };
  const lookup = new Lookup(resources, existing);
  const localMesh = options.localMesh ?? resources.some((r) => r.kind === "Workload");

  // Duplicates, and the one Mesh.
  const seen = new Map<string, number>();
  let meshes = 0;
  resources.forEach((r, i) => {
    if (r.kind === "Mesh") {
      meshes++;
      if (r.name !== MESH_NAME) add(i, ["name"], `the Mesh resource is always named "${MESH_NAME}"`);
      if (meshes > 1) add(i, ["kind"], "only one Mesh resource is allowed");
    }
    const key = resourceKey(r);
    if (seen.has(key)) {
      if (r.kind !== "Mesh") add(i, ["name"], `${r.kind} "${r.name}" is defined twice in this set`);
    } else {
      seen.set(key, i);
    }
  });

  // Subsets referenced must be defined by the target service's Resolver.
  const checkSubset = (
    index: number,
    path: (string | number)[],
    service: string,
    subset: string | undefined,
  ) => {
    if (subset === undefined) return;
    const resolver = lookup.get("Resolver", service);
    if (!resolver) {
      add(
        index,
        path,
        `subset "${subset}" of service "${service}" is not defined: "${service}" has no Resolver`,
      );
    } else if (!Object.hasOwn(resolver.subsets, subset)) {
      const known = Object.keys(resolver.subsets);
      add(
        index,
        path,
        `subset "${subset}" is not defined by Resolver "${service}"` +
          (known.length
            ? `; it defines ${known.map((k) => `"${k}"`).join(", ")}`
            : "; it defines no subsets"),
      );
    }
  };

  // The protocol a service speaks, when the set or the store says so.
  const protocolOf = (service: string): string | undefined => {
    const sd = lookup.get("ServiceDefaults", service);
    if (sd?.protocol) return sd.protocol;
    return lookup.all("Workload").find((w) => w.service === service)?.protocol;
  };

  resources.forEach((r, i) => {
    for (const ref of subsetRefs(r)) checkSubset(i, ref.path, ref.service, ref.subset);
    if (r.kind === "Route" && protocolOf(r.name) === "tcp") {
      add(i, ["name"], `service "${r.name}" speaks tcp; HTTP routes need protocol http, http2 or grpc`);
    }
    if (r.kind === "Intention" && protocolOf(r.name) === "tcp") {
      r.sources.forEach((s, j) => {
        if (s.permissions) {
          add(
            i,
            ["sources", j, "permissions"],
            `service "${r.name}" speaks tcp; L7 permissions need protocol http, http2 or grpc`,
          );
        }
      });
    }
  });

  checkResolverCycles(resources, lookup, add);
  checkSubsetsStillUsed(resources, existing, add);

  if (localMesh) checkLocalMesh(resources, lookup, add);
  return issues;
}

type Add = (index: number, path: (string | number)[], message: string) => void;

interface SubsetRef {
  service: string;
  subset: string;
  path: (string | number)[];
}

/** Every (service, subset) a resource names, with the field that names it. */
function subsetRefs(r: Resource): SubsetRef[] {
  const out: SubsetRef[] = [];
  const ref = (service: string, subset: string | undefined, path: (string | number)[]) => {
    if (subset !== undefined) out.push({ service, subset, path });
  };
  switch (r.kind) {
    case "Split":
      r.splits.forEach((e, j) => {
        ref(e.service, e.subset, ["splits", j, "subset"]);
      });
      break;
    case "Route":
      r.routes.forEach((rt, j) => {
        const d = rt.destination;
        if (!d) return;
        ref(d.service ?? r.name, d.subset, ["routes", j, "destination", "subset"]);
        if (d.mirror)
          ref(d.mirror.service, d.mirror.subset, ["routes", j, "destination", "mirror", "subset"]);
      });
      break;
    case "Resolver":
      // Own subsets are checked by the Resolver schema; another datacenter's subsets are not known here.
      if (r.redirect?.service && r.redirect.service !== r.name && !r.redirect.datacenter) {
        ref(r.redirect.service, r.redirect.subset, ["redirect", "subset"]);
      }
      r.failover?.targets.forEach((t, j) => {
        if (t.service && t.service !== r.name && !t.datacenter) {
          ref(t.service, t.subset, ["failover", "targets", j, "subset"]);
        }
      });
      break;
    case "Gateway":
      r.listeners.forEach((l, j) => {
        l.routes.forEach((rt, k) => {
          ref(rt.service, rt.subset, ["listeners", j, "routes", k, "subset"]);
        });
      });
      break;
    default:
      break;
  }
  return out;
}

/**
 * Why `kind`/`name` cannot be deleted while `existing` stays: a Resolver
 * whose subsets other resources still send traffic to. Empty = deletable.
 */
export function deleteIssues(kind: string, name: string, existing: readonly Resource[]): string[] {
  if (kind !== "Resolver") return [];
  const out: string[] = [];
  for (const other of existing) {
    if (other.kind === kind && other.name === name) continue;
    for (const ref of subsetRefs(other)) {
      if (ref.service !== name) continue;
      out.push(
        `Resolver "${name}" defines subset "${ref.subset}", still used by ${other.kind} "${other.name}" (${formatPath(ref.path)}); change that first`,
      );
    }
  }
  return out;
}

/**
 * A Resolver in the set must keep every subset that stored resources (not
 * replaced by the set) still send traffic to: dropping one would silently
 * turn that share of traffic into 503s. Refused on the Resolver, naming the
 * user so they can change it first (or in the same apply).
 */
function checkSubsetsStillUsed(
  resources: readonly Resource[],
  existing: readonly Resource[],
  add: Add,
): void {
  const replaced = new Set(resources.map(resourceKey));
  resources.forEach((r, i) => {
    if (r.kind !== "Resolver") return;
    for (const other of existing) {
      if (replaced.has(resourceKey(other))) continue;
      for (const ref of subsetRefs(other)) {
        if (ref.service !== r.name || Object.hasOwn(r.subsets, ref.subset)) continue;
        add(
          i,
          ["subsets"],
          `subset "${ref.subset}" is still used by ${other.kind} "${other.name}" (${formatPath(ref.path)}); change that first, or in the same apply`,
        );
      }
    }
  });
}

/** Redirect and failover edges between services; a cycle is refused at each resolver of the set on it. */
function checkResolverCycles(resources: readonly Resource[], lookup: Lookup, add: Add): void {
  const edges = (r: Resolver): { to: string; path: (string | number)[] }[] => {
    const out: { to: string; path: (string | number)[] }[] = [];
    if (r.redirect?.service && r.redirect.service !== r.name && !r.redirect.datacenter) {
      out.push({ to: r.redirect.service, path: ["redirect", "service"] });
    }
    r.failover?.targets.forEach((t, j) => {
      if (t.service && t.service !== r.name && !t.datacenter) {
        out.push({ to: t.service, path: ["failover", "targets", j, "service"] });
      }
    });
    return out;
  };
  resources.forEach((r, i) => {
    if (r.kind !== "Resolver") return;
    for (const edge of edges(r)) {
      // Depth-first from the edge's target looking for a way back to r.
      const trail = findPath(edge.to, r.name, lookup, edges);
      if (trail) {
        add(i, edge.path, `redirect/failover cycle: ${[r.name, ...trail].join(" -> ")}`);
      }
    }
  });
}

function findPath(
  from: string,
  target: string,
  lookup: Lookup,
  edges: (r: Resolver) => { to: string }[],
): string[] | undefined {
  const visited = new Set<string>();
  const stack: { service: string; trail: string[] }[] = [{ service: from, trail: [from] }];
  while (stack.length > 0) {
    const { service, trail } = stack.pop() as { service: string; trail: string[] };
    if (service === target) return trail;
    if (visited.has(service)) continue;
    visited.add(service);
    const resolver = lookup.get("Resolver", service);
    if (!resolver) continue;
    for (const e of edges(resolver)) stack.push({ service: e.to, trail: [...trail, e.to] });
  }
  return undefined;
}

/** Rules for a whole local mesh: upstreams resolve, host ports do not collide. */
function checkLocalMesh(resources: readonly Resource[], lookup: Lookup, add: Add): void {
  const provided = new Set<string>();
  for (const w of lookup.all("Workload")) provided.add(w.service);
  for (const g of lookup.all("Gateway")) for (const s of g.services ?? []) provided.add(s.name);

  const ports = new Map<number, string>();
  const claim = (index: number, path: (string | number)[], port: number, what: string) => {
    const holder = ports.get(port);
    if (holder !== undefined) add(index, path, `port ${port} is already used by ${holder}`);
    else ports.set(port, what);
  };

  resources.forEach((r, i) => {
    if (r.kind === "Workload") {
      const w: Workload = r;
      if (w.port !== undefined) claim(i, ["port"], w.port, `Workload "${w.name}" port`);
      w.upstreams.forEach((u, j) => {
        claim(
          i,
          ["upstreams", j, "localPort"],
          u.localPort,
          `Workload "${w.name}" upstreams[${j}].localPort`,
        );
        if (!provided.has(u.service)) {
          add(i, ["upstreams", j, "service"], `no Workload in this file provides service "${u.service}"`);
        }
      });
    } else if (r.kind === "Gateway") {
      const g: Gateway = r;
      g.listeners.forEach((l, j) => {
        claim(i, ["listeners", j, "port"], l.port, `Gateway "${g.name}" listeners[${j}].port`);
      });
    }
  });
}
