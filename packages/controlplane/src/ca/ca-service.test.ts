import { VirtualClock } from "@weft/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { CA_ACTIVE_KEY, CA_LEAVES_PREFIX, CA_RETIRING_KEY, CA_ROOTS_PREFIX } from "../state/keys.js";
import { MemoryStore } from "../store/memory.js";
import { BuiltinCaProvider } from "./builtin-provider.js";
import {
  cert,
  csrFor,
  expectCode,
  expectVerifies,
  ext,
  opensslVerify,
  pemBlocks,
} from "./ca-fixtures.suite.js";
import { CaService, type CaServiceOptions, type CaSettings } from "./ca-service.js";
import { checkCsr } from "./csr.js";
import type { CaProvider } from "./provider.js";
import * as x509 from "./x509.js";

const SECOND = 1_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const TD = "weft.local";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface SetupOptions {
  settings?: Partial<CaSettings>;
  store?: MemoryStore;
  clock?: VirtualClock;
  retireGraceMs?: number;
  sweepIntervalMs?: number;
  provider?: CaProvider;
}

async function setup(o: SetupOptions = {}) {
  const store = o.store ?? new MemoryStore();
  const clock = o.clock ?? new VirtualClock();
  const settings: CaSettings = {
    trustDomain: TD,
    leafTtlMs: DAY,
    maxLeafTtlMs: 72 * HOUR,
    rootTtlMs: 10 * 365 * DAY,
    ...o.settings,
  };
  const opts: CaServiceOptions = {
    store,
    clock,
    provider: o.provider ?? new BuiltinCaProvider(),
    settings: () => settings,
  };
  if (o.retireGraceMs !== undefined) opts.retireGraceMs = o.retireGraceMs;
  if (o.sweepIntervalMs !== undefined) opts.sweepIntervalMs = o.sweepIntervalMs;
  const ca = await CaService.open(opts);
  cleanups.push(async () => {
    await ca.dispose();
    if (!o.store) await store.close();
  });
  /** Signs a CSR for `service` (checked as the HTTP layer does). */
  const sign = async (service: string, opt: { ttlMs?: number; instanceId?: string } = {}) =>
    ca.sign(await checkCsr(await csrFor(service), settings.trustDomain), opt);
  return { store, clock, ca, settings, sign };
}

async function keys(store: MemoryStore, prefix: string): Promise<string[]> {
  return (await store.range(prefix)).kvs.map((kv) => kv.key);
}

const ms = (iso: string) => Date.parse(iso);

describe("CaService: the first root", () => {
  it("open creates exactly one active root; a second open on the same store reuses it", async () => {
    const store = new MemoryStore();
    cleanups.push(() => store.close());
    const { ca } = await setup({ store });
    const roots = await keys(store, CA_ROOTS_PREFIX);
    expect(roots).toHaveLength(1);
    const active = ca.roots().activeRootId;
    expect((await store.get(CA_ACTIVE_KEY))?.value).toBe(active);
    expect(roots[0]).toBe(`${CA_ROOTS_PREFIX}${active}`);
    expect(ca.roots().roots).toEqual([
      expect.objectContaining({ id: active, state: "active", leavesOutstanding: 0 }),
    ]);

    const { ca: again } = await setup({ store });
    expect(again.roots().activeRootId).toBe(active);
    expect(await keys(store, CA_ROOTS_PREFIX)).toHaveLength(1);
  });

  it("two concurrent opens on one empty store end with one active root", async () => {
    const store = new MemoryStore();
    cleanups.push(() => store.close());
    const [a, b] = await Promise.all([setup({ store }), setup({ store })]);
    expect(a.ca.roots().activeRootId).toBe(b.ca.roots().activeRootId);
    expect(await keys(store, CA_ROOTS_PREFIX)).toEqual([`${CA_ROOTS_PREFIX}${a.ca.roots().activeRootId}`]);
    expect(a.ca.bundlePem()).toEqual(b.ca.bundlePem());
  });

  it("describes the root: serial, fingerprint, validity from the root TTL", async () => {
    const { ca, clock } = await setup({ settings: { rootTtlMs: 365 * DAY } });
    const [r] = ca.roots().roots;
    const c = cert(r!.certificatePem);
    expect(BigInt(`0x${c.serialNumber}`)).toBe(BigInt(`0x${r!.serialNumber}`));
    expect(ms(r!.notAfter)).toBe(clock.now() + 365 * DAY);
    expect(c.notAfter.getTime()).toBe(clock.now() + 365 * DAY);
    const thumb = Buffer.from(await c.getThumbprint("SHA-256"))
      .toString("hex")
      .toUpperCase();
    expect(r!.fingerprintSha256.replaceAll(":", "")).toBe(thumb);
    expect(r!.certificatePem).not.toContain("PRIVATE KEY");
  });
});

describe("CaService: signing", () => {
  it("gives the mesh's leaf TTL by default and the bundle with the response; chain = leaf without rotation", async () => {
    const { ca, clock, sign } = await setup();
    const r = await sign("web");
    const c = cert(r.certificatePem);
    expect(r.spiffeId).toBe(`spiffe://${TD}/ns/default/svc/web`);
    expect(r.service).toBe("web");
    expect(r.trustDomain).toBe(TD);
    expect(r.rootId).toBe(ca.roots().activeRootId);
    expect(ms(r.notAfter)).toBe(clock.now() + DAY);
    expect(c.notAfter.getTime()).toBe(clock.now() + DAY);
    // Backdated for clock drift, never before the root.
    expect(c.notBefore.getTime()).toBeLessThanOrEqual(clock.now());
    expect(BigInt(`0x${c.serialNumber}`)).toBe(BigInt(`0x${r.serialNumber}`));
    expect(r.rootsPem).toEqual(ca.bundlePem());
    expect(r.rootsPem).toHaveLength(1);
    expect(r.chainPem).toBe(r.certificatePem);
    expect(pemBlocks(r.chainPem)).toHaveLength(1);
    await expectVerifies({ trusted: r.rootsPem, leaf: r.chainPem, purpose: "sslserver", at: clock.now() });
    expect(ca.roots().roots[0]!.leavesOutstanding).toBe(1);
  });

  it("honours a requested TTL up to the maximum and refuses one above it", async () => {
    const { clock, sign } = await setup();
    expect(ms((await sign("web", { ttlMs: HOUR })).notAfter)).toBe(clock.now() + HOUR);
    expect(ms((await sign("web", { ttlMs: 72 * HOUR })).notAfter)).toBe(clock.now() + 72 * HOUR);
    await expectCode(sign("web", { ttlMs: 72 * HOUR + 1 }), "WEFT_ERR_CERT_TTL_TOO_LONG");
  });

  it("follows the settings at each call (a Mesh change takes effect without a restart)", async () => {
    const { clock, settings, sign } = await setup();
    settings.leafTtlMs = 2 * HOUR;
    expect(ms((await sign("web")).notAfter)).toBe(clock.now() + 2 * HOUR);
    settings.maxLeafTtlMs = 3 * HOUR;
    await expectCode(sign("web", { ttlMs: 4 * HOUR }), "WEFT_ERR_CERT_TTL_TOO_LONG");
  });

  it("never issues a leaf that outlives the root", async () => {
    // No timed sweep, so the short-lived root is not rotated away under the test.
    const { ca, clock, sign } = await setup({
      settings: { rootTtlMs: 100 * HOUR },
      sweepIntervalMs: 1_000 * DAY,
    });
    clock.advance(50 * HOUR);
    const root = ca.roots().roots[0]!;
    const r = await sign("web", { ttlMs: 72 * HOUR });
    expect(r.rootId).toBe(root.id);
    expect(ms(r.notAfter)).toBe(ms(root.notAfter));
    expect(cert(r.certificatePem).notAfter.getTime()).toBeLessThanOrEqual(
      cert(root.certificatePem).notAfter.getTime(),
    );
    await expectVerifies({ trusted: r.rootsPem, leaf: r.chainPem, at: clock.now() });
  });

  it("refuses a CSR of another trust domain even if it got past the CSR check", async () => {
    const { ca } = await setup();
    const csr = await checkCsr(await csrFor("web", "corp.example"), "corp.example");
    await expectCode(ca.sign(csr), "WEFT_ERR_CSR_INVALID");
  });

  it("certificateOf returns the newest leaf signed for an instance", async () => {
    const { ca, clock, sign } = await setup();
    expect(ca.certificateOf("web", "web-1")).toBeUndefined();
    const first = await sign("web", { instanceId: "web-1" });
    expect(ca.certificateOf("web", "web-1")).toEqual({
      serialNumber: first.serialNumber,
      rootId: first.rootId,
      notAfter: first.notAfter,
    });
    clock.advance(HOUR);
    const second = await sign("web", { instanceId: "web-1" });
    expect(ca.certificateOf("web", "web-1")?.serialNumber).toBe(second.serialNumber);
    // One record per instance: the renewal replaced the first.
    expect(ca.roots().roots[0]!.leavesOutstanding).toBe(1);
    // Keyed by service too: another service's instance of that id has none.
    expect(ca.certificateOf("api", "web-1")).toBeUndefined();
  });
});

describe("CaService: rotation", () => {
  it("makes a new active root, keeps the old one retiring, and chains new leaves through a cross-signed root", async () => {
    const { ca, clock, sign } = await setup();
    const before = ca.roots();
    const oldId = before.activeRootId;
    const oldPem = before.roots[0]!.certificatePem;
    const rotated = await ca.rotate();
    expect(rotated.previousRootId).toBe(oldId);
    expect(rotated.activeRootId).not.toBe(oldId);

    const after = ca.roots();
    expect(after.activeRootId).toBe(rotated.activeRootId);
    expect(after.roots.map((r) => [r.id, r.state])).toEqual([
      [rotated.activeRootId, "active"],
      [oldId, "retiring"],
    ]);
    expect(after.index).toBeGreaterThan(before.index);
    await ca.sweep();
    expect(ca.roots().roots).toHaveLength(2);

    const r = await sign("web");
    expect(r.rootId).toBe(rotated.activeRootId);
    expect(r.rootsPem).toEqual(after.roots.map((x) => x.certificatePem));
    const chain = pemBlocks(r.chainPem);
    expect(chain).toHaveLength(2);
    expect(chain[0]).toBe(r.certificatePem);
    const cross = cert(chain[1]!);
    const newRoot = cert(after.roots[0]!.certificatePem);
    expect(cross.subject).toBe(newRoot.subject);
    expect(cross.issuer).toBe(cert(oldPem).subject);
    expect(ext(cross, x509.BasicConstraintsExtension).ca).toBe(true);

    // A peer that has only the old root accepts the new leaf through the chain.
    const [leaf, ...intermediates] = chain;
    await expectVerifies({ trusted: [oldPem], untrusted: intermediates, leaf: leaf!, at: clock.now() });
    await expectVerifies({
      trusted: [oldPem],
      untrusted: intermediates,
      leaf: leaf!,
      purpose: "sslclient",
      at: clock.now(),
    });
    // Without the chain it would not.
    expect((await opensslVerify({ trusted: [oldPem], leaf: leaf!, at: clock.now() })).ok).toBe(false);

    await expectCode(ca.rotate(), "WEFT_ERR_CA_ROTATION_PENDING");
  });
});

describe("CaService: signing during a rotation", () => {
  it("a rotation landing while a leaf is signed makes the sign retry with the new root", async () => {
    const builtin = new BuiltinCaProvider();
    let entered!: () => void;
    const signing = new Promise<void>((r) => {
      entered = r;
    });
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let calls = 0;
    const gated: CaProvider = {
      name: builtin.name,
      generateRoot: (req) => builtin.generateRoot(req),
      crossSign: (i, s, req) => builtin.crossSign(i, s, req),
      async signLeaf(root, req) {
        calls++;
        if (calls === 1) {
          entered();
          await gate;
        }
        return builtin.signLeaf(root, req);
      },
    };
    const { ca, clock, store, sign } = await setup({ provider: gated });
    const oldId = ca.roots().activeRootId;
    const pending = sign("web", { instanceId: "web-1" });
    await signing;
    const rotated = await ca.rotate();
    release();
    const r = await pending;
    expect(calls).toBe(2);
    expect(r.rootId).toBe(rotated.activeRootId);
    expect(pemBlocks(r.chainPem)).toHaveLength(2);
    expect(await keys(store, `${CA_LEAVES_PREFIX}${oldId}/`)).toEqual([]);
    expect(await keys(store, `${CA_LEAVES_PREFIX}${rotated.activeRootId}/`)).toHaveLength(1);
    const [leaf, ...rest] = pemBlocks(r.chainPem);
    const oldPem = ca.roots().roots.find((x) => x.id === oldId)!.certificatePem;
    await expectVerifies({ trusted: [oldPem], untrusted: rest, leaf: leaf!, at: clock.now() });
  });

  it("of two concurrent rotations one wins and the other is refused", async () => {
    const { ca, store } = await setup();
    const results = await Promise.allSettled([ca.rotate(), ca.rotate()]);
    const ok = results.filter((x) => x.status === "fulfilled");
    const failed = results.filter((x) => x.status === "rejected");
    expect(ok).toHaveLength(1);
    expect(failed).toHaveLength(1);
    await expectCode(Promise.reject((failed[0] as PromiseRejectedResult).reason), "WEFT_ERR_CONFLICT");
    expect(await keys(store, CA_ROOTS_PREFIX)).toHaveLength(2);
    expect(ca.roots().roots.map((r) => r.state)).toEqual(["active", "retiring"]);
  });
});

describe("CaService: retirement of the old root", () => {
  it("keeps the old root while a leaf it signed is valid, then drops it", async () => {
    const { ca, clock, store, sign } = await setup();
    const oldLeaf = await sign("web", { ttlMs: DAY });
    const oldId = oldLeaf.rootId;
    const rotated = await ca.rotate();
    expect((await store.get(CA_RETIRING_KEY))?.value).toContain(oldId);

    await ca.sweep();
    expect(ca.roots().roots.map((r) => r.id)).toEqual([rotated.activeRootId, oldId]);
    expect(ca.roots().roots[1]!.leavesOutstanding).toBe(1);

    clock.advance(ms(oldLeaf.notAfter) - clock.now() - 1);
    await ca.sweep();
    expect(ca.bundlePem()).toHaveLength(2);
    const during = await sign("api");
    expect(pemBlocks(during.chainPem)).toHaveLength(2);
    expect(during.rootsPem).toHaveLength(2);

    // Expired, but within the grace (default 5 s) the root stays: a handshake may have just started.
    clock.advance(SECOND);
    await ca.sweep();
    expect(ca.bundlePem()).toHaveLength(2);
    clock.advance(5 * SECOND);
    await ca.sweep();
    expect(ca.roots().roots.map((r) => [r.id, r.state])).toEqual([[rotated.activeRootId, "active"]]);
    expect(await store.get(CA_RETIRING_KEY)).toBeUndefined();
    expect(await keys(store, `${CA_ROOTS_PREFIX}${oldId}`)).toEqual([]);
    expect(await keys(store, `${CA_LEAVES_PREFIX}${oldId}/`)).toEqual([]);

    const after = await sign("web");
    expect(after.chainPem).toBe(after.certificatePem);
    expect(after.rootsPem).toEqual(ca.bundlePem());
    expect(after.rootsPem).toHaveLength(1);
    // The next rotation is allowed again.
    await ca.rotate();
  });

  it("drops the old root once its leaves were replaced from the new root, after the grace", async () => {
    const grace = 5 * SECOND;
    const { ca, clock, store, sign } = await setup({ retireGraceMs: grace });
    const oldLeaf = await sign("web", { instanceId: "web-1", ttlMs: DAY });
    const oldId = oldLeaf.rootId;
    const rotated = await ca.rotate();
    clock.advance(10 * SECOND);
    await ca.sweep();
    expect(ca.bundlePem()).toHaveLength(2);

    const renewed = await sign("web", { instanceId: "web-1" });
    expect(renewed.rootId).toBe(rotated.activeRootId);
    expect(await keys(store, `${CA_LEAVES_PREFIX}${oldId}/`)).toEqual([]);
    expect(ca.certificateOf("web", "web-1")).toMatchObject({
      serialNumber: renewed.serialNumber,
      rootId: rotated.activeRootId,
    });
    expect(ca.roots().roots.find((r) => r.id === oldId)?.leavesOutstanding).toBe(0);

    // Within the grace the old root stays (handshakes with the old leaf may be under way).
    await ca.sweep();
    clock.advance(grace - 1);
    await ca.sweep();
    expect(ca.bundlePem()).toHaveLength(2);

    clock.advance(1);
    await ca.sweep();
    expect(ms(oldLeaf.notAfter)).toBeGreaterThan(clock.now());
    expect(ca.roots().roots.map((r) => r.id)).toEqual([rotated.activeRootId]);
    expect(await store.get(CA_RETIRING_KEY)).toBeUndefined();
    const next = await sign("web", { instanceId: "web-1" });
    expect(next.chainPem).toBe(next.certificatePem);
  });

  it("a sweep removes the old root when nothing was ever signed by it, after the grace", async () => {
    const { ca, clock } = await setup({ retireGraceMs: 5 * SECOND });
    await ca.rotate();
    await ca.sweep();
    expect(ca.bundlePem()).toHaveLength(2);
    clock.advance(5 * SECOND);
    await ca.sweep();
    expect(ca.bundlePem()).toHaveLength(1);
  });
});

describe("CaService: sweep", () => {
  it("rotates a root whose remaining life is under twice the maximum leaf TTL", async () => {
    const { ca, clock } = await setup({
      settings: { rootTtlMs: 10 * DAY, maxLeafTtlMs: 72 * HOUR, leafTtlMs: DAY },
    });
    const first = ca.roots().activeRootId;
    // 10 d - 6 d: rotation is due 4 days in.
    clock.advance(4 * DAY - HOUR);
    await ca.sweep();
    expect(ca.roots().activeRootId).toBe(first);
    clock.advance(2 * HOUR);
    await ca.sweep();
    const after = ca.roots();
    expect(after.activeRootId).not.toBe(first);
    expect(after.roots.map((r) => [r.id, r.state])).toEqual([
      [after.activeRootId, "active"],
      [first, "retiring"],
    ]);
    expect(ms(after.roots[0]!.notAfter)).toBe(clock.now() + 10 * DAY);
  });

  it("the sweep timer does it too, on the virtual clock", async () => {
    const { ca, clock } = await setup({
      settings: { rootTtlMs: 10 * DAY, maxLeafTtlMs: 72 * HOUR, leafTtlMs: DAY },
      sweepIntervalMs: HOUR,
    });
    const first = ca.roots().activeRootId;
    for (let i = 0; i < 4 * 24 + 2 && ca.roots().activeRootId === first; i++) {
      clock.advance(HOUR);
      await new Promise((r) => setImmediate(r));
      await ca.sweep();
    }
    expect(ca.roots().activeRootId).not.toBe(first);
  });

  it("deletes expired leaf records", async () => {
    const { ca, clock, store, sign } = await setup();
    for (let i = 0; i < 3; i++) await sign("web", { ttlMs: HOUR });
    await sign("web", { instanceId: "web-1", ttlMs: HOUR });
    await sign("api", { ttlMs: DAY });
    expect(await keys(store, CA_LEAVES_PREFIX)).toHaveLength(5);
    expect(ca.roots().roots[0]!.leavesOutstanding).toBe(5);

    clock.advance(HOUR + 1);
    expect(ca.roots().roots[0]!.leavesOutstanding).toBe(1);
    // Records outlive their leaves by the retire grace (default 5 s).
    await ca.sweep();
    expect(await keys(store, CA_LEAVES_PREFIX)).toHaveLength(5);
    clock.advance(5 * SECOND);
    await ca.sweep();
    const left = await keys(store, CA_LEAVES_PREFIX);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/\/api\/serial-[0-9a-f]+$/);
    expect(ca.certificateOf("web", "web-1")).toBeUndefined();

    clock.advance(DAY);
    await ca.sweep();
    expect(await keys(store, CA_LEAVES_PREFIX)).toEqual([]);
    expect(ca.roots().roots[0]!.leavesOutstanding).toBe(0);
  });

  it("dispose leaves no timer behind", async () => {
    const clock = new VirtualClock();
    const store = new MemoryStore();
    const ca = await CaService.open({
      store,
      clock,
      provider: new BuiltinCaProvider(),
      settings: () => ({ trustDomain: TD, leafTtlMs: DAY, maxLeafTtlMs: 72 * HOUR, rootTtlMs: 3650 * DAY }),
    });
    expect(clock.pending).toBeGreaterThan(0);
    await ca.dispose();
    expect(clock.pending).toBe(0);
    await store.close();
  });
});
