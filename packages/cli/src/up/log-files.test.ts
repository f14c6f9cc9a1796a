import { appendFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { followFiles, lastRunLines, rotateIfLarge, START_MARK, tailText } from "./log-files.js";

const dir = mkdtempSync(join(tmpdir(), "weft-logs-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("log files", () => {
  it("lastRunLines: the last lines of the run since the last start marker", () => {
    const f = join(dir, "app.log");
    writeFileSync(f, `${START_MARK}start 1\nold 1\nold 2\n${START_MARK}start 2\nnew 1\n\nnew 2\nnew 3\n`);
    expect(lastRunLines(f, 2)).toEqual(["new 2", "new 3"]);
    expect(lastRunLines(f, 10)).toEqual(["new 1", "new 2", "new 3"]);
    expect(lastRunLines(join(dir, "missing.log"), 5)).toEqual([]);
  });

  it("tailText: all, or the last n lines, across read chunks", () => {
    const f = join(dir, "big.log");
    const lines = Array.from({ length: 20_000 }, (_, i) => `line ${i}`);
    writeFileSync(f, `${lines.join("\n")}\n`);
    expect(tailText(f, 3)).toBe("line 19997\nline 19998\nline 19999\n");
    expect(tailText(f, undefined)).toBe(readFileSync(f, "utf8"));
    expect(tailText(f, 0)).toBe("");
  });

  it("rotateIfLarge copies a big file to .1 and truncates it; small files stay", () => {
    const f = join(dir, "rot.log");
    writeFileSync(f, "x".repeat(100));
    expect(rotateIfLarge(f, 1000)).toBe(false);
    expect(rotateIfLarge(f, 50)).toBe(true);
    expect(readFileSync(`${f}.1`, "utf8")).toHaveLength(100);
    expect(readFileSync(f, "utf8")).toBe("");
  });

  it("followFiles emits new complete lines and starts over after a truncation", async () => {
    const f = join(dir, "follow.log");
    writeFileSync(f, "before\n");
    const seen: string[] = [];
    const stop = followFiles([f], (_file, line) => seen.push(line), { intervalMs: 20 });
    appendFileSync(f, "one\ntw");
    await new Promise((r) => setTimeout(r, 100));
    appendFileSync(f, "o\n");
    await new Promise((r) => setTimeout(r, 100));
    truncateSync(f, 0);
    appendFileSync(f, "after rotation\n");
    await new Promise((r) => setTimeout(r, 100));
    stop();
    expect(seen).toEqual(["one", "two", "after rotation"]);
  });
});
