/**
 * "Never a silent start with an empty registry" (HARDENING.md, store
 * faults), end to end through `weft server`: a data dir whose store is
 * truncated, replaced by garbage or deleted makes the server refuse to start
 * with WEFT_ERR_STORE_CORRUPT and a non-zero exit, without touching the file;
 * putting the good file back brings every resource back.
 */
import { copyFileSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import { cleanup, runWeft, startWeftServer, tempDir } from "./helpers/weft.js";

afterAll(cleanup);

describe("a damaged data dir", () => {
  it("is refused at start with a clear error, and a restored file brings the data back", async () => {
    const dataDir = join(tempDir(), "data");
    const first = await startWeftServer({ dataDir });
    const intention = { kind: "Intention", name: "api", sources: [{ name: "web", action: "allow" }] };
    const put = await http(first.url, "/v1/config/apply", {
      method: "POST",
      token: first.token!,
      body: { resources: [intention] },
    });
    expect(put.status, put.text).toBe(200);
    expect(await first.stop()).toBe(0);

    const db = join(dataDir, "store.db");
    const good = join(tempDir(), "good.db");
    copyFileSync(db, good);
    const goodBytes = readFileSync(good);

    const damaged: [string, () => void][] = [
      ["truncated", () => writeFileSync(db, goodBytes.subarray(0, Math.floor(goodBytes.length / 2)))],
      ["garbage", () => writeFileSync(db, Buffer.alloc(64 * 1024, 0x5a))],
      ["missing", () => rmSync(db)],
    ];
    for (const [label, damage] of damaged) {
      damage();
      const before = label === "missing" ? undefined : readFileSync(db);
      const r = await runWeft(["server", "--listen", "127.0.0.1:0", "--data-dir", dataDir], {
        timeoutMs: 10_000,
      });
      expect(r.code, `${label}: ${r.stderr}`).toBe(1);
      expect(r.stderr, label).toContain("WEFT_ERR_STORE_CORRUPT");
      expect(r.stderr, label).toContain("refusing to start");
      expect(r.stdout, label).not.toContain("listening");
      expect(r.stderr, label).not.toMatch(/\n\s+at /); // no stack trace
      if (before)
        expect(readFileSync(db).equals(before), `${label}: the damaged file was modified`).toBe(true);
    }

    copyFileSync(good, db);
    const again = await startWeftServer({ dataDir, expectToken: false });
    const token = readFileSync(join(dataDir, "bootstrap-token"), "utf8").trim();
    const got = await http(again.url, "/v1/config/intention/api", { token });
    expect(got.status, got.text).toBe(200);
    expect(got.body).toMatchObject(intention);
    expect(await again.stop()).toBe(0);
  });
});
