/**
 * Stable JSON: object keys sorted (UTF-16 code unit order, recursively), no
 * whitespace. Equal JSON values give equal strings whatever order their keys
 * were inserted in, so a digest of it is a content version.
 *
 * Used for snapshot versions and for the stored form of config resources
 * (an apply of an equal document is "unchanged"). Written straight to a
 * string rather than by copying into key-sorted objects first: no copy of a
 * large snapshot, and a "__proto__" key stays a key instead of hitting the
 * prototype setter and vanishing.
 *
 * Undefined object members are skipped, as JSON.stringify does. Values JSON
 * cannot carry faithfully (undefined in arrays, NaN, Infinity, functions,
 * bigints, symbols) throw a TypeError instead of turning silently into null.
 */
export function stableJson(value: unknown): string {
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) throw new TypeError(`stableJson: ${value} is not a JSON number`);
      return JSON.stringify(value);
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value)) {
        return `[${value.map((v, i) => (v === undefined ? fail(`array element ${i} is undefined`) : stableJson(v))).join(",")}]`;
      }
      const o = value as Record<string, unknown>;
      const parts: string[] = [];
      for (const k of Object.keys(o).sort()) {
        const v = o[k];
        if (v !== undefined) parts.push(`${JSON.stringify(k)}:${stableJson(v)}`);
      }
      return `{${parts.join(",")}}`;
    }
    default:
      return fail(`cannot serialise a ${typeof value}`);
  }
}

function fail(what: string): never {
  throw new TypeError(`stableJson: ${what}`);
}
