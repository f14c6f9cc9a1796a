/**
 * KIND arguments: case-insensitive kind names (`intention` = `Intention`),
 * resolved with the api package's `kindFromString`. An unknown kind is a
 * usage error (exit 2) that lists the valid kinds.
 */
import { KINDS, kindFromString } from "@weft/api";
import { WeftError } from "@weft/core";

export function resolveKind(input: string): string {
  const kind = kindFromString(input);
  if (kind === undefined) throw new WeftError("WEFT_ERR_UNKNOWN_KIND", { kind: input, expected: kindList() });
  return kind;
}

export function kindList(): string {
  return [...KINDS].join(", ");
}
