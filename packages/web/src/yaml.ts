/**
 * A small YAML writer for showing stored resources (JSON values only: the
 * API answers JSON). Block style, keys in stored order, strings quoted only
 * when plain YAML would read them as something else. Pure: unit-tested.
 * (The `yaml` package would do it too, but it would be the bundle's largest part.)
 */

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const PLAIN = /^[A-Za-z_/][A-Za-z0-9_./* -]*$/;
const RESERVED = /^(?:true|false|yes|no|on|off|null|~|y|n)$/i;

export function yamlScalar(v: null | boolean | number | string): string {
  if (v === null) return "null";
  if (typeof v === "boolean" || typeof v === "number") return String(v);
  if (v !== "" && PLAIN.test(v) && !RESERVED.test(v) && !/ $/.test(v) && !v.includes(" #")) return v;
  return JSON.stringify(v);
}

function key(k: string): string {
  return /^[A-Za-z_][A-Za-z0-9_-]*$/.test(k) ? k : JSON.stringify(k);
}

function isEmpty(v: Json): boolean {
  return (
    (Array.isArray(v) && v.length === 0) ||
    (typeof v === "object" && v !== null && Object.keys(v).length === 0)
  );
}

function lines(v: Json, indent: string): string[] {
  if (Array.isArray(v)) {
    const out: string[] = [];
    for (const item of v) {
      if (typeof item === "object" && item !== null && !isEmpty(item)) {
        const inner = lines(item, `${indent}  `);
        out.push(`${indent}- ${(inner[0] as string).slice(indent.length + 2)}`, ...inner.slice(1));
      } else out.push(`${indent}- ${inline(item)}`);
    }
    return out;
  }
  if (typeof v === "object" && v !== null) {
    const out: string[] = [];
    for (const [k, val] of Object.entries(v)) {
      if (val === undefined) continue;
      if (typeof val === "object" && val !== null && !isEmpty(val)) {
        out.push(`${indent}${key(k)}:`);
        out.push(...lines(val, Array.isArray(val) ? indent : `${indent}  `));
      } else out.push(`${indent}${key(k)}: ${inline(val)}`);
    }
    return out;
  }
  return [`${indent}${inline(v)}`];
}

function inline(v: Json): string {
  if (Array.isArray(v)) return "[]";
  if (typeof v === "object" && v !== null) return "{}";
  return yamlScalar(v);
}

export function toYaml(value: unknown): string {
  return `${lines(JSON.parse(JSON.stringify(value ?? null)) as Json, "").join("\n")}\n`;
}
