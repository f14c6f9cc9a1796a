import { type InstanceRegistration, instanceRegistrationSchema } from "@weft/api";
import { VirtualClock } from "@weft/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { instanceKey } from "../state/keys.js";
import { MemoryStore } from "../store/memory.js";
import { Catalog } from "./catalog.js";
import { DeadlineWheel } from "./deadline-wheel.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(opts: { dca?: number; store?: MemoryStore; clock?: VirtualClock } = {}) {
  const store = opts.store ?? new MemoryStore();
  const clock = opts.clock ?? new VirtualClock();
  const catalogOpts: Parameters<typeof Catalog.open>[0] = { store, clock };
  if (opts.dca !== undefined) catalogOpts.deregisterCriticalAfterMs = opts.dca;
  const catalog = await Catalog.open(catalogOpts);
  cleanups.push(async () => {
    await catalog.dispose();
    if (!opts.store) await store.close();
  });
  /** Advances virtual time and lets the health writes it caused land. */
  const advance = async (ms: number) => {
    clock.advance(ms);
    await catalog.settle();
  };
  return { store, clock, catalog, advance };
}

const reg = (over: Partial<InstanceRegistration> = {}) =>
  instanceRegistrationSchema.parse({
    id: "api-1",
    service: "api",
    address: "10.0.0.1",
    port: 8080,
    checks: [{ ttl: "10s" }],
    ...over,
  });

describe("catalog", () => {
  it("registers (201 semantics), replaces idempotently by id, lists and deregisters", async () => {
    const { catalog } = await setup();
    const a = await catalog.register(reg());
    expect(a.created).toBe(true);
    expect(a.instance).toMatchObject({ id: "api-1", service: "api", status: "critical", datacenter: "dc1" });
    const b = await catalog.register(reg({ tags: ["v2"] }));
    expect(b.created).toBe(false);
    expect(b.instance.tags).toEqual(["v2"]);
    expect(b.instance.modifyIndex).toBeGreaterThan(a.instance.modifyIndex);
    await catalog.register(reg({ id: undefined, checks: [] }));
    expect(catalog.listServices()).toEqual([
      expect.objectContaining({
        name: "api",
        instances: 2,
        passing: 1,
        critical: 1,
        warning: 0,
        tags: ["v2"],
      }),
    ]);
    expect(await catalog.deregister("api-1")).toBe(true);
    expect(await catalog.deregister("api-1")).toBe(false);
    expect(catalog.getInstance("api-1")).toBeUndefined();
  });

  it("refuses an id already used by another service (409) and duplicate check ids (400)", async () => {
    const { catalog } = await setup();
    await catalog.register(reg());
    await expect(catalog.register(reg({ service: "web" }))).rejects.toMatchObject({
      code: "WEFT_ERR_CONFLICT",
    });
    await expect(
      catalog.register(reg({ id: "x", checks: [{ ttl: "1s" }, { ttl: "2s" }] })),
    ).rejects.toMatchObject({
      code: "WEFT_ERR_VALIDATION",
    });
  });

  it("the service index moves on each change and stays after the last instance leaves", async () => {
    const { catalog } = await setup();
    const i0 = catalog.serviceIndex("api");
    await catalog.register(reg());
    const i1 = catalog.serviceIndex("api");
    expect(i1).toBeGreaterThan(i0);
    await catalog.deregister("api-1");
    expect(catalog.serviceIndex("api")).toBeGreaterThan(i1);
    expect(catalog.listServices()).toEqual([]);
  });
});

describe("health (virtual time)", () => {
  it("passing -> critical after the TTL, back to passing on a heartbeat", async () => {
    const { catalog, advance } = await setup();
    await catalog.register(reg());
    await catalog.heartbeat("api-1", "ttl", { status: "passing", output: "ok" });
    expect(catalog.serviceInstances("api").map((i) => i.id)).toEqual(["api-1"]);
    await advance(9_900);
    expect(catalog.getInstance("api-1")?.status).toBe("passing");
    await advance(300);
    const inst = catalog.getInstance("api-1");
    expect(inst?.status).toBe("critical");
    expect(inst?.checks[0]?.output).toMatch(/TTL of 10s expired/);
    expect(catalog.serviceInstances("api")).toEqual([]);
    expect(catalog.serviceInstances("api", "any")).toHaveLength(1);
    await catalog.heartbeat("api-1", "ttl", { status: "passing", output: "back" });
    expect(catalog.getInstance("api-1")?.status).toBe("passing");
    expect(catalog.getInstance("api-1")?.checks[0]?.criticalSince).toBeUndefined();
  });

  it("heartbeats within the TTL keep it passing and cost no store write", async () => {
    const { catalog, store, advance } = await setup();
    await catalog.register(reg());
    await catalog.heartbeat("api-1", "ttl", { status: "passing", output: "" });
    const rev = await store.revision();
    for (let i = 0; i < 100; i++) {
      await advance(5_000);
      const s = await catalog.heartbeat("api-1", "ttl", { status: "passing", output: `beat ${i}` });
      expect(s.output).toBe(`beat ${i}`);
    }
    expect(await store.revision()).toBe(rev);
    expect(catalog.getInstance("api-1")?.status).toBe("passing");
    expect(catalog.getInstance("api-1")?.checks[0]?.output).toBe("beat 99");
  });

  it("reaps an instance critical for longer than deregisterCriticalAfter (server default)", async () => {
    const { catalog, advance } = await setup({ dca: 30_000 });
    await catalog.register(reg());
    await catalog.heartbeat("api-1", "ttl", { status: "passing", output: "" });
    await advance(10_100); // TTL expires
    expect(catalog.getInstance("api-1")?.status).toBe("critical");
    await advance(29_000);
    expect(catalog.getInstance("api-1")).toBeDefined();
    await advance(1_200);
    expect(catalog.getInstance("api-1")).toBeUndefined();
    expect(catalog.listServices()).toEqual([]);
    expect(catalog.scheduledChecks).toBe(0);
  });

  it("honours a per-check deregisterCriticalAfter; a never-reported instance is reaped too", async () => {
    const { catalog, advance } = await setup();
    await catalog.register(reg({ checks: [{ ttl: "10s", deregisterCriticalAfter: "5s" }] }));
    await advance(4_900);
    expect(catalog.getInstance("api-1")?.status).toBe("critical");
    await advance(300);
    expect(catalog.getInstance("api-1")).toBeUndefined();
  });

  it("a recovery within the grace period cancels the reaping", async () => {
    const { catalog, advance } = await setup({ dca: 20_000 });
    await catalog.register(reg());
    await advance(15_000);
    await catalog.heartbeat("api-1", "ttl", { status: "passing", output: "" });
    await advance(9_000);
    expect(catalog.getInstance("api-1")?.status).toBe("passing");
    await advance(30_000); // TTL expired at ~25s, reaped 20s later
    expect(catalog.getInstance("api-1")).toBeUndefined();
  });

  it("warning: not in default discovery, in ?status=warning, not reaped, expires to critical", async () => {
    const { catalog, advance } = await setup({ dca: 10_000 });
    await catalog.register(reg());
    await catalog.register(reg({ id: "api-2" }));
    await catalog.heartbeat("api-1", "ttl", { status: "warning", output: "slow" });
    await catalog.heartbeat("api-2", "ttl", { status: "passing", output: "" });
    expect(catalog.serviceInstances("api").map((i) => i.id)).toEqual(["api-2"]);
    expect(catalog.serviceInstances("api", "warning").map((i) => i.id)).toEqual(["api-1", "api-2"]);
    expect(catalog.serviceInstances("api", "critical")).toEqual([]);
    for (let i = 0; i < 10; i++) {
      await advance(8_000);
      await catalog.heartbeat("api-1", "ttl", { status: "warning", output: "slow" });
      await catalog.heartbeat("api-2", "ttl", { status: "passing", output: "" });
    }
    expect(catalog.getInstance("api-1")?.status).toBe("warning");
    await advance(10_100);
    expect(catalog.getInstance("api-1")?.status).toBe("critical");
  });

  it("the worst check wins", async () => {
    const { catalog } = await setup();
    await catalog.register(
      reg({
        checks: [
          { id: "a", ttl: "10s" },
          { id: "b", ttl: "10s" },
        ],
      }),
    );
    await catalog.heartbeat("api-1", "a", { status: "passing", output: "" });
    expect(catalog.getInstance("api-1")?.status).toBe("critical");
    await catalog.heartbeat("api-1", "b", { status: "warning", output: "" });
    expect(catalog.getInstance("api-1")?.status).toBe("warning");
    await expect(catalog.heartbeat("api-1", "c", { status: "passing", output: "" })).rejects.toMatchObject({
      code: "WEFT_ERR_NOT_FOUND",
    });
  });

  it("re-registration keeps the state of checks that keep their id (no flapping)", async () => {
    const { catalog } = await setup();
    await catalog.register(reg());
    await catalog.heartbeat("api-1", "ttl", { status: "passing", output: "" });
    const again = await catalog.register(reg({ tags: ["x"] }));
    expect(again.instance.status).toBe("passing");
  });

  it("instances without checks are passing and never expire", async () => {
    const { catalog, advance } = await setup();
    await catalog.register(reg({ checks: [] }));
    await advance(600_000);
    expect(catalog.getInstance("api-1")?.status).toBe("passing");
  });

  it("after a restart TTLs count from the restart", async () => {
    const store = new MemoryStore();
    cleanups.push(() => store.close());
    const clock = new VirtualClock();
    const first = await setup({ store, clock });
    await first.catalog.register(reg());
    await first.catalog.heartbeat("api-1", "ttl", { status: "passing", output: "" });
    await first.catalog.dispose();
    clock.advance(60_000); // down for a minute: longer than the TTL
    const second = await setup({ store, clock });
    expect(second.catalog.getInstance("api-1")?.status).toBe("passing");
    await second.advance(9_800);
    expect(second.catalog.getInstance("api-1")?.status).toBe("passing");
    await second.advance(400);
    expect(second.catalog.getInstance("api-1")?.status).toBe("critical");
  });

  it("sees instances written by another replica through the watch", async () => {
    const { catalog, store } = await setup();
    const other = await Catalog.open({ store, clock: new VirtualClock() });
    cleanups.push(() => other.dispose());
    await other.register(reg({ checks: [] }));
    await new Promise((r) => setTimeout(r, 20));
    expect(catalog.getInstance("api-1")?.service).toBe("api");
    expect(await store.get(instanceKey("api", "api-1"))).toBeDefined();
  });

  it("2,000 instances: one timer, expiry sweep in one pass", async () => {
    const { catalog, advance, clock } = await setup();
    for (let i = 0; i < 2_000; i++) {
      await catalog.register(reg({ id: `api-${i}`, checks: [{ ttl: "10s", status: "passing" }] }));
    }
    expect(clock.pending).toBe(1);
    expect(catalog.listServices()[0]).toMatchObject({ instances: 2000, passing: 2000 });
    const t0 = performance.now();
    await advance(10_200);
    const ms = performance.now() - t0;
    expect(catalog.listServices()[0]).toMatchObject({ instances: 2000, critical: 2000 });
    console.log(`health: 2000 TTL expiries processed in ${ms.toFixed(0)} ms`);
  });
});

describe("DeadlineWheel", () => {
  it("fires at or after the deadline, reschedules and cancels", () => {
    const clock = new VirtualClock(0);
    const fired: string[] = [];
    const w = new DeadlineWheel<string>(clock, (k) => fired.push(`${k}@${clock.now()}`), 100);
    w.schedule("a", 250);
    w.schedule("b", 250);
    w.schedule("c", 1000);
    w.schedule("b", 500);
    w.cancel("c");
    clock.advance(2_000);
    expect(fired).toEqual(["a@300", "b@500"]);
    expect(w.size).toBe(0);
    w.dispose();
    expect(clock.pending).toBe(0);
  });
});
