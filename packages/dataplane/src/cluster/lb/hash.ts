/**
 * The ring-hash hash: FNV-1a 64 over the UTF-8 bytes of a string, xor-folded
 * to 32 bits and finished with murmur3's fmix32.
 *
 * Why this one: it must give the same value in every sidecar and every Weft
 * version (two proxies in front of the same cluster must send a session to
 * the same endpoint, and a rolling upgrade must not reshuffle sessions), so
 * it is a fixed, seedless function implemented here rather than anything
 * engine-dependent. FNV-1a is byte-at-a-time, so the per-request cost is a
 * short loop with no allocation; 64-bit state keeps collisions rare, and
 * fmix32 gives the avalanche that FNV alone lacks on short, similar keys
 * (ids differing in one digit would otherwise land next to each other).
 * hash.test.ts pins golden values: changing this function is a breaking
 * change for session affinity.
 */

const FNV64_OFFSET_HI = 0xcbf29ce4;
const FNV64_OFFSET_LO = 0x84222325;
/** The FNV-64 prime is 2^40 + 0x1b3: a multiply is `x * 0x1b3 + (x << 40)`. */
const FNV64_PRIME_LO = 0x1b3;
const TWO_32 = 4294967296;

/**
 * A reusable UTF-8 buffer, so hashing a request key allocates nothing.
 * Keys longer than SHARED_MAX_UNITS get a buffer of their own rather than
 * growing this one for the life of the process.
 */
const SHARED_MAX_UNITS = 4096;
let shared = new Uint8Array(256);

/** Writes the UTF-8 encoding of `s` (lone surrogates as U+FFFD, like TextEncoder) and returns its length. */
function utf8Into(s: string, out: Uint8Array): number {
  let n = 0;
  const len = s.length;
  for (let i = 0; i < len; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out[n++] = c;
      continue;
    }
    if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 0x3f);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < len ? s.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
        out[n++] = 0xf0 | (c >> 18);
        out[n++] = 0x80 | ((c >> 12) & 0x3f);
        out[n++] = 0x80 | ((c >> 6) & 0x3f);
        out[n++] = 0x80 | (c & 0x3f);
        continue;
      }
      c = 0xfffd;
    }
    out[n++] = 0xe0 | (c >> 12);
    out[n++] = 0x80 | ((c >> 6) & 0x3f);
    out[n++] = 0x80 | (c & 0x3f);
  }
  return n;
}

/** The buffer the bytes of `s` are encoded into (3 bytes per UTF-16 unit is the worst case). */
function bufferFor(s: string): Uint8Array {
  const need = s.length * 3;
  if (need <= shared.length) return shared;
  if (s.length > SHARED_MAX_UNITS) return new Uint8Array(need);
  shared = new Uint8Array(Math.max(need, shared.length * 2));
  return shared;
}

// The two 32-bit halves of the last fnv1a64 result: module state rather than
// a returned object, so the hot path allocates nothing.
let outHi = 0;
let outLo = 0;

function fnv1a64(s: string): void {
  const buf = bufferFor(s);
  const n = utf8Into(s, buf);
  let hi = FNV64_OFFSET_HI;
  let lo = FNV64_OFFSET_LO;
  for (let i = 0; i < n; i++) {
    const x = (lo ^ buf[i]!) >>> 0;
    // 64-bit multiply by 2^40 + 0x1b3 in 32-bit halves; every intermediate
    // stays below 2^53, so double arithmetic is exact.
    const l = x * FNV64_PRIME_LO;
    lo = l >>> 0;
    hi = (hi * FNV64_PRIME_LO + (l - lo) / TWO_32 + ((x << 8) >>> 0)) >>> 0;
  }
  outHi = hi;
  outLo = lo;
}

/** murmur3's 32-bit finaliser: full avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The stable 32-bit hash of a string (an unsigned integer), used for ring points and request keys. */
export function hash32(s: string): number {
  fnv1a64(s);
  return fmix32(outHi ^ outLo);
}

/** FNV-1a 64 of the UTF-8 bytes of `s`, as 16 hex digits (for tests and debugging output). */
export function fnv1a64Hex(s: string): string {
  fnv1a64(s);
  return outHi.toString(16).padStart(8, "0") + outLo.toString(16).padStart(8, "0");
}
