/**
 * Write-time guard for regular expressions taken from config (route paths,
 * header and query matches, CORS origins). The proxies run these with the
 * JavaScript engine, which backtracks, so a costly pattern is refused when the
 * resource is written rather than discovered under load (HARDENING.md,
 * "Config as input").
 *
 * Refused: longer than MAX_REGEX_LENGTH; does not compile with the `u` flag;
 * backreferences; lookaround; a repeating quantifier applied to something that
 * already repeats (star height > 1: `(a+)+`, `(a*)*`, `(?:x{2,})*`), except
 * a small fixed count of bounded repeats such as `(\d{1,3}\.){3}` (outer
 * count at most MAX_NESTED_COUNT, nothing unbounded inside, one level); a
 * repeating group whose alternatives can start alike (`(a|a)*`, `(\d|1)+`);
 * quantifier bounds above MAX_QUANTIFIER_BOUND.
 *
 * This is a conservative syntactic check, not a proof of linear time: chains
 * of adjacent overlapping quantifiers (`.*.*.*x`) are polynomial and still
 * pass, so the data plane also bounds what it matches against (header and
 * path sizes).
 */

export const MAX_REGEX_LENGTH = 256;
export const MAX_QUANTIFIER_BOUND = 1000;
/** Largest outer count allowed around bounded repeats: `(x{1,3}){4}` tries at most 3^4 ways per position. */
export const MAX_NESTED_COUNT = 4;

/** What an alternative starts with: a literal code point, or something broader (class, dot, escape, group). */
type First = { kind: "char"; ch: string } | { kind: "any" } | { kind: "none" };

interface Frame {
  /** Largest star height of anything in the group so far. */
  height: number;
  /** The group holds an unbounded quantifier (*, +, {n,}). */
  unbounded: boolean;
  /** First atom of each finished alternative. */
  firsts: First[];
  /** First atom of the alternative being read. */
  current: First;
}

interface Atom {
  height: number;
  unbounded: boolean;
  /** For a group: its alternatives may start alike, so repeating it can blow up. */
  ambiguous: boolean;
}

function overlaps(firsts: First[]): boolean {
  const starts = firsts.filter((f) => f.kind !== "none");
  if (starts.length < 2) return false;
  if (starts.some((f) => f.kind === "any")) return true;
  const seen = new Set<string>();
  for (const f of starts) {
    if (f.kind !== "char") continue;
    const key = f.ch.toLowerCase();
    if (seen.has(key)) return true;
    seen.add(key);
  }
  return false;
}

/**
 * Returns undefined when the pattern is acceptable, or a reason why it is
 * refused. Never throws.
 */
export function checkRegex(pattern: string): string | undefined {
  if (typeof pattern !== "string") return "expected a regular expression string";
  if (pattern.length > MAX_REGEX_LENGTH) {
    return `regular expression is ${pattern.length} characters long; at most ${MAX_REGEX_LENGTH} allowed`;
  }
  try {
    new RegExp(pattern, "u");
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return `invalid regular expression: ${msg}`;
  }
  try {
    return scan(pattern);
  } catch {
    return "regular expression could not be analysed";
  }
}

/** True when the pattern passes checkRegex. */
export function isSafeRegex(pattern: string): boolean {
  return checkRegex(pattern) === undefined;
}

function scan(p: string): string | undefined {
  const stack: Frame[] = [{ height: 0, unbounded: false, firsts: [], current: { kind: "none" } }];
  let i = 0;

  const top = (): Frame => stack[stack.length - 1] as Frame;

  /** Records an atom's first for the current alternative and applies a following quantifier. */
  const finishAtom = (atom: Atom, first: First): string | undefined => {
    const f = top();
    if (f.current.kind === "none") f.current = first;
    const q = readQuantifier(p, i);
    if (typeof q === "string") return q;
    let height = atom.height;
    let unbounded = atom.unbounded;
    if (q) {
      i = q.end;
      if (q.repeats) {
        const smallFixed = atom.height === 1 && !atom.unbounded && q.max <= MAX_NESTED_COUNT;
        if (atom.height >= 1 && !smallFixed) {
          return "nested quantifiers (a repeated group that itself repeats, like (a+)+) can take exponential time";
        }
        if (atom.ambiguous) {
          return "a repeated group whose alternatives can match the same input (like (a|a)*) can take exponential time";
        }
        height = atom.height + 1;
        unbounded ||= !Number.isFinite(q.max);
      }
    }
    f.height = Math.max(f.height, height);
    f.unbounded ||= unbounded;
    return undefined;
  };

  while (i < p.length) {
    const c = p[i] as string;
    if (c === "\\") {
      const next = p[i + 1] ?? "";
      if (/[1-9]/.test(next)) return "backreferences are not allowed";
      if (next === "k" && p[i + 2] === "<") return "backreferences are not allowed";
      let end = i + 2;
      if ((next === "u" || next === "p" || next === "P") && p[i + 2] === "{") {
        const close = p.indexOf("}", i + 3);
        end = close < 0 ? p.length : close + 1;
      } else if (next === "u") {
        end = i + 6;
      } else if (next === "x") {
        end = i + 4;
      } else if (next === "c") {
        end = i + 3;
      }
      // Anchors (\b, \B) cannot be quantified under `u`; treat them as zero-width atoms.
      const first: First = next === "b" || next === "B" ? { kind: "none" } : { kind: "any" };
      i = end;
      const r = finishAtom({ height: 0, unbounded: false, ambiguous: false }, first);
      if (r) return r;
      continue;
    }
    if (c === "[") {
      let j = i + 1;
      if (p[j] === "^") j++;
      if (p[j] === "]") j++;
      while (j < p.length && p[j] !== "]") {
        if (p[j] === "\\") j++;
        j++;
      }
      i = j + 1;
      const r = finishAtom({ height: 0, unbounded: false, ambiguous: false }, { kind: "any" });
      if (r) return r;
      continue;
    }
    if (c === "(") {
      if (
        p.startsWith("(?=", i) ||
        p.startsWith("(?!", i) ||
        p.startsWith("(?<=", i) ||
        p.startsWith("(?<!", i)
      ) {
        return "lookahead and lookbehind are not allowed";
      }
      if (p.startsWith("(?<", i)) {
        const close = p.indexOf(">", i);
        i = close < 0 ? p.length : close + 1;
      } else if (p.startsWith("(?", i)) {
        const colon = p.indexOf(":", i);
        i = colon < 0 ? p.length : colon + 1;
      } else {
        i++;
      }
      stack.push({ height: 0, unbounded: false, firsts: [], current: { kind: "none" } });
      continue;
    }
    if (c === ")") {
      if (stack.length < 2) return "unbalanced parenthesis";
      const g = stack.pop() as Frame;
      g.firsts.push(g.current);
      i++;
      const first: First = g.firsts.length === 1 ? (g.firsts[0] as First) : { kind: "any" };
      const r = finishAtom(
        { height: g.height, unbounded: g.unbounded, ambiguous: overlaps(g.firsts) },
        first,
      );
      if (r) return r;
      continue;
    }
    if (c === "|") {
      const f = top();
      f.firsts.push(f.current);
      f.current = { kind: "none" };
      i++;
      continue;
    }
    if (c === "^" || c === "$") {
      i++;
      continue;
    }
    // A literal code point (surrogate pairs count as one) or `.`.
    const cp = p.codePointAt(i) as number;
    const ch = String.fromCodePoint(cp);
    i += ch.length;
    const r = finishAtom(
      { height: 0, unbounded: false, ambiguous: false },
      c === "." ? { kind: "any" } : { kind: "char", ch },
    );
    if (r) return r;
  }
  return undefined;
}

interface Quantifier {
  end: number;
  /** Allows more than one repetition. */
  repeats: boolean;
  /** Most repetitions (Infinity when unbounded). */
  max: number;
}

/** Reads a quantifier at `i`, if any. Returns a reason string when a bound is too large. */
function readQuantifier(p: string, i: number): Quantifier | string | undefined {
  const c = p[i];
  let end: number;
  let repeats: boolean;
  let max: number;
  if (c === "*" || c === "+") {
    end = i + 1;
    repeats = true;
    max = Number.POSITIVE_INFINITY;
  } else if (c === "?") {
    end = i + 1;
    repeats = false;
    max = 1;
  } else if (c === "{") {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(p.slice(i));
    if (!m) return undefined;
    const lo = Number(m[1]);
    const hasComma = m[2] !== undefined;
    const hi = hasComma ? (m[3] === "" ? Number.POSITIVE_INFINITY : Number(m[3])) : lo;
    if (lo > MAX_QUANTIFIER_BOUND || (Number.isFinite(hi) && hi > MAX_QUANTIFIER_BOUND)) {
      return `quantifier bounds above ${MAX_QUANTIFIER_BOUND} are not allowed`;
    }
    end = i + m[0].length;
    repeats = hi > 1;
    max = hi;
  } else {
    return undefined;
  }
  if (p[end] === "?") end++; // lazy
  return { end, repeats, max };
}
