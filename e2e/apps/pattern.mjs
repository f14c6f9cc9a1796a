/**
 * Deterministic bytes for byte-exact tests: `size` bytes in 64 KiB chunks,
 * each chunk a fixed pseudo-random block with its index in the first 8
 * bytes, so a dropped, repeated or reordered chunk changes the digest.
 * e2e/helpers/mesh.ts (patternSha256) computes the same bytes.
 */
export const CHUNK = 64 * 1024;

const base = (() => {
  const b = Buffer.alloc(CHUNK);
  let x = 0x9e3779b9;
  for (let i = 0; i < CHUNK; i++) {
    // xorshift32
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
})();

/** Chunk `i` of the pattern (a fresh buffer, `len` <= CHUNK bytes). */
export function patternChunk(i, len = CHUNK) {
  const c = Buffer.from(base.subarray(0, len));
  const head = Buffer.alloc(8);
  head.writeBigUInt64BE(BigInt(i));
  head.copy(c, 0, 0, Math.min(8, len));
  return c;
}
