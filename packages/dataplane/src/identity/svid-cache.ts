import { createHash } from "node:crypto";
import type { WorkloadIdentity } from "@weft/api";

/**
 * Successful verifications, so the proxy does not redo path validation on
 * every handshake with the same peer. Bounded LRU; an entry is used only while
 * `now` lies inside the validity window of its whole path.
 *
 * Keyed by the leaf alone (and the bundle): once a path from these exact leaf
 * bytes to a trusted root was validated, the leaf's signature is proven, and
 * the same leaf presented again needs no intermediates re-read (reading the
 * peer's chain from node:tls costs ~170 µs; the leaf alone ~3 µs).
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

export function svidCacheKey(leafDer: Buffer, bundleId: string): string {
  return createHash("sha256").update(bundleId).update("\0").update(leafDer).digest("hex");
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
