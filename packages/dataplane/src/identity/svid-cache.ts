import { createHash } from "node:crypto";
import type { WorkloadIdentity } from "@weft/api";

/**
 * Successful verifications, so the proxy does not redo path validation on
 * every handshake with the same peer. Bounded LRU; an entry is used only while
 * `now` lies inside the validity window of its whole path.
 */

export const SVID_CACHE_MAX = 256;

export interface CachedSvid {
  spiffeId: string;
  identity: WorkloadIdentity;
  /** The leaf's notAfter (what results report). */
  leafNotAfter: number;
  /** Validity window of the whole path (leaf, intermediates, root). */
  notBefore: number;
  notAfter: number;
}

const entries = new Map<string, CachedSvid>();

/** Length-prefixed so that different splits of the same bytes never collide. */
export function svidCacheKey(chainDer: readonly Buffer[], bundleId: string): string {
  const h = createHash("sha256").update(bundleId);
  const len = Buffer.alloc(4);
  for (const der of chainDer) {
    len.writeUInt32BE(der.length);
    h.update(len).update(der);
  }
  return h.digest("hex");
}

export function cacheGet(key: string, now: number): CachedSvid | undefined {
  const hit = entries.get(key);
  if (hit === undefined) return undefined;
  entries.delete(key);
  if (now < hit.notBefore || now > hit.notAfter) return undefined;
  entries.set(key, hit); // most recently used goes last
  return hit;
}

export function cachePut(key: string, value: CachedSvid): void {
  entries.delete(key);
  entries.set(key, value);
  while (entries.size > SVID_CACHE_MAX) {
    const oldest = entries.keys().next();
    if (oldest.done) break;
    entries.delete(oldest.value);
  }
}

/** For tests, and for a proxy that wants to forget peers at once (e.g. after a root is withdrawn). */
export function clearSvidCache(): void {
  entries.clear();
}

export function svidCacheSize(): number {
  return entries.size;
}
