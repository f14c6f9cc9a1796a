/**
 * Key order and input checks shared by every backend.
 *
 * Keys are ordered by Unicode code point, which is the same as the byte order
 * of their UTF-8 encoding: that is what SQLite's BINARY collation and etcd
 * (raw bytes) use, so every backend pages through a range identically. Plain
 * `<` on JS strings compares UTF-16 code units and disagrees for characters
 * above U+FFFF, hence `compareKeys`.
 *
 * Prefixes are raw string prefixes, as in etcd: "/a" matches "/a/x" and also
 * "/ab". Callers that mean a directory end their prefix with "/".
 */

import { weftError } from "@weft/core";

/** Code point (= UTF-8 byte) order of two strings; negative, zero or positive. */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      // ICU's code point order fix-up: surrogates (D800-DFFF, the halves of
      // code points above FFFF) must sort after E000-FFFF.
      if (x >= 0xd800 && y >= 0xd800) {
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      }
      return x - y;
    }
  }
  return a.length - b.length;
}

/**
 * The smallest string greater than every string starting with `prefix`, or
 * undefined when there is none ("" or all U+10FFFF). Keys starting with
 * `prefix` are exactly those in [prefix, prefixEnd(prefix)).
 */
export function prefixEnd(prefix: string): string | undefined {
  const cps = Array.from(prefix);
  while (cps.length > 0) {
    const last = (cps.pop() as string).codePointAt(0) as number;
    if (last < 0x10ffff) {
      const next = last + 1 === 0xd800 ? 0xe000 : last + 1;
      return cps.join("") + String.fromCodePoint(next);
    }
  }
  return undefined;
}

// In /u mode a well-formed surrogate pair is one code point, so this matches
// only lone surrogates, which UTF-8 cannot encode (SQLite would store U+FFFD
// and two different keys would collide).
const LONE_SURROGATE = /\p{Cs}/u;

export function checkKey(key: unknown, what = "key"): string {
  if (typeof key !== "string" || key.length === 0) {
    throw weftError("WEFT_ERR_VALIDATION", { detail: `store ${what} must be a non-empty string` });
  }
  if (LONE_SURROGATE.test(key)) {
    throw weftError("WEFT_ERR_VALIDATION", { detail: `store ${what} is not well-formed Unicode` });
  }
  return key;
}

/** A prefix may be "" (everything). */
export function checkPrefix(prefix: unknown): string {
  if (prefix === "") return "";
  return checkKey(prefix, "prefix");
}

export function checkValue(value: unknown): string {
  if (typeof value !== "string") {
    throw weftError("WEFT_ERR_VALIDATION", { detail: "store value must be a string" });
  }
  if (LONE_SURROGATE.test(value)) {
    throw weftError("WEFT_ERR_VALIDATION", { detail: "store value is not well-formed Unicode" });
  }
  return value;
}

export function checkRevision(rev: unknown, what: string): number {
  if (typeof rev !== "number" || !Number.isSafeInteger(rev) || rev < 0) {
    throw weftError("WEFT_ERR_VALIDATION", { detail: `${what} must be a non-negative integer` });
  }
  return rev;
}
