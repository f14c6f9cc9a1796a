import { describe, expect, it } from "vitest";
import { VirtualClock } from "./virtual-clock.js";

describe("VirtualClock", () => {
  it("fires timeouts and intervals in time order, including ones scheduled by timers", () => {
    const c = new VirtualClock(0);
    const seen: string[] = [];
    c.setTimeout(() => seen.push(`t30@${c.now()}`), 30);
    const iv = c.setInterval(() => {
      seen.push(`i@${c.now()}`);
      if (c.now() === 20) c.setTimeout(() => seen.push(`nested@${c.now()}`), 5);
    }, 10);
    c.advance(35);
    iv.cancel();
    c.advance(100);
    expect(seen).toEqual(["i@10", "i@20", "nested@25", "t30@30", "i@30"]);
    expect(c.now()).toBe(135);
    expect(c.pending).toBe(0);
  });
});
