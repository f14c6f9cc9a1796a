import { describe, expect, it } from "vitest";
import { storeContract } from "./contract.suite.js";
import { MemoryStore } from "./memory.js";

storeContract("memory", async () => new MemoryStore());

describe("MemoryStore", () => {
  it("keeps a bounded history and compacts automatically", async () => {
    const store = new MemoryStore({ historyLimit: 10 });
    for (let i = 0; i < 50; i++) await store.put("/k", String(i));
    // At least `historyLimit` revisions stay watchable.
    const seen: number[] = [];
    await store.watch("", (b) => seen.push(b.revision), { fromRevision: 40 });
    await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual([41, 42, 43, 44, 45, 46, 47, 48, 49, 50]);
    await expect(store.watch("", () => {}, { fromRevision: 20 })).rejects.toMatchObject({
      code: "WEFT_ERR_STORE_COMPACTED",
    });
    await store.close();
  });

  it("refuses a nonsensical history limit", () => {
    expect(() => new MemoryStore({ historyLimit: 0 })).toThrow(
      expect.objectContaining({ code: "WEFT_ERR_CONFIG_INVALID" }),
    );
  });
});
