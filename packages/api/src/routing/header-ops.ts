/**
 * Request and response header changes of routes and splits: remove, then
 * set (replace), then add (append) — Envoy's order, so a route can both
 * drop a client's value and put its own.
 */
import type { HeaderOpsConfig } from "../snapshot.js";

/** Header fields in HTTP/2 form (lowercase names); an array for a repeated field. */
export type MutableHeaders = Record<string, string | string[]>;

/** Applies `ops` to `headers` in place. Names in ops are lowercase (the snapshot check ensures it). */
export function applyHeaderOps(headers: MutableHeaders, ops: HeaderOpsConfig | undefined): void {
  if (ops === undefined) return;
  if (ops.remove !== undefined) for (const name of ops.remove) delete headers[name];
  if (ops.set !== undefined) for (const name of Object.keys(ops.set)) headers[name] = ops.set[name] as string;
  if (ops.add !== undefined) {
    for (const name of Object.keys(ops.add)) {
      const value = ops.add[name] as string;
      const had = headers[name];
      if (had === undefined) headers[name] = value;
      else if (Array.isArray(had)) had.push(value);
      else headers[name] = [had, value];
    }
  }
}
