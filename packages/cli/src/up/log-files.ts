/**
 * The log files of `weft up`. Each child writes straight into its file (the
 * file is its stdout and stderr, opened O_APPEND), so a child never depends
 * on the supervisor to keep its output flowing. The supervisor marks each
 * start in the file, reads the tail when a process dies (the lines shown
 * with the failure), and keeps files bounded by copy-and-truncate (the
 * O_APPEND writers continue at the new end). `weft logs -f` follows files
 * by polling and starts over when a file was truncated.
 */
import { closeSync, copyFileSync, openSync, readSync, statSync, truncateSync } from "node:fs";

/** Files over this size are copied to `FILE.1` and truncated. */
export const MAX_LOG_BYTES = 16 * 1024 * 1024;

/** How many bytes before its position a follower compares to notice a rewritten file. */
const FINGERPRINT = 64;

/** The marker the supervisor writes before each start of a process. */
export const START_MARK = "--- weft up: ";

function readRange(file: string, start: number, length: number): Buffer {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, start + got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

function size(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return -1;
  }
}

/**
 * The last `n` lines of `file` written since the last start marker (the
 * output of the run that just ended), from at most its last `maxBytes`.
 */
export function lastRunLines(file: string, n: number, maxBytes = 16 * 1024): string[] {
  const total = size(file);
  if (total <= 0) return [];
  const start = Math.max(0, total - maxBytes);
  const text = readRange(file, start, total - start).toString("utf8");
  let lines = text.split("\n");
  if (start > 0) lines = lines.slice(1); // the first one is cut
  const mark = lines.map((l) => l.startsWith(START_MARK)).lastIndexOf(true);
  if (mark >= 0) lines = lines.slice(mark + 1);
  return lines
    .filter((l) => l.trim() !== "" && !l.startsWith(START_MARK))
    .slice(-n)
    .map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l));
}

/** The last `n` lines of `file` (all when n is undefined), as text ending in a newline (or empty). */
export function tailText(file: string, n: number | undefined): string {
  const total = size(file);
  if (total <= 0) return "";
  if (n === undefined) return readRange(file, 0, total).toString("utf8");
  if (n <= 0) return "";
  // Read backwards in chunks until n lines are in hand.
  let start = total;
  let text = "";
  while (start > 0) {
    const from = Math.max(0, start - 64 * 1024);
    text = readRange(file, from, start - from).toString("utf8") + text;
    start = from;
    const lines = text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
    if (lines > n) break;
  }
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const kept = lines.slice(-n);
  return kept.length > 0 ? `${kept.join("\n")}\n` : "";
}

/** Copies a log over MAX_LOG_BYTES to FILE.1 and truncates it. Never throws. */
export function rotateIfLarge(file: string, maxBytes = MAX_LOG_BYTES): boolean {
  try {
    if (size(file) <= maxBytes) return false;
    copyFileSync(file, `${file}.1`);
    truncateSync(file, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Follows files from their current end (or `fromStart`), calling `emit`
 * with each complete new line. Returns a stop function.
 */
export function followFiles(
  files: readonly string[],
  emit: (file: string, line: string) => void,
  opts: { intervalMs?: number; fromEnd?: boolean } = {},
): () => void {
  // Per file: where we are, and the bytes just before it. Copy-and-truncate may leave the
  // file at the same or a larger size than before; the bytes before our position then no
  // longer match, and the file is read again from its start.
  const at = new Map<string, { pos: number; tail: Buffer; partial: string }>();
  const tailBefore = (f: string, pos: number) =>
    readRange(f, Math.max(0, pos - FINGERPRINT), Math.min(pos, FINGERPRINT));
  for (const f of files) {
    const pos = opts.fromEnd === false ? 0 : Math.max(0, size(f));
    at.set(f, { pos, tail: pos > 0 ? tailBefore(f, pos) : Buffer.alloc(0), partial: "" });
  }
  const poll = () => {
    for (const f of files) {
      const total = size(f);
      const st = at.get(f);
      if (total < 0 || !st) continue;
      if (total < st.pos || (st.pos > 0 && !tailBefore(f, st.pos).equals(st.tail))) {
        st.pos = 0;
        st.partial = "";
      }
      if (total === st.pos) continue;
      const chunk = readRange(f, st.pos, total - st.pos);
      st.pos += chunk.length;
      st.tail = tailBefore(f, st.pos);
      const lines = (st.partial + chunk.toString("utf8")).split("\n");
      st.partial = lines.pop() ?? "";
      for (const l of lines) emit(f, l);
    }
  };
  const timer = setInterval(poll, opts.intervalMs ?? 250);
  return () => {
    clearInterval(timer);
    poll();
  };
}
