/**
 * Table-driven checks shared by the per-kind tests: each valid document is
 * parsed and compared with its expected output; each invalid one must fail
 * with an issue at the expected path whose message contains the expected text.
 */
import { describe, expect, test } from "vitest";
import { parseResource } from "./index.js";

export interface ValidCase {
  name: string;
  input: unknown;
  /** The whole parsed resource. */
  expected?: unknown;
  /** Or just part of it. */
  match?: Record<string, unknown>;
}

export interface InvalidCase {
  name: string;
  input: unknown;
  path: (string | number)[];
  message: string;
}

export function runTable(title: string, valid: ValidCase[], invalid: InvalidCase[]): void {
  describe(title, () => {
    test.each(valid)("accepts $name", ({ input, expected, match }) => {
      const r = parseResource(input);
      if (!r.ok) expect.fail(`unexpected issues: ${JSON.stringify(r.issues)}`);
      if (expected !== undefined) expect(r.resource).toEqual(expected);
      if (match !== undefined) expect(r.resource).toMatchObject(match);
      expect(Object.isFrozen(r.resource)).toBe(true);
    });
    test.each(invalid)("refuses $name", ({ input, path, message }) => {
      const r = parseResource(input);
      if (r.ok) expect.fail(`accepted: ${JSON.stringify(r.resource)}`);
      const hit = r.issues.find(
        (i) => JSON.stringify(i.path) === JSON.stringify(path) && i.message.includes(message),
      );
      if (!hit)
        expect.fail(
          `no issue at ${JSON.stringify(path)} containing "${message}"; got ${JSON.stringify(r.issues)}`,
        );
    });
  });
}
