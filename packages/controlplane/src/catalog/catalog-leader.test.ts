/**
 * The leader gate of the catalog's once-only duties (TTL expiry, reaping):
 * a replica that is not leader never runs them; a new leader counts TTLs
 * from its takeover and writes through the gate's (fenced) duty store.
 */
import { instanceRegistrationSchema } from "@weft/api";
import { type Disposable, toDisposable } from "@weft/core";
import { VirtualClock } from "@weft/testkit";
import { afterEach, expect, it } from "vitest";
import { MemoryStore } from "../store/memory.js";
import type { Store } from "../store/store.js";
import { Catalog, type LeaderGate } from "./catalog.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

class FakeGate implements LeaderGate {
  leader = false;
  dutyWrites = 0;
  private readonly fns = new Set<(l: boolean) => void>();
  constructor(private readonly store: Store) {}
  isLeader(): boolean {
    return this.leader;
  }
  onChange(fn: (l: boolean) => void): Disposable {
    this.fns.add(fn);
    return toDisposable(() => {
      this.fns.delete(fn);
    });
  }
  dutyStore(): Store | undefined {
    if (!this.leader) return undefined;
    // Counts the duty writes, so the test sees they went through the gate's store.
    return new Proxy(this.store, {
      get: (target, prop, recv) => {
        if (prop === "txn") this.dutyWrites++;
        const v = Reflect.get(target, prop, recv);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
  }
  set(leader: boolean): void {
    this.leader = leader;
    for (const fn of this.fns) fn(leader);
  }
}

it("runs TTL expiry and reaping only while leader, counting TTLs from the takeover", async () => {
  const store = new MemoryStore();
  const clock = new VirtualClock();
  const gate = new FakeGate(store);
  const catalog = await Catalog.open({ store, clock, leader: gate, deregisterCriticalAfterMs: 5_000 });
  cleanups.push(async () => {
    await catalog.dispose();
    await store.close();
  });
  const advance = async (ms: number) => {
    clock.advance(ms);
    await catalog.settle();
  };
  await catalog.register(
    instanceRegistrationSchema.parse({
      id: "api-1",
      service: "api",
      address: "10.0.0.1",
      port: 8080,
      checks: [{ ttl: "10s" }],
    }),
  );
  const checkId = catalog.getInstance("api-1")?.checks[0]?.id as string;
  await catalog.heartbeat("api-1", checkId, { status: "passing", output: "ok" });

  // Follower: the TTL runs out twice over, nothing is expired.
  await advance(25_000);
  expect(catalog.getInstance("api-1")?.status).toBe("passing");
  expect(gate.dutyWrites).toBe(0);

  // Leader from now: the TTL counts from the takeover.
  gate.set(true);
  await advance(9_000);
  expect(catalog.getInstance("api-1")?.status).toBe("passing");
  await advance(1_100);
  expect(catalog.getInstance("api-1")?.status).toBe("critical");
  expect(gate.dutyWrites).toBe(1);

  // Deposed before the reap is due: the instance stays.
  gate.set(false);
  await advance(60_000);
  expect(catalog.getInstance("api-1")).toBeDefined();

  // Leader again: reaped after the grace, through the duty store.
  gate.set(true);
  await advance(4_000);
  expect(catalog.getInstance("api-1")).toBeDefined();
  await advance(1_100);
  expect(catalog.getInstance("api-1")).toBeUndefined();
  expect(gate.dutyWrites).toBe(2);
});

it("without a gate (embedded store) expires as before", async () => {
  const store = new MemoryStore();
  const clock = new VirtualClock();
  const catalog = await Catalog.open({ store, clock });
  cleanups.push(async () => {
    await catalog.dispose();
    await store.close();
  });
  await catalog.register(
    instanceRegistrationSchema.parse({
      id: "a",
      service: "s",
      address: "10.0.0.1",
      port: 1,
      checks: [{ ttl: "1s" }],
    }),
  );
  const checkId = catalog.getInstance("a")?.checks[0]?.id as string;
  await catalog.heartbeat("a", checkId, { status: "passing", output: "" });
  clock.advance(1_100);
  await catalog.settle();
  expect(catalog.getInstance("a")?.status).toBe("critical");
});
