import type { SnapshotHeaderMatch } from "../snapshot.js";

/**
 * Header matches, compiled once per snapshot into closures (regexes built
 * here, never per request).
 *
 * Semantics, the same as Envoy's HeaderMatcher as Consul configures it:
 * - the header's value is all of its values joined with "," (the `headers`
 *   lookup of the request does that);
 * - a missing header matches nothing but `present` negated: exact, prefix,
 *   suffix and regex are false when the header is absent, `present` is true
 *   exactly when it is there;
 * - `invert` negates the result, absence included. So `{exact: "1", invert}`
 *   matches a request without the header, and `{present: true, invert}`
 *   means "absent".
 * - regex is a full match: the pattern is anchored as `^(?:pattern)$`, so
 *   `a|b` cannot match "xa" and an already anchored `^a$` still works.
 *   Patterns were checked for cost when written (api/safe-regex.ts) and the
 *   listener bounds header sizes.
 */

/** Case-sensitive lookup by lowercase name; several values joined with ",". */
export type HeaderLookup = (name: string) => string | undefined;

export interface CompiledHeaderMatch {
  readonly test: (headers: HeaderLookup) => boolean;
  /** For explanations: `header x-env exact "prod"`, `header x-debug !present`. */
  readonly description: string;
}

/** Anchors a pattern for a full match. Throws SyntaxError when it does not compile (the snapshot check refuses those first). */
export function fullMatchRegex(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`, "u");
}

export function compileHeaderMatch(m: SnapshotHeaderMatch): CompiledHeaderMatch {
  const name = m.name.toLowerCase();
  const invert = m.invert === true;
  let kind: string;
  let test: (value: string) => boolean;
  if (m.exact !== undefined) {
    const want = m.exact;
    kind = `exact ${JSON.stringify(want)}`;
    test = (v) => v === want;
  } else if (m.prefix !== undefined) {
    const want = m.prefix;
    kind = `prefix ${JSON.stringify(want)}`;
    test = (v) => v.startsWith(want);
  } else if (m.suffix !== undefined) {
    const want = m.suffix;
    kind = `suffix ${JSON.stringify(want)}`;
    test = (v) => v.endsWith(want);
  } else if (m.regex !== undefined) {
    const re = fullMatchRegex(m.regex);
    kind = `regex ${JSON.stringify(m.regex)}`;
    test = (v) => re.test(v);
  } else {
    // `present: true`, and also the fallback for a match that names no kind:
    // the snapshot check refuses those, and "is present" is the least
    // surprising reading of a bare name.
    kind = "present";
    test = () => true;
  }
  const description = `header ${name} ${invert ? "!" : ""}${kind}`;
  const matches = invert
    ? (headers: HeaderLookup) => {
        const v = headers(name);
        return v === undefined || !test(v);
      }
    : (headers: HeaderLookup) => {
        const v = headers(name);
        return v !== undefined && test(v);
      };
  return Object.freeze({ test: matches, description });
}
