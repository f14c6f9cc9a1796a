/**
 * The contract every load balancer passes (ARCHITECTURE habit 10, like
 * Hono's router suite). lb.test.ts runs it over every registered policy;
 * a new policy gets it for free by registering.
 */
import type { EndpointConfig } from "@weft/api/snapshot";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Balancer, BalancerOptions, PickContext, PickResult } from "./balancer.js";

/** A small seeded PRNG (mulberry32): deterministic `random` for balancers under test. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function endpoint(id: string, weight = 1, port = 9000): EndpointConfig {
  return { id, address: "127.0.0.1", port, weight, health: "passing" };
}

export function endpoints(n: number, weight = 1): EndpointConfig[] {
  return Array.from({ length: n }, (_, i) => endpoint(`ep-${i}`, weight, 9000 + i));
}

/** The endpoint id a result carries, or the failure reason. */
export function outcome(r: PickResult): string {
  return r.type === "complete" ? r.endpoint.id : `fail:${r.reason}`;
}

/** Picks `n` times (calling done) and counts results by endpoint id / failure. */
export function countPicks(b: Balancer, n: number, ctx?: (i: number) => PickContext): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const r = b.pick(ctx?.(i));
    if (r.type === "complete") r.done();
    const k = outcome(r);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

export type MakeBalancer = (opts: BalancerOptions) => Balancer;

/** Contexts the suite picks with: plain, and with a hash key (ring_hash's path). */
const CONTEXTS: readonly [string, (i: number) => PickContext | undefined][] = [
  ["without a context", () => undefined],
  ["with a hash key", (i) => ({ hashKey: `key-${i}` })],
];

export function describeBalancerContract(policy: string, make: MakeBalancer): void {
  describe(`load balancer contract: ${policy}`, () => {
    it("names its policy", () => {
      expect(make({}).policy).toBe(policy);
    });

    it("fails with no-endpoints before the first update and after an empty one", () => {
      const b = make({ random: seeded(1) });
      expect(b.pick()).toEqual({ type: "fail", reason: "no-endpoints" });
      b.update([]);
      expect(b.pick()).toEqual({ type: "fail", reason: "no-endpoints" });
      expect(b.pick({ hashKey: "k", exclude: new Set(["x"]) })).toEqual({
        type: "fail",
        reason: "no-endpoints",
      });
    });

    for (const [label, ctx] of CONTEXTS) {
      it(`always picks the only endpoint (${label})`, () => {
        const b = make({ random: seeded(2) });
        const only = endpoint("only");
        b.update([only]);
        for (let i = 0; i < 50; i++) {
          const r = b.pick(ctx(i));
          expect(r.type).toBe("complete");
          if (r.type === "complete") {
            expect(r.endpoint).toBe(only);
            r.done();
          }
        }
      });

      it(`never picks an excluded endpoint and reaches all the others (${label})`, () => {
        const b = make({ random: seeded(3) });
        b.update(endpoints(4));
        const exclude = new Set(["ep-1", "ep-3", "not-in-cluster"]);
        const counts = countPicks(b, 400, (i) => ({ ...ctx(i), exclude }));
        expect([...counts.keys()].sort()).toEqual(["ep-0", "ep-2"]);
      });

      it(`fails with all-excluded when every endpoint is excluded (${label})`, () => {
        const b = make({ random: seeded(4) });
        b.update(endpoints(3));
        const exclude = new Set(["ep-0", "ep-1", "ep-2"]);
        for (let i = 0; i < 20; i++) {
          expect(b.pick({ ...ctx(i), exclude })).toEqual({ type: "fail", reason: "all-excluded" });
        }
        // And picks normally again without the exclusions.
        expect(b.pick(ctx(0)).type).toBe("complete");
      });
    }

    it("picks only from the latest list after updates, and recovers from an empty one", () => {
      const b = make({ random: seeded(5) });
      b.update(endpoints(3));
      expect(countPicks(b, 60).size).toBe(3);
      const next = [endpoint("a"), endpoint("b")];
      b.update(next);
      expect([...countPicks(b, 100).keys()].sort()).toEqual(["a", "b"]);
      expect([...countPicks(b, 100, (i) => ({ hashKey: `k${i}` })).keys()].sort()).toEqual(["a", "b"]);
      b.update([]);
      expect(outcome(b.pick())).toBe("fail:no-endpoints");
      b.update([endpoint("c")]);
      expect(outcome(b.pick())).toBe("c");
    });

    it("publishes a frozen picker, and keeps it (and its state) for an equal list", () => {
      const b = make({ random: seeded(6) });
      b.update(endpoints(3));
      const first = b.picker;
      expect(Object.isFrozen(first)).toBe(true);
      expect(Object.isFrozen(first.endpoints)).toBe(true);
      expect(first.endpoints.map((e) => e.id)).toEqual(["ep-0", "ep-1", "ep-2"]);
      b.pick();
      b.update(endpoints(3)); // equal content, new objects
      expect(b.picker).toBe(first);
      b.update([...endpoints(2), { ...endpoint("ep-2", 1, 9002), health: "warning" }]);
      expect(b.picker).not.toBe(first);
      expect(b.picker.endpoints[2]?.health).toBe("warning");
    });

    it("does not change when the caller mutates the list it passed", () => {
      const b = make({ random: seeded(7) });
      const list = endpoints(2);
      b.update(list);
      list.push(endpoint("late"));
      expect(countPicks(b, 50).has("late")).toBe(false);
    });

    it("is deterministic for a given random source", () => {
      const run = (): string[] => {
        const b = make({ random: seeded(8) });
        b.update(endpoints(5));
        return Array.from({ length: 40 }, (_, i) =>
          outcome(b.pick(i % 2 ? { hashKey: `k${i}` } : undefined)),
        );
      };
      expect(run()).toEqual(run());
    });

    it("done() is idempotent and picking goes on after it", () => {
      const b = make({ random: seeded(9) });
      b.update(endpoints(2));
      for (let i = 0; i < 20; i++) {
        const r = b.pick();
        if (r.type !== "complete") throw new Error("expected a pick");
        r.done();
        r.done();
        expect(r.done()).toBeUndefined();
      }
      expect(countPicks(b, 100).size).toBe(2);
    });

    it("done() is safe after the endpoint left the cluster", () => {
      const b = make({ random: seeded(10) });
      b.update([endpoint("gone")]);
      const r = b.pick();
      b.update([endpoint("stays")]);
      if (r.type !== "complete") throw new Error("expected a pick");
      expect(() => r.done()).not.toThrow();
      expect(outcome(b.pick())).toBe("stays");
    });

    it("property: only listed, non-excluded endpoints; fails exactly when nothing is left", () => {
      const ids = fc.uniqueArray(fc.constantFrom("a", "b", "c", "d", "e", "f", "g", "h"), { maxLength: 8 });
      const list = fc
        .tuple(ids, fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 8, maxLength: 8 }))
        .map(([xs, ws]) => xs.map((id, i) => endpoint(id, ws[i]!)));
      const op = fc.oneof(
        fc.record({ kind: fc.constant("update" as const), list }),
        fc.record({
          kind: fc.constant("pick" as const),
          exclude: fc.uniqueArray(fc.constantFrom("a", "b", "c", "d", "e", "f", "g", "h", "z")),
          hashKey: fc.option(fc.string({ maxLength: 12 }), { nil: undefined }),
          done: fc.boolean(),
        }),
      );
      fc.assert(
        fc.property(fc.integer(), fc.array(op, { maxLength: 40 }), (seed, ops) => {
          const b = make({ random: seeded(seed) });
          let current: EndpointConfig[] = [];
          for (const o of ops) {
            if (o.kind === "update") {
              b.update(o.list);
              current = o.list;
              continue;
            }
            const exclude: ReadonlySet<string> = new Set(o.exclude);
            const r = b.pick({ exclude, hashKey: o.hashKey });
            const left = current.filter((e) => !exclude.has(e.id));
            if (current.length === 0) {
              expect(r).toEqual({ type: "fail", reason: "no-endpoints" });
            } else if (left.length === 0) {
              expect(r).toEqual({ type: "fail", reason: "all-excluded" });
            } else {
              expect(r.type).toBe("complete");
              if (r.type === "complete") {
                expect(left).toContainEqual(r.endpoint);
                if (o.done) r.done();
              }
            }
          }
        }),
        { numRuns: 200 },
      );
    });
  });
}
