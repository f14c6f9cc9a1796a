import type { EndpointConfig } from "@weft/api/snapshot";
import { isWeftError } from "@weft/core";
import { describe, expect, it } from "vitest";
import { countPicks, endpoint, endpoints, outcome, seeded } from "./lb.suite.js";
import {
  createRingHash,
  MAX_RING_SIZE,
  parseRingHashConfig,
  RingHashBalancer,
  RingHashPicker,
} from "./ring-hash.js";

function make(list: readonly EndpointConfig[], ringSize?: number, seed = 51): RingHashBalancer {
  const b = new RingHashBalancer(parseRingHashConfig({ policy: "ring_hash", ringSize }), {
    random: seeded(seed),
  });
  b.update(list);
  return b;
}

const KEYS = Array.from({ length: 10_000 }, (_, i) => `session-${i}`);

function mapping(b: RingHashBalancer, exclude?: ReadonlySet<string>): string[] {
  return KEYS.map((hashKey) => outcome(b.pick({ hashKey, exclude })));
}

function picker(b: RingHashBalancer): RingHashPicker {
  const p = b.picker;
  if (!(p instanceof RingHashPicker)) throw new Error("expected a ring hash picker");
  return p;
}

describe("ring_hash", () => {
  it("sends the same key to the same endpoint", () => {
    const b = make(endpoints(5));
    const first = mapping(b);
    expect(mapping(b)).toEqual(first);
    expect(new Set(first).size).toBe(5);
  });

  it("builds the same ring in another process whatever the list order (pinned golden mapping)", () => {
    const list = endpoints(5);
    const other = make([...list].reverse(), undefined, 99);
    expect(mapping(other)).toEqual(mapping(make(list)));
    const golden = ["user-1", "user-2", "user-3", "user-4", "user-5", "user-6"].map((hashKey) =>
      outcome(other.pick({ hashKey })),
    );
    expect(golden).toEqual(GOLDEN);
  });

  it("removing one of 10 endpoints moves its keys and only about 1/10 of all keys", () => {
    const list = endpoints(10);
    const before = mapping(make(list));
    const after = mapping(make(list.filter((e) => e.id !== "ep-3")));
    let moved = 0;
    let movedElsewhere = 0;
    for (let i = 0; i < KEYS.length; i++) {
      if (before[i] === after[i]) continue;
      moved++;
      if (before[i] !== "ep-3") movedElsewhere++;
    }
    expect(after).not.toContain("ep-3");
    const onRemoved = before.filter((x) => x === "ep-3").length;
    expect(moved).toBe(onRemoved + movedElsewhere);
    expect(moved / KEYS.length).toBeGreaterThan(0.05);
    expect(moved / KEYS.length).toBeLessThan(0.15);
    // The other endpoints keep their points (same points per weight), so none of their keys move.
    expect(movedElsewhere).toBe(0);
  });

  it("adding an 11th endpoint moves about 1/11 of the keys, all to the new one", () => {
    const list = endpoints(10);
    const before = mapping(make(list));
    const after = mapping(make([...list, endpoint("ep-new")]));
    const moved = KEYS.filter((_, i) => before[i] !== after[i]);
    expect(moved.length / KEYS.length).toBeGreaterThan(0.05);
    expect(moved.length / KEYS.length).toBeLessThan(0.15);
    expect(after.filter((x) => x === "ep-new").length).toBe(moved.length);
  });

  it("when the total weight crosses a power of two (k halves), moved keys stay bounded", () => {
    // 1024 / 15 -> k = 128 points each; 1024 / 16 -> k = 64: every endpoint loses half its points.
    const list = endpoints(15);
    expect(picker(make(list)).entries).toBe(15 * 128);
    const before = mapping(make(list));
    const grown = make([...list, endpoint("ep-new")]);
    expect(picker(grown).entries).toBe(16 * 64);
    const after = mapping(grown);
    const moved = KEYS.filter((_, i) => before[i] !== after[i]).length / KEYS.length;
    // About half the keys move here (0.48 with these keys): the price of ~1/N everywhere else.
    expect(moved).toBeGreaterThan(0.3);
    expect(moved).toBeLessThan(0.6);
  });

  it("gives endpoints ring entries in proportion to weight, and keys accordingly", () => {
    const b = make([endpoint("light", 1), endpoint("heavy", 3)]);
    const p = picker(b);
    expect(p.entries).toBe(1024);
    expect(p.entriesFor("light")).toBe(256);
    expect(p.entriesFor("heavy")).toBe(768);
    expect(p.entriesFor("nobody")).toBe(0);
    const light = mapping(b).filter((x) => x === "light").length / KEYS.length;
    expect(light).toBeGreaterThan(0.18);
    expect(light).toBeLessThan(0.32);
  });

  it("holds ringSize to 2 x ringSize entries (default 1024), in exact proportion to weight", () => {
    expect(picker(make(endpoints(3))).entries).toBe(3 * 512);
    expect(picker(make(endpoints(4))).entries).toBe(1024);
    expect(picker(make(endpoints(3), 64)).entries).toBe(3 * 32);
    const weighted = picker(make([endpoint("a", 100), endpoint("b", 300)]));
    expect(weighted.entriesFor("a")).toBe(400);
    expect(weighted.entriesFor("b")).toBe(1200);
  });

  it("gives the lightest endpoint a point even when the others are much heavier", () => {
    const skewed = picker(make([endpoint("tiny", 1), endpoint("huge", 10_000)], 64));
    expect(skewed.entriesFor("tiny")).toBe(1);
    expect(skewed.entriesFor("huge")).toBe(10_000);
  });

  it("caps the ring near the maximum size, every endpoint keeping a point", () => {
    const list = [
      endpoint("tiny", 1),
      ...Array.from({ length: 900 }, (_, i) => endpoint(`big-${i}`, 10_000)),
    ];
    const p = picker(make(list));
    expect(p.entriesFor("tiny")).toBe(1);
    expect(p.entriesFor("big-0")).toBe(5000);
    expect(p.entries).toBe(900 * 5000 + 1);
    expect(p.entries).toBeLessThanOrEqual(MAX_RING_SIZE);
  });

  it("excluding an endpoint changes only the keys it owned, deterministically, to the next one on the ring", () => {
    const b = make(endpoints(5));
    const before = mapping(b);
    const exclude = new Set(["ep-2"]);
    const after = mapping(b, exclude);
    expect(mapping(b, exclude)).toEqual(after);
    for (let i = 0; i < KEYS.length; i++) {
      if (before[i] !== "ep-2") expect(after[i]).toBe(before[i]);
      else expect(after[i]).not.toBe("ep-2");
    }
    // The owners of the re-routed keys are spread, not all on one neighbour.
    expect(new Set(after.filter((_, i) => before[i] === "ep-2")).size).toBeGreaterThan(1);
  });

  it("walks past several excluded endpoints to the one left", () => {
    const b = make(endpoints(5));
    const exclude = new Set(["ep-0", "ep-1", "ep-2", "ep-3"]);
    expect(new Set(mapping(b, exclude))).toEqual(new Set(["ep-4"]));
  });

  it("picks uniformly at random without a hash key", () => {
    const b = make(endpoints(3), undefined, 52);
    const counts = countPicks(b, 3000);
    for (const id of ["ep-0", "ep-1", "ep-2"]) {
      expect(counts.get(id)).toBeGreaterThan(920);
      expect(counts.get(id)).toBeLessThan(1080);
    }
  });

  it("treats an empty key as a key", () => {
    const b = make(endpoints(5));
    const first = outcome(b.pick({ hashKey: "" }));
    for (let i = 0; i < 20; i++) expect(outcome(b.pick({ hashKey: "" }))).toBe(first);
  });

  it("keeps the mapping when only addresses or health change", () => {
    const list = endpoints(6);
    const b = make(list);
    const before = mapping(b);
    const old = b.picker;
    b.update(list.map((e, i) => ({ ...e, address: `10.0.0.${i}`, health: "warning" as const })));
    expect(b.picker).not.toBe(old);
    expect(mapping(b)).toEqual(before);
    const r = b.pick({ hashKey: KEYS[0] });
    expect(r.type === "complete" && r.endpoint.address.startsWith("10.0.0.")).toBe(true);
  });

  it("parses ringSize: default 1024, bounds 64..8,388,608", () => {
    expect(parseRingHashConfig({ policy: "ring_hash" }).ringSize).toBe(1024);
    for (const ringSize of [0, 63, MAX_RING_SIZE + 1, 100.5]) {
      let error: unknown;
      try {
        createRingHash({ policy: "ring_hash", ringSize }, {});
      } catch (e) {
        error = e;
      }
      expect(isWeftError(error, "WEFT_ERR_CONFIG_INVALID")).toBe(true);
    }
  });
});

const GOLDEN = ["ep-3", "ep-2", "ep-4", "ep-3", "ep-2", "ep-3"];
