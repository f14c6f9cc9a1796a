/**
 * Output for people and for scripts. Tables are aligned plain text; colour
 * only when the stream is a TTY and NO_COLOR is unset (https://no-color.org).
 * JSON is pretty-printed with a trailing newline; YAML is in output-yaml.ts
 * (kept apart so that a sidecar, which prints no YAML, never loads the yaml
 * package: a few MB of memory per sidecar).
 */
import { describeError, WeftError } from "@weft/core";

export interface Out {
  write(text: string): void;
  isTTY: boolean;
}

export function stdout(): Out {
  return { write: (t) => process.stdout.write(t), isTTY: process.stdout.isTTY === true };
}

export function stderr(): Out {
  return { write: (t) => process.stderr.write(t), isTTY: process.stderr.isTTY === true };
}

export function useColor(out: Out): boolean {
  return out.isTTY && !process.env.NO_COLOR && process.env.TERM !== "dumb";
}

const ANSI = { red: 31, green: 32, yellow: 33, dim: 2, bold: 1 } as const;
export type Color = keyof typeof ANSI;

/** Wraps text in an ANSI colour when `enabled`. */
export function paint(text: string, color: Color, enabled: boolean): string {
  return enabled ? `\u001b[${ANSI[color]}m${text}\u001b[0m` : text;
}

// Built from a string: a literal ESC in a regex literal trips the control-character lint.
const ANSI_RE = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");

/** Removes ANSI colour codes. */
export function stripAnsi(s: string): string {
  return s.replace(ANSI_RE, "");
}

function visibleLength(s: string): number {
  return stripAnsi(s).length;
}

/**
 * Renders rows under upper-case headers, columns separated by two spaces,
 * the last column not padded. Cells may carry colour; widths ignore it.
 */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleLength(r[i] ?? ""))));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + " ".repeat((widths[i] ?? 0) - visibleLength(c))))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** The one format for errors on stderr: `error: <message> (<CODE>)`. Never a stack trace. */
export function formatError(err: unknown): string {
  if (err instanceof WeftError) return `error: ${err.message} (${err.code})`;
  return `error: ${describeError(err)} (WEFT_ERR_INTERNAL)`;
}

/** "1 resource" / "3 resources". */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
