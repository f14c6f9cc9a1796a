/**
 * Config resources: `apply`, `get`, `delete` (through the API client) and
 * `validate` (offline). `apply` validates every file locally first and sends
 * nothing when any is invalid; the server validates again (schema, then
 * cross-resource against the stored set) and writes all or nothing.
 */
import { type ClientResource, KINDS, parseResource, type Resource, type WeftClient } from "@weft/api";
import { WeftError } from "@weft/core";
import type { Command } from "commander";
import { Option } from "commander";
import { type ClientFlags, clientFrom, withClientOptions } from "../client-options.js";
import { loadResources } from "../files.js";
import type { Io } from "../io.js";
import { kindList, resolveKind } from "../kinds.js";
import { json, paint, plural, table, useColor } from "../output.js";
import { yamlDocs } from "../output-yaml.js";

/** Every stored resource, parsed; what the server's set rules check a new file against. */
async function storedResources(client: WeftClient): Promise<Resource[]> {
  const lists = await Promise.all(KINDS.map((k) => client.listConfig(k)));
  const out: Resource[] = [];
  for (const list of lists) {
    for (const r of list.value) {
      const parsed = parseResource(r);
      if (parsed.ok) out.push(parsed.resource);
    }
  }
  return out;
}

function invalid(errors: readonly string[], files: number, io: Io): WeftError {
  for (const e of errors) io.err.write(`${e}\n`);
  return new WeftError("WEFT_ERR_CONFIG_INVALID", {
    detail: `${plural(errors.length, "error")} in ${plural(files, "file")}; nothing was applied`,
  });
}

export function registerConfigCommands(program: Command, io: Io): void {
  withClientOptions(
    program
      .command("apply")
      .summary("create or update resources from files")
      .description(
        "Create or update config resources from a YAML/JSON file or a directory of them.\n" +
          "Every file is validated locally first; nothing is sent when one is invalid.\n" +
          "The control plane writes all resources in one transaction, or none.",
      )
      .requiredOption("-f, --file <path>", "a file, or a directory of *.yaml/*.yml/*.json files (sorted)")
      .option("--json", "print the server's answer as JSON"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft apply -f mesh.yaml\n  $ weft apply -f config/ --addr 10.0.0.5:7400\n",
    )
    .action(async (opts: ClientFlags & { file: string; json?: boolean }) => {
      const client = clientFrom(opts, io.cwd);
      let loaded = loadResources(opts.file);
      if (loaded.errors.length > 0) {
        // References may point at what is already stored (a Split at a stored Resolver's subsets):
        // check again against it, as the server will. Unreachable: the local errors stand.
        const stored = await storedResources(client).catch(() => undefined);
        if (stored) loaded = loadResources(opts.file, stored);
      }
      if (loaded.errors.length > 0) throw invalid(loaded.errors, loaded.files.length, io);
      if (loaded.documents.length === 0) {
        throw new WeftError("WEFT_ERR_USAGE", { detail: `no resources found in ${opts.file}` });
      }
      const res = await client.applyConfig(loaded.documents);
      if (opts.json) {
        io.out.write(json(res));
        return;
      }
      const color = useColor(io.out);
      for (const a of res.applied) {
        const c = a.action === "created" ? "green" : a.action === "updated" ? "yellow" : "dim";
        io.out.write(`${a.kind}/${a.name} ${paint(a.action, c, color)}\n`);
      }
    });

  withClientOptions(
    program
      .command("get")
      .summary("show resources of a kind, or one resource")
      .description(`Show config resources. KIND is one of: ${kindList()} (case-insensitive).`)
      .argument("<kind>", "resource kind, e.g. intention")
      .argument("[name]", "resource name; all of the kind when omitted")
      .addOption(
        new Option("-o, --output <format>", "output format")
          .choices(["table", "json", "yaml"])
          .default("table"),
      )
      .option("--json", "same as -o json"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft get intention\n  $ weft get intention api -o yaml\n  $ weft get route -o json | jq '.[].name'\n  $ weft get split -o yaml > splits.yaml && weft apply -f splits.yaml\n",
    )
    .action(
      async (
        kindArg: string,
        name: string | undefined,
        opts: ClientFlags & { output: string; json?: boolean },
      ) => {
        const kind = resolveKind(kindArg);
        const client = clientFrom(opts, io.cwd);
        const format = opts.json ? "json" : opts.output;
        const fetched =
          name === undefined ? (await client.listConfig(kind)).value : [await client.getConfig(kind, name)];
        const items = fetched.map(headFirst);
        if (format === "json") {
          io.out.write(json(name === undefined ? items : items[0]));
        } else if (format === "yaml") {
          io.out.write(yamlDocs(items));
        } else if (items.length === 0) {
          io.err.write(`no ${kind} resources\n`);
        } else {
          io.out.write(resourceTable(kind, items));
        }
      },
    );

  withClientOptions(
    program
      .command("delete")
      .summary("delete one resource")
      .description(`Delete a config resource. KIND is one of: ${kindList()} (case-insensitive).`)
      .argument("<kind>", "resource kind")
      .argument("<name>", "resource name"),
  )
    .addHelpText("after", "\nExamples:\n  $ weft delete intention api\n  $ weft delete split api\n")
    .action(async (kindArg: string, name: string, opts: ClientFlags) => {
      const kind = resolveKind(kindArg);
      await clientFrom(opts, io.cwd).deleteConfig(kind, name);
      io.out.write(`${kind}/${name} deleted\n`);
    });

  program
    .command("validate")
    .summary("check resource files offline")
    .description(
      "Validate YAML/JSON resource files without a control plane: schemas, unknown fields,\n" +
        "and checks across the resources of the files. Errors name file:line:col, the\n" +
        "resource, the field path and what was expected.",
    )
    .requiredOption("-f, --file <path>", "a file, or a directory of *.yaml/*.yml/*.json files (sorted)")
    .option("--json", "print {valid, resources, errors} as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft validate -f weft.yaml\n  $ weft validate -f config/ && weft apply -f config/\n",
    )
    .action((opts: { file: string; json?: boolean }) => {
      const loaded = loadResources(opts.file);
      if (opts.json) {
        io.out.write(
          json({ valid: loaded.errors.length === 0, resources: loaded.valid, errors: loaded.errors }),
        );
        if (loaded.errors.length > 0) {
          throw new WeftError("WEFT_ERR_CONFIG_INVALID", { detail: plural(loaded.errors.length, "error") });
        }
        return;
      }
      if (loaded.errors.length > 0) {
        for (const e of loaded.errors) io.err.write(`${e}\n`);
        throw new WeftError("WEFT_ERR_CONFIG_INVALID", {
          detail: `${plural(loaded.errors.length, "error")} in ${plural(loaded.files.length, "file")}`,
        });
      }
      io.out.write(`${plural(loaded.valid, "resource")} valid\n`);
    });
}

// --- tables ---

function str(v: unknown): string {
  if (v === undefined || v === null) return "-";
  if (typeof v === "string") return v.length > 0 ? v : "-";
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}

function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function obj(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** Kind-specific columns after NAME: enough to recognise a resource at a glance. */
const COLUMNS: Record<string, { headers: string[]; cells: (r: ClientResource) => string[] }> = {
  Intention: {
    headers: ["SOURCES"],
    cells: (r) => [
      arr(r.sources)
        .map((s) => {
          const o = obj(s);
          const perms = arr(o.permissions);
          return `${str(o.name)}:${perms.length > 0 ? `L7(${perms.length})` : str(o.action)}`;
        })
        .join(", ") || "-",
    ],
  },
  ServiceDefaults: {
    headers: ["PROTOCOL", "LOAD BALANCER"],
    cells: (r) => [str(r.protocol), str(obj(r.loadBalancer).policy ?? r.loadBalancer)],
  },
  Route: { headers: ["ROUTES"], cells: (r) => [String(arr(r.routes).length)] },
  Split: {
    headers: ["SPLITS"],
    cells: (r) => [
      arr(r.splits)
        .map((s) => {
          const o = obj(s);
          return `${str(o.weight)}% ${str(o.subset ?? o.service)}`;
        })
        .join(", ") || "-",
    ],
  },
  Resolver: {
    headers: ["SUBSETS", "DEFAULT SUBSET"],
    cells: (r) => [Object.keys(obj(r.subsets)).join(",") || "-", str(r.defaultSubset)],
  },
  Gateway: {
    headers: ["TYPE", "LISTENERS"],
    cells: (r) => [
      str(r.type),
      arr(r.listeners)
        .map((l) => `${str(obj(l).port)}/${str(obj(l).protocol)}`)
        .join(", ") || "-",
    ],
  },
  Mesh: {
    headers: ["TRUST DOMAIN", "DEFAULT POLICY"],
    cells: (r) => [str(r.trustDomain), str(r.defaultPolicy)],
  },
  Workload: {
    headers: ["SERVICE", "REPLICAS", "PROTOCOL"],
    cells: (r) => [str(r.service ?? r.name), str(r.replicas ?? 1), str(r.protocol)],
  },
};

export function resourceTable(kind: string, items: readonly ClientResource[]): string {
  const cols = COLUMNS[kind] ?? { headers: [], cells: () => [] };
  return table(
    ["KIND", "NAME", ...cols.headers],
    items.map((r) => [str(r.kind ?? kind), str(r.name), ...cols.cells(r)]),
  );
}

/** `kind` and `name` first, as people write resources; the server stores keys sorted. */
function headFirst(resource: ClientResource): ClientResource {
  const { kind, name, ...rest } = resource;
  return { kind, name, ...rest };
}
