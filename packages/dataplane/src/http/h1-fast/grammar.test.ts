import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FIELD, fieldLine } from "./grammar.js";

// The grammar fieldLine scans by hand, as the regular expressions the parsers used before (RFC 9110 §5).
const FIELD_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\t\x20-\x7e]*?)[ \t]*$/;
const FIELD_LINE_OBS = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\t\x20-\x7e\x80-\xff]*?)[ \t]*$/;

/** fieldLine's verdict on `line` alone, as [name, value] or null. */
function scan(line: string, obsText: boolean): [string, string] | null {
  // Padding on both sides: the scanner must keep to [from, to).
  const head = `x\r\n${line}\r\ny`;
  if (!fieldLine(head, 3, 3 + line.length, obsText)) return null;
  return [head.slice(3, FIELD.nameEnd), head.slice(FIELD.valueStart, FIELD.valueEnd)];
}

function regex(line: string, obsText: boolean): [string, string] | null {
  const m = (obsText ? FIELD_LINE_OBS : FIELD_LINE).exec(line);
  return m === null ? null : [m[1] as string, m[2] as string];
}

// Lines mostly near the grammar: names, colons, whitespace, visible ASCII, controls, DEL, obs-text.
const pieces = fc.constantFrom(
  "a",
  "X-Y",
  ":",
  " ",
  "\t",
  "v",
  "\r",
  "\n",
  "\0",
  "\x7f",
  "\x80",
  "\xff",
  "é",
  "(",
  "~",
);
const line = fc.array(pieces, { maxLength: 12 }).map((a) => a.join(""));

describe("fieldLine: a field line's grammar without allocating", () => {
  it("agrees with the field-line regular expression on any line, with and without obs-text", () => {
    fc.assert(
      fc.property(line, fc.boolean(), (l, obs) => {
        expect(scan(l, obs)).toEqual(regex(l, obs));
      }),
      { numRuns: 5000 },
    );
    fc.assert(
      fc.property(fc.string({ unit: "binary-ascii", maxLength: 20 }), fc.boolean(), (l, obs) => {
        expect(scan(l, obs)).toEqual(regex(l, obs));
      }),
      { numRuns: 2000 },
    );
  });

  it("takes a plain field and trims the whitespace around its value", () => {
    expect(scan("Content-Type: \ttext/plain; a=b \t", false)).toEqual(["Content-Type", "text/plain; a=b"]);
    expect(scan("x:", false)).toEqual(["x", ""]);
    expect(scan("x: \t ", false)).toEqual(["x", ""]);
  });

  it("refuses an empty name, whitespace before the colon, a control, DEL, or obs-text when not allowed", () => {
    for (const bad of [": v", "x : v", "x:\0", "x: a\rb", "x: a\nb", "x: \x7f", "(x): v", ""])
      expect(scan(bad, true)).toBeNull();
    expect(scan("x: caf\xe9", false)).toBeNull();
    expect(scan("x: caf\xe9", true)).toEqual(["x", "caf\xe9"]);
  });
});
