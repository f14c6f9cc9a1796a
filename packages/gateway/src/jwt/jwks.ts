/**
 * A JWKS (RFC 7517 key set) from a file or an http(s) URL, kept in memory.
 *
 * Lookups are synchronous because the gateway decides a request
 * synchronously (the engine's route callback): the set is loaded before the
 * listener serves and refreshed behind the requests:
 * - when it is older than `cacheMs` (stale-while-revalidate: the old keys
 *   keep working until the new set is in);
 * - when a token names a `kid` the set does not hold (the issuer rotated its
 *   keys), at most once per `minRefreshMs`, so a flood of made-up kids
 *   cannot turn into a flood of fetches. A file source is re-read at once
 *   (the same request sees the new key); a URL source is fetched in the
 *   background and the token that asked is refused meanwhile.
 * A failed refresh keeps the last good set (fail static) and is logged.
 */
import { readFileSync } from "node:fs";
import { type Clock, describeError, systemClock } from "@weft/core";
import { importJwk, type Jwk } from "./jws.js";

export interface JwksLogger {
  warn(obj: object, msg: string): void;
}

export interface JwksOptions {
  source: { file: string } | { url: string };
  cacheMs: number;
  /** Least time between two refreshes caused by unknown kids. Default 10 s. */
  minRefreshMs?: number;
  fetchTimeoutMs?: number;
  /** Largest JWKS document accepted. Default 512 KiB. */
  maxBytes?: number;
  clock?: Clock;
  logger?: JwksLogger;
}

export type JwksParse = { ok: true; keys: Jwk[]; skipped: string[] } | { ok: false; reason: string };

const MAX_KEYS = 64;

/** Parses a JWKS document; unusable entries are skipped (and named), a set with none usable is refused. */
export function parseJwks(text: string): JwksParse {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { ok: false, reason: "not JSON" };
  }
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) return { ok: false, reason: 'no "keys" array' };
  const out: Jwk[] = [];
  const skipped: string[] = [];
  for (const [i, raw] of keys.slice(0, MAX_KEYS).entries()) {
    const r = importJwk(raw);
    if (r.ok) out.push(r.jwk);
    else skipped.push(`keys[${i}]: ${r.reason}`);
  }
  if (out.length === 0) return { ok: false, reason: `no usable key (${skipped.join("; ") || "empty"})` };
  return { ok: true, keys: out, skipped };
}

export class JwksKeySet {
  private keys: readonly Jwk[] = [];
  private loadedAt = Number.NEGATIVE_INFINITY;
  private lastKidRefresh = Number.NEGATIVE_INFINITY;
  private inflight: Promise<boolean> | undefined;
  private readonly clock: Clock;
  private disposed = false;
  /** Number of loads attempted (tests and metrics). */
  loads = 0;

  constructor(private readonly o: JwksOptions) {
    this.clock = o.clock ?? systemClock;
  }

  get size(): number {
    return this.keys.length;
  }

  /** The first load; false when it failed (the set stays empty and every token is refused). */
  start(): Promise<boolean> {
    return this.refresh();
  }

  /** Keys a token may have been signed with: those with its kid, or every key when it names none. */
  candidates(kid: string | undefined): readonly Jwk[] {
    const now = this.clock.now();
    if (now - this.loadedAt >= this.o.cacheMs) void this.refresh();
    if (kid === undefined) return this.keys;
    let found = this.keys.filter((k) => k.kid === kid);
    if (found.length === 0 && now - this.lastKidRefresh >= (this.o.minRefreshMs ?? 10_000)) {
      this.lastKidRefresh = now;
      if ("file" in this.o.source) {
        // A local read: cheap and bounded by minRefreshMs, so the rotated key works on this request.
        this.loadFileSync();
        found = this.keys.filter((k) => k.kid === kid);
      } else {
        void this.refresh();
      }
    }
    return found;
  }

  /** Reloads now (coalesced with a load in progress). */
  refresh(): Promise<boolean> {
    if (this.disposed) return Promise.resolve(false);
    if ("file" in this.o.source) return Promise.resolve(this.loadFileSync());
    this.inflight ??= this.fetchUrl(this.o.source.url).finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  dispose(): void {
    this.disposed = true;
  }

  private use(text: string, from: string): boolean {
    const r = parseJwks(text);
    // Even a failure counts as a load for the cache: a broken source is retried after cacheMs, not per request.
    this.loadedAt = this.clock.now();
    if (!r.ok) {
      this.o.logger?.warn({ jwks: from, reason: r.reason }, "JWKS refused; keeping the previous keys");
      return false;
    }
    if (r.skipped.length > 0) this.o.logger?.warn({ jwks: from, skipped: r.skipped }, "JWKS keys skipped");
    this.keys = Object.freeze(r.keys);
    return true;
  }

  private loadFileSync(): boolean {
    const file = (this.o.source as { file: string }).file;
    this.loads++;
    let text: string;
    try {
      const buf = readFileSync(file);
      if (buf.length > (this.o.maxBytes ?? 512 * 1024)) throw new Error("file too large");
      text = buf.toString("utf8");
    } catch (e) {
      this.loadedAt = this.clock.now();
      this.o.logger?.warn(
        { jwks: file, err: describeError(e) },
        "JWKS file unreadable; keeping the previous keys",
      );
      return false;
    }
    return this.use(text, file);
  }

  private async fetchUrl(url: string): Promise<boolean> {
    this.loads++;
    const max = this.o.maxBytes ?? 512 * 1024;
    try {
      const res = await fetch(url, {
        signal: AbortSignal.timeout(this.o.fetchTimeoutMs ?? 5_000),
        redirect: "error",
        headers: { accept: "application/json" },
      });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      const declared = Number(res.headers.get("content-length") ?? "0");
      if (declared > max) throw new Error("document too large");
      const reader = res.body?.getReader();
      const chunks: Uint8Array[] = [];
      let total = 0;
      for (;;) {
        const r = await reader?.read();
        if (r === undefined || r.done) break;
        total += r.value.byteLength;
        if (total > max) {
          await reader?.cancel();
          throw new Error("document too large");
        }
        chunks.push(r.value);
      }
      return this.use(Buffer.concat(chunks).toString("utf8"), url);
    } catch (e) {
      this.loadedAt = this.clock.now();
      this.o.logger?.warn(
        { jwks: url, err: describeError(e) },
        "JWKS fetch failed; keeping the previous keys",
      );
      return false;
    }
  }
}
