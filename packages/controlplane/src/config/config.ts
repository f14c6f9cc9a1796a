/**
 * Config resources: apply (validate + one transaction), validate-only,
 * list, get, delete.
 *
 * Data flow: batch -> schema per resource (`model.parse`) -> cross-resource
 * checks against the stored set (`model.validateSet`) -> one store txn with
 * a compare per key (all or nothing, and no lost update when two applies
 * race) -> watch -> in-memory index by kind -> reads and blocking queries.
 *
 * A resource is stored as the user sent it (input JSON, keys in canonical
 * order), not the defaulted schema output: `weft get` shows what was
 * applied, and a later change of defaults applies to old resources too.
 */
import { type Disposable, weftError } from "@weft/core";
import type { Logger } from "pino";
import { ChangeFeed, type ChangeListener } from "../state/change-feed.js";
import { CONFIG_PREFIX, configKey, parseConfigKey } from "../state/keys.js";
import { PrefixMirror } from "../state/prefix-mirror.js";
import { stableJson } from "../state/stable-json.js";
import type { Compare, KeyValue, Store, TxnOp } from "../store/store.js";

export interface ResourceIssue {
  path: string;
  message: string;
}

/**
 * What the config service needs from the resource schemas (packages/api):
 * kept as an interface so the service is testable on its own.
 */
export interface ResourceModel {
  readonly kinds: readonly string[];
  /** Canonical kind for a case-insensitive name, undefined when unknown. */
  kindFromString(text: string): string | undefined;
  /** Schema check of one document. */
  parse(
    value: unknown,
  ): { ok: true; kind: string; name: string; resource: unknown } | { ok: false; issues: ResourceIssue[] };
  /** Cross-resource checks of a batch (parsed) against the stored set (parsed). */
  validateSet(batch: readonly unknown[], existing: readonly unknown[]): ResourceIssue[];
  /** Why a stored resource cannot be deleted (others still depend on it); empty = it can. */
  deleteIssues?(kind: string, name: string, existing: readonly unknown[]): string[];
}

export interface StoredResource {
  kind: string;
  name: string;
  /** The resource as applied (input JSON). */
  resource: unknown;
  modifyIndex: number;
}

export type ApplyAction = "created" | "updated" | "unchanged";

export interface ApplyResult {
  applied: { kind: string; name: string; action: ApplyAction }[];
  revision: number;
}

/** At most this many resources per apply (the 1 MiB body limit bounds it too). */
export const MAX_BATCH = 1000;

interface Entry {
  raw: string;
  input: unknown;
  /** The schema output; undefined when the stored document no longer passes the schema. */
  parsed: unknown;
  modRevision: number;
}

export class ConfigService implements Disposable {
  private readonly byKind = new Map<string, Map<string, Entry>>();
  private mirror: PrefixMirror | undefined;
  /** Index per kind, and change listeners. */
  private readonly feed: ChangeFeed;

  private constructor(
    private readonly store: Store,
    private readonly model: ResourceModel,
    private readonly log: Logger | undefined,
  ) {
    this.feed = new ChangeFeed("config", log);
  }

  static async open(
    store: Store,
    model: ResourceModel,
    opts: { logger?: Logger } = {},
  ): Promise<ConfigService> {
    const s = new ConfigService(store, model, opts.logger);
    s.mirror = await PrefixMirror.open(store, CONFIG_PREFIX, {
      load: (kvs, revision) => {
        s.feed.loaded(revision);
        for (const kv of kvs) s.upsert(kv);
      },
      apply: (batch) => {
        const kinds = new Set<string>();
        for (const ev of batch.events) {
          const k = ev.type === "put" ? s.upsert(ev.kv) : s.remove(ev.key);
          if (k) kinds.add(k);
        }
        s.feed.changed(kinds, batch.revision);
      },
      onError: (err) => s.log?.error({ err }, "config watch broke; config reads are stale"),
    });
    return s;
  }

  private upsert(kv: KeyValue): string | undefined {
    const k = parseConfigKey(kv.key);
    if (!k) return undefined;
    let input: unknown;
    try {
      input = JSON.parse(kv.value);
    } catch (err) {
      this.log?.error({ err, key: kv.key }, "unreadable config record; ignored");
      return undefined;
    }
    const p = this.model.parse(input);
    let m = this.byKind.get(k.kind);
    if (!m) {
      m = new Map();
      this.byKind.set(k.kind, m);
    }
    if (!p.ok)
      this.log?.warn({ key: kv.key, issues: p.issues }, "stored config resource no longer passes the schema");
    m.set(k.name, {
      raw: kv.value,
      input,
      parsed: p.ok ? p.resource : undefined,
      modRevision: kv.modRevision,
    });
    this.feed.saw(k.kind, kv.modRevision);
    return k.kind;
  }

  private remove(key: string): string | undefined {
    const k = parseConfigKey(key);
    if (!k) return undefined;
    this.byKind.get(k.kind)?.delete(k.name);
    return k.kind;
  }

  /** Canonical kind for a path segment; 400 WEFT_ERR_UNKNOWN_KIND otherwise. */
  kindOf(text: string): string {
    const kind = this.model.kindFromString(text);
    if (!kind) {
      throw weftError("WEFT_ERR_UNKNOWN_KIND", {
        kind: text.slice(0, 64),
        expected: this.model.kinds.join(", "),
      });
    }
    return kind;
  }

  /** Schema and cross-resource validation of a `{resources: [...]}` body; throws 400. */
  check(body: unknown): { kind: string; name: string; input: unknown; parsed: unknown }[] {
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      throw weftError("WEFT_ERR_VALIDATION", { detail: "body: expected an object {resources: [...]}" });
    }
    const keys = Object.keys(body);
    const extra = keys.filter((k) => k !== "resources");
    if (extra.length > 0) {
      throw weftError("WEFT_ERR_VALIDATION", { detail: `body: unknown field "${extra[0]?.slice(0, 64)}"` });
    }
    const resources = (body as { resources?: unknown }).resources;
    if (!Array.isArray(resources)) {
      throw weftError("WEFT_ERR_VALIDATION", { detail: "resources: expected an array of resources" });
    }
    if (resources.length > MAX_BATCH) {
      throw weftError("WEFT_ERR_VALIDATION", { detail: `resources: at most ${MAX_BATCH} per request` });
    }
    const problems: string[] = [];
    const out: { kind: string; name: string; input: unknown; parsed: unknown }[] = [];
    const seen = new Set<string>();
    resources.forEach((doc, i) => {
      const rawKind = (doc as { kind?: unknown } | null)?.kind;
      if (typeof rawKind === "string" && !this.model.kindFromString(rawKind)) {
        throw weftError("WEFT_ERR_UNKNOWN_KIND", {
          kind: rawKind.slice(0, 64),
          expected: this.model.kinds.join(", "),
        });
      }
      const r = this.model.parse(doc);
      if (!r.ok) {
        for (const issue of r.issues.slice(0, 20)) {
          const sep = issue.path === "" ? "" : issue.path.startsWith("[") ? "" : ".";
          problems.push(`resources[${i}]${sep}${issue.path}: ${issue.message}`);
        }
        return;
      }
      const id = `${r.kind}/${r.name}`;
      if (seen.has(id)) problems.push(`resources[${i}]: ${id} appears more than once in the batch`);
      seen.add(id);
      out.push({ kind: r.kind, name: r.name, input: doc, parsed: r.resource });
    });
    if (problems.length === 0) {
      for (const issue of this.model.validateSet(
        out.map((r) => r.parsed),
        this.allParsed(),
      )) {
        problems.push(`${issue.path ? `${issue.path}: ` : ""}${issue.message}`);
      }
    }
    if (problems.length > 0) throw weftError("WEFT_ERR_VALIDATION", { detail: problems.join("; ") });
    return out;
  }

  /** Validates then writes the whole batch in one transaction, or nothing. */
  async apply(body: unknown): Promise<ApplyResult> {
    const batch = this.check(body);
    const compare: Compare[] = [];
    const success: TxnOp[] = [];
    const applied: ApplyResult["applied"] = [];
    for (const r of batch) {
      const key = configKey(r.kind, r.name);
      const value = stableJson(r.input);
      const cur = this.byKind.get(r.kind)?.get(r.name);
      if (cur && cur.raw === value) {
        applied.push({ kind: r.kind, name: r.name, action: "unchanged" });
        continue;
      }
      compare.push(
        cur
          ? { key, target: "modRevision", op: "=", value: cur.modRevision }
          : { key, target: "exists", value: false },
      );
      success.push({ type: "put", key, value });
      applied.push({ kind: r.kind, name: r.name, action: cur ? "updated" : "created" });
    }
    if (success.length === 0) return { applied, revision: this.mirror?.revision ?? 0 };
    const res = await this.store.txn({ compare, success });
    if (!res.succeeded) {
      throw weftError("WEFT_ERR_CONFLICT", { detail: "config changed concurrently while applying; retry" });
    }
    await this.mirror?.waitApplied(res.revision);
    this.log?.info({ revision: res.revision, resources: applied.length }, "config applied");
    return { applied, revision: res.revision };
  }

  list(kind: string): StoredResource[] {
    const m = this.byKind.get(kind);
    if (!m) return [];
    return [...m.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, e]) => ({ kind, name, resource: e.input, modifyIndex: e.modRevision }));
  }

  get(kind: string, name: string): StoredResource | undefined {
    const e = this.byKind.get(kind)?.get(name);
    return e ? { kind, name, resource: e.input, modifyIndex: e.modRevision } : undefined;
  }

  /** The resource as the schema parsed it (defaults filled); undefined if absent or no longer valid. */
  parsed(kind: string, name: string): unknown {
    return this.byKind.get(kind)?.get(name)?.parsed;
  }

  /** Every stored resource that parses (the set cross-resource checks run against). */
  private allParsed(): unknown[] {
    const existing: unknown[] = [];
    for (const m of this.byKind.values())
      for (const e of m.values()) if (e.parsed !== undefined) existing.push(e.parsed);
    return existing;
  }

  async delete(kind: string, name: string): Promise<boolean> {
    const blockers = this.model.deleteIssues?.(kind, name, this.allParsed()) ?? [];
    if (blockers.length > 0) throw weftError("WEFT_ERR_CONFLICT", { detail: blockers.join("; ") });
    const r = await this.store.delete(configKey(kind, name));
    if (r.deleted.length === 0) return false;
    await this.mirror?.waitApplied(r.revision);
    this.log?.info({ kind, name, revision: r.revision }, "config resource deleted");
    return true;
  }

  kindIndex(kind: string): number {
    return this.feed.index(kind);
  }

  onChange(fn: ChangeListener): Disposable {
    return this.feed.onChange(fn);
  }

  async dispose(): Promise<void> {
    this.feed.dispose();
    await this.mirror?.dispose();
  }
}
