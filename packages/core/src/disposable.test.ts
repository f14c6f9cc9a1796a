import { describe, expect, it } from "vitest";
import { DisposableStore, toDisposable } from "./disposable.js";

describe("DisposableStore", () => {
  it("disposes in reverse order, once", async () => {
    const order: number[] = [];
    const store = new DisposableStore();
    store.add(toDisposable(() => void order.push(1)));
    store.add(toDisposable(async () => void order.push(2)));
    await store.dispose();
    await store.dispose();
    expect(order).toEqual([2, 1]);
  });

  it("disposes late additions at once and reports failures after disposing the rest", async () => {
    const store = new DisposableStore();
    let ran = false;
    store.add(
      toDisposable(() => {
        ran = true;
      }),
    );
    store.add(
      toDisposable(() => {
        throw new Error("boom");
      }),
    );
    await expect(store.dispose()).rejects.toThrow("boom");
    expect(ran).toBe(true);
    let late = false;
    store.add(
      toDisposable(() => {
        late = true;
      }),
    );
    expect(late).toBe(true);
  });
});
