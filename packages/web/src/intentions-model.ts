/**
 * Intentions as the UI shows and edits them (pure, unit-tested in node).
 *
 * Precedence, as the sidecar's authorizer ranks it (api/src/authz): a
 * caller's exact name wins, else the "*" source, else the mesh's default
 * policy. Within one source, L7 permissions are tried in order, first match
 * wins. `precedenceRows` lists one destination's rules in that order.
 */

export interface IntentionPermission {
  action: "allow" | "deny";
  http: Record<string, unknown>;
}

export interface IntentionSource {
  name: string;
  action?: "allow" | "deny";
  permissions?: IntentionPermission[];
  description?: string;
}

export interface IntentionResource {
  kind: "Intention";
  name: string;
  sources: IntentionSource[];
}

export interface PrecedenceRow {
  destination: string;
  /** 1-based rank within the destination. */
  rank: number;
  source: string;
  /** "allow", "deny", or "L7" for a source with permissions. */
  action: "allow" | "deny" | "L7";
  /** The permissions in order, described ("allow GET pathPrefix /admin"). */
  rules: string[];
  /** The default-policy row closing each destination. */
  isDefault: boolean;
}

export function isIntention(r: unknown): r is IntentionResource {
  if (typeof r !== "object" || r === null) return false;
  const o = r as Record<string, unknown>;
  return o.kind === "Intention" && typeof o.name === "string" && Array.isArray(o.sources);
}

/** Exact names in their listed order, then "*". */
export function sourcesByPrecedence(sources: readonly IntentionSource[]): IntentionSource[] {
  return [...sources.filter((s) => s.name !== "*"), ...sources.filter((s) => s.name === "*")];
}

/** "allow GET,HEAD pathPrefix /admin header x-env exact prod". */
export function describePermission(p: IntentionPermission): string {
  const parts: string[] = [p.action];
  const h = p.http ?? {};
  if (Array.isArray(h.methods)) parts.push((h.methods as string[]).join(","));
  for (const k of ["pathExact", "pathPrefix", "pathRegex"]) {
    if (typeof h[k] === "string") parts.push(`${k} ${h[k] as string}`);
  }
  if (Array.isArray(h.headers)) {
    for (const m of h.headers as Record<string, unknown>[]) {
      const { name, ...rest } = m;
      const how = Object.entries(rest)
        .map(([k, v]) => (v === true ? k : `${k} ${String(v)}`))
        .join(" ");
      parts.push(`header ${String(name)}${how ? ` ${how}` : ""}`);
    }
  }
  return parts.join(" ");
}

/** Every destination's rules in precedence order, destinations by name, each closed by the default policy. */
export function precedenceRows(
  intentions: readonly IntentionResource[],
  defaultPolicy: "allow" | "deny",
): PrecedenceRow[] {
  const rows: PrecedenceRow[] = [];
  for (const it of [...intentions].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const ordered = sourcesByPrecedence(it.sources);
    ordered.forEach((s, i) => {
      rows.push({
        destination: it.name,
        rank: i + 1,
        source: s.name,
        action: s.permissions ? "L7" : (s.action ?? "deny"),
        rules: (s.permissions ?? []).map(describePermission),
        isDefault: false,
      });
    });
    if (!it.sources.some((s) => s.name === "*")) {
      rows.push({
        destination: it.name,
        rank: ordered.length + 1,
        source: "(any other)",
        action: defaultPolicy,
        rules: ["mesh default policy"],
        isDefault: true,
      });
    }
  }
  return rows;
}

/** One editable source row of the form: a plain action, or kept L7 permissions. */
export interface DraftSource {
  name: string;
  action: "allow" | "deny" | "L7";
  /** Kept as they were when the source had permissions (the form does not edit them). */
  permissions?: IntentionPermission[];
  description?: string;
}

export interface Draft {
  destination: string;
  sources: DraftSource[];
}

export function draftOf(it: IntentionResource): Draft {
  return {
    destination: it.name,
    sources: it.sources.map((s) => {
      const d: DraftSource = { name: s.name, action: s.permissions ? "L7" : (s.action ?? "deny") };
      if (s.permissions) d.permissions = s.permissions;
      if (s.description !== undefined) d.description = s.description;
      return d;
    }),
  };
}

/**
 * The resource the form sends. No validation here: the control plane's is
 * the one that counts, and its message is shown next to the form. Only the
 * surrounding whitespace of names is trimmed.
 */
export function resourceOf(d: Draft): IntentionResource {
  return {
    kind: "Intention",
    name: d.destination.trim(),
    sources: d.sources.map((s) => {
      const out: IntentionSource = { name: s.name.trim() };
      if (s.action === "L7" && s.permissions) out.permissions = s.permissions;
      else out.action = s.action === "allow" ? "allow" : "deny";
      if (s.description !== undefined) out.description = s.description;
      return out;
    }),
  };
}

/** Moves item `i` by `delta` (-1 up, +1 down), a new array; out of range: unchanged copy. */
export function move<T>(list: readonly T[], i: number, delta: number): T[] {
  const j = i + delta;
  const out = [...list];
  if (i < 0 || i >= list.length || j < 0 || j >= list.length) return out;
  [out[i], out[j]] = [out[j] as T, out[i] as T];
  return out;
}
