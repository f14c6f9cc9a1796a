// Tests only: the sidecar itself reads and writes DER by hand (leaf-extensions.ts, csr.ts).
import "reflect-metadata";
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import * as x509 from "@peculiar/x509";
import type {
  BlockingQuery,
  CaRoot,
  CaRootsResponse,
  SignRequest,
  SignResponse,
  WeftClient,
} from "@weft/api";
import { isWeftError, parseDuration, weftError } from "@weft/core";
import { createTestRoot, issueTestLeaf, type TestRoot, VirtualClock } from "@weft/testkit";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { type IdentityLogger, WorkloadIdentity, type WorkloadIdentityOptions } from "./workload-identity.js";

const TD = "weft.local";
const SERVICE = "web";
const SPIFFE_ID = `spiffe://${TD}/ns/default/svc/${SERVICE}`;
const SECOND = 1_000;
const MINUTE = 60_000;
const HOUR = 3_600_000;

let rootA: TestRoot;
let rootB: TestRoot;

beforeAll(async () => {
  rootA = await createTestRoot({ commonName: "weft root A" });
  rootB = await createTestRoot({ commonName: "weft root B" });
});

// --- async plumbing -------------------------------------------------------

/** One turn of the event loop: lets promise chains and finished crypto jobs run. */
const tick = () => new Promise<void>((r) => setImmediate(r));

async function flush(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await tick();
}

/** Turns the event loop until `cond` holds (WebCrypto work runs on the thread pool, so a fixed flush is not enough). */
async function until(cond: () => boolean, what: string, realMs = 5_000): Promise<void> {
  const deadline = Date.now() + realMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await tick();
  }
}

/** Waits until no renewal is in flight: a finished attempt always plans the next one in the future. */
function settled(id: WorkloadIdentity, clock: VirtualClock): Promise<void> {
  return until(() => id.status().renewAt > clock.now(), "the renewal to finish");
}

// --- the fake control plane ----------------------------------------------

interface SignCall {
  req: SignRequest;
  /** URI SANs found in the CSR. */
  uris: string[];
  /** SPKI of the CSR's public key (hex). */
  spki: string;
  /** Virtual time of the call. */
  at: number;
}

interface Poll {
  q: BlockingQuery;
  resolve: (r: CaRootsResponse) => void;
  reject: (e: unknown) => void;
  settled: boolean;
  outcome?: "answered" | "aborted";
  reason?: unknown;
}

/** Pkcs10CertificateRequest.getExtension takes only an OID string, so filter by class. */
function sanExtensions(csr: x509.Pkcs10CertificateRequest): x509.SubjectAlternativeNameExtension[] {
  return csr.extensions.filter((e) => e instanceof x509.SubjectAlternativeNameExtension);
}

interface FakeRoot {
  id: string;
  root: TestRoot;
  /** Served instead of the root's PEM (a corrupt bundle). */
  pem?: string;
}

function caRoot(r: FakeRoot, state: CaRoot["state"]): CaRoot {
  const cert = new X509Certificate(r.root.certPem);
  return {
    id: r.id,
    certificatePem: r.pem ?? r.root.certPem,
    serialNumber: cert.serialNumber,
    fingerprintSha256: cert.fingerprint256,
    notBefore: new Date(cert.validFrom).toISOString(),
    notAfter: new Date(cert.validTo).toISOString(),
    state,
    leavesOutstanding: 0,
  };
}

/** Implements only caRoots (blocking) and caSign of WeftClient, on the virtual clock. */
class FakeCa {
  index = 7;
  /** The mesh's trust domain as the fake CA reports it. */
  trustDomain = TD;
  roots: FakeRoot[];
  activeRootId: string;
  /** When set, caRoots rejects with it. */
  rootsFailWith: Error | undefined;
  /** When set, caSign rejects with it (after recording the call). */
  failWith: Error | undefined;
  /** When set, caSign waits for it before answering. */
  gate: Promise<void> | undefined;
  readonly signs: SignCall[] = [];
  readonly polls: Poll[] = [];

  constructor(
    private readonly clock: VirtualClock,
    roots: FakeRoot[],
    activeRootId: string,
  ) {
    this.roots = roots;
    this.activeRootId = activeRootId;
  }

  get client(): WeftClient {
    return this as unknown as WeftClient;
  }

  /** Long polls currently held open. */
  get pending(): Poll[] {
    return this.polls.filter((p) => !p.settled);
  }

  snapshot(): CaRootsResponse {
    return {
      trustDomain: this.trustDomain,
      activeRootId: this.activeRootId,
      roots: this.roots.map((r) => caRoot(r, r.id === this.activeRootId ? "active" : "retiring")),
      index: this.index,
    };
  }

  /** Changes the bundle and answers every held long poll. */
  setRoots(roots: FakeRoot[], activeRootId: string): void {
    this.roots = roots;
    this.activeRootId = activeRootId;
    this.index++;
    const snap = this.snapshot();
    for (const p of this.pending) {
      p.settled = true;
      p.outcome = "answered";
      p.resolve(snap);
    }
  }

  /** Fails every held long poll (the connection dropped). */
  failPending(err: Error): void {
    for (const p of this.pending) {
      p.settled = true;
      p.outcome = "aborted";
      p.reject(err);
    }
  }

  caRoots(q: BlockingQuery = {}): Promise<CaRootsResponse> {
    const poll: Poll = { q, resolve: () => {}, reject: () => {}, settled: false };
    this.polls.push(poll);
    if (this.rootsFailWith) {
      poll.settled = true;
      return Promise.reject(this.rootsFailWith);
    }
    if (q.index === undefined || q.index < this.index) {
      poll.settled = true;
      poll.outcome = "answered";
      return Promise.resolve(this.snapshot());
    }
    return new Promise<CaRootsResponse>((resolve, reject) => {
      const signal = q.signal;
      const onAbort = () => {
        if (poll.settled) return;
        poll.settled = true;
        poll.outcome = "aborted";
        poll.reason = signal?.reason;
        reject(signal?.reason);
      };
      poll.resolve = (r) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(r);
      };
      poll.reject = (e) => {
        signal?.removeEventListener("abort", onAbort);
        reject(e);
      };
      if (signal?.aborted) onAbort();
      else signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  async caSign(req: SignRequest): Promise<SignResponse> {
    const csr = new x509.Pkcs10CertificateRequest(req.csr);
    const uris = sanExtensions(csr)
      .flatMap((e) => e.names.items)
      .filter((n) => n.type === "url")
      .map((n) => n.value);
    const spki = Buffer.from(csr.publicKey.rawData).toString("hex");
    this.signs.push({ req, uris, spki, at: this.clock.now() });
    // Signed with the root active when the request arrives; the gate delays only the answer.
    const active = this.roots.find((r) => r.id === this.activeRootId);
    const rootsPem = this.roots.map((r) => r.root.certPem);
    const now = this.clock.now();
    if (this.gate) await this.gate;
    if (this.failWith) throw this.failWith;
    const ttl = parseDuration(req.ttl ?? "24h");
    if (!ttl.ok) throw new Error(ttl.error);
    if (!active) throw new Error("fake CA: no active root");
    const notBefore = new Date(now - MINUTE);
    const notAfter = new Date(now + ttl.ms);
    const leaf = await issueTestLeaf(active.root, { uris: [uris[0] ?? ""], notBefore, notAfter });
    return {
      spiffeId: uris[0] ?? "",
      service: SERVICE,
      serialNumber: new X509Certificate(leaf.certPem).serialNumber,
      certificatePem: leaf.certPem,
      chainPem: leaf.chainPem,
      rootId: active.id,
      notBefore: notBefore.toISOString(),
      notAfter: notAfter.toISOString(),
      rootsPem,
      trustDomain: this.trustDomain,
    };
  }
}

// --- fixtures --------------------------------------------------------------

const started: WorkloadIdentity[] = [];

afterEach(() => {
  for (const id of started.splice(0)) id.dispose();
});

function logger(): IdentityLogger & { warns: string[] } {
  const warns: string[] = [];
  return { warns, info: () => {}, warn: (_obj, msg) => void warns.push(msg) };
}

async function setup(
  opts: Partial<WorkloadIdentityOptions> = {},
): Promise<{ clock: VirtualClock; ca: FakeCa; id: WorkloadIdentity; changes: () => number; t0: number }> {
  const clock = new VirtualClock();
  const ca = new FakeCa(clock, [{ id: "root-a", root: rootA }], "root-a");
  const id = await WorkloadIdentity.start({
    client: ca.client,
    service: SERVICE,
    clock,
    random: () => 0.5,
    ...opts,
  });
  started.push(id);
  let n = 0;
  id.onChange(() => void n++);
  // The watch loop's first long poll, holding at the current index.
  await until(() => ca.pending.length === 1, "the roots long poll");
  return { clock, ca, id, changes: () => n, t0: clock.now() };
}

/** Advances to one millisecond before the planned renewal; the timer must not have fired. */
function advanceToJustBefore(clock: VirtualClock, at: number): void {
  clock.advance(Math.ceil(at - clock.now()) - 1);
}

function spkiOfKey(keyPem: string): string {
  return createPublicKey(createPrivateKey(keyPem)).export({ type: "spki", format: "der" }).toString("hex");
}

// --- tests ----------------------------------------------------------------------

describe("WorkloadIdentity", () => {
  it("start() sends a CSR with the service's SPIFFE ID and publishes key, chain and bundle", async () => {
    const { ca, id } = await setup({ instanceId: "web-1", ttl: "1h" });

    expect(ca.signs).toHaveLength(1);
    const call = ca.signs[0]!;
    expect(call.uris).toEqual([SPIFFE_ID]);
    const csr = new x509.Pkcs10CertificateRequest(call.req.csr);
    const sans = sanExtensions(csr);
    expect(sans).toHaveLength(1);
    expect(sans[0]!.names.items).toHaveLength(1);
    expect(await csr.verify()).toBe(true);
    expect(call.req.instanceId).toBe("web-1");
    expect(call.req.ttl).toBe("1h");

    const m = id.current();
    expect(m.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END PRIVATE KEY-----\n$/);
    const key = createPrivateKey(m.keyPem);
    expect(key.asymmetricKeyType).toBe("ec");
    expect(key.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    // The published key is the one the CSR was made for.
    expect(spkiOfKey(m.keyPem)).toBe(call.spki);
    expect(m.chainPem).toContain("-----BEGIN CERTIFICATE-----");
    expect(new X509Certificate(m.chainPem).checkIssued(new X509Certificate(rootA.certPem))).toBe(true);
    expect(m.bundle.trustDomain).toBe(TD);
    expect(m.bundle.rootsPem).toHaveLength(1);
    expect(m.bundle.roots[0]!.fingerprint256).toBe(new X509Certificate(rootA.certPem).fingerprint256);

    const st = id.status();
    expect(st.spiffeId).toBe(SPIFFE_ID);
    expect(st.serialNumber).toBe(new X509Certificate(m.chainPem).serialNumber);
    expect(st.rootId).toBe("root-a");
    expect(st.notAfter).toBe(ca.signs[0]!.at + HOUR);
    expect(st.renewals).toBe(0);
    expect(st.failedRenewals).toBe(0);
    expect(st.lastError).toBeUndefined();

    // The watch asks for changes after the index it started from.
    expect(ca.pending[0]!.q.index).toBe(ca.index);
    expect(ca.pending[0]!.q.signal).toBeInstanceOf(AbortSignal);
  });

  it("without ttl or instanceId, neither is sent", async () => {
    const { ca } = await setup();
    expect(ca.signs[0]!.req).toEqual({ csr: expect.any(String) });
  });

  it("renews at 45 % of the lifetime with random()=0, each time with a new key", async () => {
    const { clock, ca, id, changes, t0 } = await setup({ ttl: "1h", random: () => 0 });
    const keys = [ca.signs[0]!.spki];
    let start = t0;
    for (let round = 1; round <= 2; round++) {
      const at = id.status().renewAt;
      expect(at - start).toBeCloseTo(0.45 * HOUR, 3);
      const before = id.current();

      advanceToJustBefore(clock, at);
      await flush();
      expect(ca.signs).toHaveLength(round);
      expect(changes()).toBe(round - 1);

      clock.advance(1);
      await until(() => id.status().renewals === round, `renewal ${round}`);
      expect(ca.signs).toHaveLength(round + 1);
      const call = ca.signs[round]!;
      expect(call.uris).toEqual([SPIFFE_ID]);
      expect(call.req.ttl).toBe("1h");
      keys.push(call.spki);

      const after = id.current();
      expect(after.keyPem).not.toBe(before.keyPem);
      expect(after.chainPem).not.toBe(before.chainPem);
      expect(spkiOfKey(after.keyPem)).toBe(call.spki);
      expect(changes()).toBe(round);
      expect(id.status().notAfter).toBe(clock.now() + HOUR);
      start = clock.now();
    }
    expect(new Set(keys).size).toBe(3);
    expect(id.status().failedRenewals).toBe(0);
  });

  it("renews at 55 % of the lifetime with random()≈1", async () => {
    const { clock, ca, id, changes, t0 } = await setup({ ttl: "1h", random: () => 0.999 });
    const at = id.status().renewAt;
    expect(at - t0).toBeGreaterThan(0.549 * HOUR);
    expect(at - t0).toBeLessThanOrEqual(0.55 * HOUR);

    advanceToJustBefore(clock, at);
    await flush();
    expect(ca.signs).toHaveLength(1);

    clock.advance(1);
    await until(() => id.status().renewals === 1, "the renewal");
    expect(ca.signs).toHaveLength(2);
    expect(ca.signs[1]!.spki).not.toBe(ca.signs[0]!.spki);
    expect(changes()).toBe(1);
  });

  it("fails static: keeps the current material and retries with backoff until the CA answers again", async () => {
    const log = logger();
    const { clock, ca, id, changes } = await setup({ ttl: "1h", random: () => 0, logger: log });
    const original = id.current();
    ca.failWith = weftError("WEFT_ERR_UNREACHABLE", {
      addr: "http://127.0.0.1:8500",
      detail: "connect ECONNREFUSED",
    });

    // The planned renewal fails.
    clock.advance(id.status().renewAt - clock.now());
    await settled(id, clock);
    expect(ca.signs).toHaveLength(2);
    expect(id.status().failedRenewals).toBe(1);
    expect(id.status().lastError).toContain("cannot reach the control plane");
    expect(id.current()).toBe(original);
    expect(changes()).toBe(0);
    expect(log.warns.at(-1)).toContain("keeping the current certificate");

    // No tight loop: the retry is planned in the future, within the first backoff step (250 ms).
    clock.advance(0);
    await flush();
    expect(ca.signs).toHaveLength(2);
    expect(id.status().renewAt - clock.now()).toBeGreaterThan(0);
    expect(id.status().renewAt - clock.now()).toBeLessThanOrEqual(250);

    // One virtual minute of retries, moving the clock to each planned attempt.
    const end = clock.now() + MINUTE;
    const callsBefore = ca.signs.length;
    for (;;) {
      const at = id.status().renewAt;
      if (at > end) break;
      clock.advance(at - clock.now());
      await settled(id, clock);
      expect(id.current()).toBe(original);
    }
    clock.advance(end - clock.now());
    const retries = ca.signs.length - callsBefore;
    // Full-jitter backoff from 250 ms doubling to 30 s: the first 7 ceilings add up to 31.75 s, so at
    // least 7 attempts fit in a minute; more than 25 would mean the delays do not grow.
    expect(retries).toBeGreaterThanOrEqual(7);
    expect(retries).toBeLessThanOrEqual(25);
    expect(id.status().failedRenewals).toBe(1 + retries);
    expect(id.status().renewals).toBe(0);
    // Spacing grows: the last gaps are not all tiny.
    const gaps = ca.signs.slice(1).map((c, i) => c.at - ca.signs[i]!.at);
    expect(Math.max(...gaps.slice(1))).toBeGreaterThan(250);
    // The certificate is still valid: fail static means using it until the CA is back.
    expect(id.status().notAfter).toBeGreaterThan(clock.now());

    // The CA is back: the next attempt succeeds and the failures stop.
    ca.failWith = undefined;
    clock.advance(id.status().renewAt - clock.now());
    await settled(id, clock);
    const st = id.status();
    expect(st.renewals).toBe(1);
    const failed = st.failedRenewals;
    const renewed = id.current();
    expect(renewed).not.toBe(original);
    expect(renewed.keyPem).not.toBe(original.keyPem);
    expect(renewed.chainPem).not.toBe(original.chainPem);
    expect(changes()).toBe(1);
    expect(st.notAfter).toBe(clock.now() + HOUR);
    expect(st.renewAt - clock.now()).toBeCloseTo(0.45 * HOUR, 3);

    const calls = ca.signs.length;
    clock.advance(MINUTE);
    await flush();
    expect(ca.signs).toHaveLength(calls);
    expect(id.status().failedRenewals).toBe(failed);

    // The backoff was reset by the success: the next failure retries within the first step again.
    ca.failWith = weftError("WEFT_ERR_UNREACHABLE", { addr: "x", detail: "down again" });
    clock.advance(id.status().renewAt - clock.now());
    await settled(id, clock);
    expect(id.status().failedRenewals).toBe(failed + 1);
    expect(id.status().renewAt - clock.now()).toBeLessThanOrEqual(250);
  });

  it("follows the bundle: a new root is trusted at once, a new active root triggers an early renewal", async () => {
    const { clock, ca, id, changes, t0 } = await setup({ ttl: "24h", random: () => 0.5 });
    const first = id.current();
    const halfLife = id.status().renewAt;
    expect(halfLife - t0).toBeCloseTo(0.5 * 24 * HOUR, 3);

    // A second root joins the bundle; root A stays active.
    ca.setRoots(
      [
        { id: "root-a", root: rootA },
        { id: "root-b", root: rootB },
      ],
      "root-a",
    );
    await until(() => changes() === 1, "the bundle update");
    const widened = id.current();
    expect(widened.bundle.id).not.toBe(first.bundle.id);
    expect(widened.bundle.roots).toHaveLength(2);
    expect(widened.keyPem).toBe(first.keyPem);
    expect(widened.chainPem).toBe(first.chainPem);
    // No early renewal: the active root did not change.
    expect(id.status().renewAt).toBe(halfLife);
    await until(() => ca.pending.length === 1, "the next long poll");
    expect(ca.pending[0]!.q.index).toBe(ca.index);
    clock.advance(MINUTE);
    await flush();
    expect(ca.signs).toHaveLength(1);
    expect(id.status().renewals).toBe(0);

    // Root B becomes active: renew soon (jittered over at most 5 s).
    const rotatedAt = clock.now();
    ca.setRoots(
      [
        { id: "root-a", root: rootA },
        { id: "root-b", root: rootB },
      ],
      "root-b",
    );
    await until(() => ca.pending.length === 1 && ca.pending[0]!.q.index === ca.index, "the next long poll");
    expect(changes()).toBe(1); // same roots, same bundle: nothing to publish yet
    expect(id.status().renewAt).toBeLessThanOrEqual(rotatedAt + 5 * SECOND);

    clock.advance(5 * SECOND);
    await until(() => id.status().renewals === 1, "the early renewal");
    expect(ca.signs).toHaveLength(2);
    expect(ca.signs[1]!.at - rotatedAt).toBeLessThanOrEqual(5 * SECOND);
    expect(ca.signs[1]!.at).toBeLessThan(halfLife);
    expect(ca.signs[1]!.spki).not.toBe(ca.signs[0]!.spki);
    const st = id.status();
    expect(st.rootId).toBe("root-b");
    expect(changes()).toBe(2);
    const renewed = id.current();
    expect(renewed.keyPem).not.toBe(first.keyPem);
    expect(new X509Certificate(renewed.chainPem).checkIssued(new X509Certificate(rootB.certPem))).toBe(true);
    expect(renewed.bundle.roots).toHaveLength(2);
    // The renewed certificate is planned at its own half-life again.
    expect(st.renewAt - clock.now()).toBeCloseTo(0.5 * 24 * HOUR, 3);
  });

  it("a new trust domain in the bundle leads to an early renewal for the new SPIFFE ID", async () => {
    const { clock, ca, id } = await setup({ ttl: "24h", random: () => 0.5 });
    expect(ca.signs[0]!.uris).toEqual(["spiffe://weft.local/ns/default/svc/web"]);
    const changedAt = clock.now();
    ca.trustDomain = "corp.example";
    ca.setRoots([{ id: "root-a", root: rootA }], "root-a");
    await until(() => ca.pending.length === 1 && ca.pending[0]!.q.index === ca.index, "the next long poll");
    expect(id.status().renewAt).toBeLessThanOrEqual(changedAt + 5 * SECOND);
    clock.advance(5 * SECOND);
    await until(() => id.status().renewals === 1, "the early renewal");
    expect(ca.signs[1]!.uris).toEqual(["spiffe://corp.example/ns/default/svc/web"]);
    expect(id.current().bundle.trustDomain).toBe("corp.example");
  });

  it("start() rejects when the first certificate cannot be obtained", async () => {
    const clock = new VirtualClock();
    const ca = new FakeCa(clock, [{ id: "root-a", root: rootA }], "root-a");
    ca.failWith = weftError("WEFT_ERR_UNREACHABLE", { addr: "http://127.0.0.1:8500", detail: "refused" });
    const err = await WorkloadIdentity.start({
      client: ca.client,
      service: SERVICE,
      clock,
      random: () => 0,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isWeftError(err, "WEFT_ERR_UNREACHABLE")).toBe(true);
    expect(ca.signs).toHaveLength(1);
    // Nothing left running: no timer, no long poll.
    await flush();
    expect(clock.pending).toBe(0);
    expect(ca.polls).toHaveLength(1);
    expect(ca.pending).toHaveLength(0);
  });

  it("dispose() stops renewals and aborts the roots long poll", async () => {
    const { clock, ca, id, changes } = await setup({ ttl: "1h" });
    const poll = ca.pending[0]!;
    const signal = poll.q.signal!;
    const polls = ca.polls.length;

    id.dispose();
    await flush();
    expect(signal.aborted).toBe(true);
    expect(poll.outcome).toBe("aborted");
    expect(ca.pending).toHaveLength(0);

    clock.advance(48 * HOUR);
    await flush();
    expect(ca.signs).toHaveLength(1);
    expect(ca.polls).toHaveLength(polls);
    expect(clock.pending).toBe(0);
    expect(changes()).toBe(0);
    // A bundle change after dispose reaches nobody.
    ca.setRoots([{ id: "root-b", root: rootB }], "root-b");
    await flush();
    expect(ca.polls).toHaveLength(polls);
    expect(changes()).toBe(0);
  });

  it("dispose() during a renewal in flight: the late answer is dropped", async () => {
    const { clock, ca, id, changes } = await setup({ ttl: "1h", random: () => 0 });
    const before = id.current();
    let release = () => {};
    ca.gate = new Promise<void>((r) => {
      release = r;
    });
    clock.advance(id.status().renewAt - clock.now());
    await until(() => ca.signs.length === 2, "the renewal's caSign call");

    id.dispose();
    release();
    await flush(50);
    expect(id.current()).toBe(before);
    expect(changes()).toBe(0);
    expect(clock.pending).toBe(0);
    clock.advance(48 * HOUR);
    await flush();
    expect(ca.signs).toHaveLength(2);
  });

  it("concurrent renew() calls share one renewal", async () => {
    const { ca, id, changes } = await setup({ ttl: "1h" });
    await Promise.all([id.renew(), id.renew(), id.renew()]);
    expect(ca.signs).toHaveLength(2);
    expect(id.status().renewals).toBe(1);
    expect(changes()).toBe(1);
  });
  it("the bundle watch retries with backoff when the control plane is unreachable, then catches up", async () => {
    const log = logger();
    const { clock, ca, id, changes } = await setup({ ttl: "24h", logger: log });
    const down = weftError("WEFT_ERR_UNREACHABLE", { addr: "http://127.0.0.1:8500", detail: "reset" });
    ca.rootsFailWith = down;
    ca.failPending(down);
    await flush();
    const polls = ca.polls.length;

    // A virtual minute in 50 ms steps: the watch must not spin.
    for (let t = 0; t < MINUTE; t += 50) {
      clock.advance(50);
      await flush(3);
    }
    const retries = ca.polls.length - polls;
    // Backoff from 250 ms doubling to 15 s: the first 8 ceilings add up to 45.75 s.
    expect(retries).toBeGreaterThanOrEqual(5);
    expect(retries).toBeLessThanOrEqual(40);
    expect(log.warns.filter((w) => w.includes("trust bundle watch failed")).length).toBeGreaterThanOrEqual(5);
    expect(id.current().bundle.roots).toHaveLength(1);
    expect(ca.signs).toHaveLength(1);

    // Back up, with a new root: the next retry (at most 15 s away) picks it up.
    ca.rootsFailWith = undefined;
    ca.setRoots(
      [
        { id: "root-a", root: rootA },
        { id: "root-b", root: rootB },
      ],
      "root-a",
    );
    for (let t = 0; t <= 16 * SECOND && changes() === 0; t += 50) {
      clock.advance(50);
      await flush(3);
    }
    expect(changes()).toBe(1);
    expect(id.current().bundle.roots).toHaveLength(2);
    await until(() => ca.pending.length === 1 && ca.pending[0]!.q.index === ca.index, "the next long poll");
  });

  it("an unusable bundle from the watch is ignored: the current bundle stays and the watch goes on", async () => {
    const log = logger();
    const { ca, id, changes } = await setup({ ttl: "24h", logger: log });
    const first = id.current();
    ca.setRoots(
      [
        { id: "root-a", root: rootA },
        { id: "root-b", root: rootB, pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" },
      ],
      "root-a",
    );
    await flush();
    expect(id.current()).toBe(first);
    expect(changes()).toBe(0);
    expect(log.warns.length).toBeGreaterThanOrEqual(1);

    // The watch is still alive: the next (good) change is applied.
    await until(() => ca.pending.length === 1 && ca.pending[0]!.q.index === ca.index, "the next long poll");
    ca.setRoots(
      [
        { id: "root-a", root: rootA },
        { id: "root-b", root: rootB },
      ],
      "root-a",
    );
    await until(() => changes() === 1, "the bundle update");
    expect(id.current().bundle.roots).toHaveLength(2);
  });

  it("a rotation that lands while a renewal is in flight still leads to an early renewal", async () => {
    const { clock, ca, id, changes } = await setup({ ttl: "24h", random: () => 0.5 });
    const halfLife = id.status().renewAt;
    let release = () => {};
    ca.gate = new Promise<void>((r) => {
      release = r;
    });
    // A renewal is signed by root A; its answer is still on the way when root B becomes active.
    const renewal = id.renew();
    await until(() => ca.signs.length === 2, "the renewal's caSign call");
    const rotatedAt = clock.now();
    ca.setRoots(
      [
        { id: "root-a", root: rootA },
        { id: "root-b", root: rootB },
      ],
      "root-b",
    );
    await until(() => ca.pending.length === 1 && ca.pending[0]!.q.index === ca.index, "the next long poll");
    ca.gate = undefined;
    release();
    await renewal;
    expect(id.status().rootId).toBe("root-a");
    expect(changes()).toBe(2); // bundle, then the renewal
    // The answer's bundle (from before the rotation) must not replace the newer one from the watch:
    // peers already renewed by root B would be refused until the next bundle change.
    expect(id.current().bundle.roots).toHaveLength(2);

    // The leaf in use is from the retiring root: it is replaced soon, not at its half-life.
    clock.advance(5 * SECOND);
    await until(() => id.status().renewals === 2, "the early renewal", 2_000);
    expect(ca.signs).toHaveLength(3);
    expect(ca.signs[2]!.at - rotatedAt).toBeLessThanOrEqual(5 * SECOND);
    expect(ca.signs[2]!.at).toBeLessThan(halfLife);
    expect(id.status().rootId).toBe("root-b");
  });
  it("a renewal takes the bundle from the answer when the watch has nothing newer", async () => {
    const { ca, id, changes } = await setup({ ttl: "24h" });
    // The CA already lists root B; the watch has not reported it yet.
    ca.roots = [
      { id: "root-a", root: rootA },
      { id: "root-b", root: rootB },
    ];
    await id.renew();
    expect(changes()).toBe(1);
    expect(id.current().bundle.roots).toHaveLength(2);
    expect(id.status().rootId).toBe("root-a");
  });
});
