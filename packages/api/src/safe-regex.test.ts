import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { checkRegex, isSafeRegex, MAX_REGEX_LENGTH } from "./safe-regex.js";

describe("checkRegex accepts", () => {
  test.each([
    "^/api/v[0-9]+/users$",
    "^/(GET|POST)/x$",
    "(foo|bar)+",
    "^[a-z0-9-]{1,63}$",
    "a{1000}",
    "(?:ab)+c",
    "(?<id>[0-9]+)",
    "\\d+\\.\\d+",
    "^\\p{L}+$",
    "\\u{1F600}",
    "[(]+",
    "(a+)?",
    "(a?)*",
    ".*",
    "^$",
    "😀+",
    "^(\\d{1,3}\\.){3}\\d{1,3}$",
    "([a-f0-9]{4}-){4}",
    "x".repeat(MAX_REGEX_LENGTH),
  ])("%s", (pattern) => {
    expect(checkRegex(pattern)).toBeUndefined();
    expect(isSafeRegex(pattern)).toBe(true);
  });
});

describe("checkRegex refuses", () => {
  test.each([
    ["(a+)+", "nested quantifiers"],
    ["(a*)*", "nested quantifiers"],
    ["^(\\w+\\s?)*$", "nested quantifiers"],
    ["(?:x{2,})*", "nested quantifiers"],
    ["((ab)+c)+", "nested quantifiers"],
    ["(\\d+\\.){3}", "nested quantifiers"],
    ["(\\d{1,3}){5}", "nested quantifiers"],
    ["((\\d{1,3}){2}){2}", "nested quantifiers"],
    ["(\\d{1,3}\\.){3,}", "nested quantifiers"],
    ["(a|a)*", "alternatives can match the same input"],
    ["(\\d|1)+", "alternatives can match the same input"],
    ["(A|a)+", "alternatives can match the same input"],
    ["(.|x){2,}", "alternatives can match the same input"],
    ["(a)\\1", "backreferences"],
    ["(?<x>a)\\k<x>", "backreferences"],
    ["foo(?=bar)", "lookahead and lookbehind"],
    ["foo(?!bar)", "lookahead and lookbehind"],
    ["(?<=a)b", "lookahead and lookbehind"],
    ["(?<!a)b", "lookahead and lookbehind"],
    ["a{1001}", "quantifier bounds above 1000"],
    ["a{1,5000}", "quantifier bounds above 1000"],
    ["x".repeat(MAX_REGEX_LENGTH + 1), "at most 256"],
    ["([", "invalid regular expression"],
    ["\\q", "invalid regular expression"],
    ["a{2,1}", "invalid regular expression"],
  ])("%s (%s)", (pattern, reason) => {
    expect(checkRegex(pattern)).toContain(reason);
  });
});

test("property: never throws, and an accepted pattern compiles with the u flag", () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.stringMatching(/^[()|*+?{}\d,a\\[\]^$.-]{0,40}$/)), (pattern) => {
      const reason = checkRegex(pattern);
      if (reason === undefined) expect(() => new RegExp(pattern, "u")).not.toThrow();
      else expect(typeof reason).toBe("string");
    }),
    { numRuns: 1000 },
  );
});
