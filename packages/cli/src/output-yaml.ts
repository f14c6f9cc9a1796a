/**
 * YAML output: one document per value, separated by `---`, so
 * `weft get KIND -o yaml > f.yaml && weft apply -f f.yaml` round-trips.
 * Apart from output.ts so that only the commands that print YAML load it.
 */
import { stringify } from "yaml";

/** One YAML document per value, separated by `---`. */
export function yamlDocs(values: readonly unknown[]): string {
  return values.map((v) => stringify(v, { lineWidth: 0 })).join("---\n");
}
