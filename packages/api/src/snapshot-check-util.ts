/**
 * The small checks `checkSnapshot` is built from: each names the path of
 * what is wrong ("clusters.api.endpoints[2].port: expected an integer in
 * 1..65535"). Zod-free, like the rest of the snapshot contract.
 */
import { NAME_PATTERN } from "./patterns.js";

/** Longest string a snapshot carries (MAX_SNAPSHOT_STRING). */
export const MAX_SNAPSHOT_STRING = 2048;

export type Obj = Record<string, unknown>;

export class Invalid extends Error {}

export function fail(path: string, what: string): never {
  throw new Invalid(`${path}: ${what}`);
}
export function obj(v: unknown, path: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(path, "expected an object");
  return v as Obj;
}
export function arr(v: unknown, path: string, max: number): unknown[] {
  if (!Array.isArray(v)) fail(path, "expected an array");
  if (v.length > max) fail(path, `more than ${max} entries`);
  return v;
}
export function str(v: unknown, path: string): string {
  if (typeof v !== "string" || v.length === 0) fail(path, "expected a non-empty string");
  if (v.length > MAX_SNAPSHOT_STRING) fail(path, "too long");
  return v;
}
export function optStr(v: unknown, path: string): void {
  if (v !== undefined) str(v, path);
}
export function int(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    fail(path, `expected an integer in ${min}..${max}`);
  }
  return v;
}
export function oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[]): T {
  if (typeof v !== "string" || !allowed.includes(v as T)) fail(path, `expected one of ${allowed.join(", ")}`);
  return v as T;
}
export function name(v: unknown, path: string): string {
  if (typeof v !== "string" || !NAME_PATTERN.test(v)) fail(path, "expected a service name");
  return v;
}
export function regex(v: unknown, path: string): void {
  if (v === undefined) return;
  try {
    new RegExp(str(v, path), "u");
  } catch {
    fail(path, "not a valid regular expression");
  }
}

/** A finite number in min..max. */
export function num(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
    fail(path, `expected a number in ${min}..${max}`);
  }
  return v;
}

export function checkHttpMatch(v: unknown, path: string): void {
  const m = obj(v, path);
  optStr(m.pathExact, `${path}.pathExact`);
  optStr(m.pathPrefix, `${path}.pathPrefix`);
  regex(m.pathRegex, `${path}.pathRegex`);
  if (m.methods !== undefined) {
    arr(m.methods, `${path}.methods`, 16).forEach((x, i) => {
      if (typeof x !== "string" || !/^[A-Z]{1,16}$/.test(x))
        fail(`${path}.methods[${i}]`, "expected an uppercase method");
    });
  }
  if (m.headers !== undefined) {
    arr(m.headers, `${path}.headers`, 32).forEach((h, i) => {
      const p = `${path}.headers[${i}]`;
      const o = obj(h, p);
      str(o.name, `${p}.name`);
      const kinds = ["exact", "prefix", "suffix", "regex", "present"].filter((k) => o[k] !== undefined);
      if (kinds.length !== 1) fail(p, "needs exactly one of exact, prefix, suffix, regex, present");
      if (o.regex !== undefined) regex(o.regex, `${p}.regex`);
      if (typeof o.invert !== "boolean") fail(`${p}.invert`, "expected a boolean");
    });
  }
}
