/**
 * Durations are written as Go-style strings in config ("1h30m", "250ms",
 * "1.5s") and carried as integer milliseconds everywhere inside Weft.
 */

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;

/** Upper bound accepted anywhere: 10 years. Keeps arithmetic in safe integers. */
export const MAX_DURATION_MS = 10 * 365 * 24 * 3_600_000;

export type ParseResult = { ok: true; ms: number } | { ok: false; error: string };

/** Parses "1h2m3s", "500ms", "1.5s", "0s". Returns a result, never throws. */
export function parseDuration(text: string): ParseResult {
  if (typeof text !== "string" || text.length === 0 || text.length > 64) {
    return { ok: false, error: 'expected a duration like "500ms", "10s", "5m" or "24h"' };
  }
  if (text === "0") return { ok: true, ms: 0 };
  let total = 0;
  PART.lastIndex = 0;
  let pos = 0;
  while (pos < text.length) {
    PART.lastIndex = pos;
    const m = PART.exec(text);
    if (!m)
      return {
        ok: false,
        error: `invalid duration "${text}"; expected a duration like "500ms", "10s", "5m" or "24h"`,
      };
    total += Number(m[1]) * (UNITS[m[2] as string] as number);
    pos = PART.lastIndex;
  }
  const ms = Math.round(total);
  if (ms > MAX_DURATION_MS) return { ok: false, error: `duration "${text}" is longer than 10 years` };
  return { ok: true, ms };
}

/** Formats milliseconds compactly: 90000 -> "1m30s", 250 -> "250ms". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms === 0) return "0s";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  let rest = Math.round(ms);
  let out = "";
  for (const [unit, size] of [
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  if (rest > 0) out += `${rest}ms`;
  return out;
}
