/**
 * KIND arguments: case-insensitive kind names (`intention` = `Intention`),
 * resolved with the api package's `kindFromString`. An unknown kind is a
 * usage error (exit 2) that lists the valid kinds.
 */
import { KINDS, kindFromString } from "@weft/api";
import { WeftError } from "@weft/core";

export function resolveKind(input: string): string {
  let kind: string | undefined;
  try {
    kind = kindFromString(input) ?? undefined;
  } catch {
    kind = undefined;
  }
  if (kind === undefined) {
    throw new WeftError("WEFT_ERR_UNKNOWN_KIND", { kind: input, expected: [...KINDS].join(", ") });
  }
  return kind;
}

export function kindList(): string {
  return [...KINDS].join(", ");
}
