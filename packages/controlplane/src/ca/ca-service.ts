/**
 * The CA service: owns the trust bundle and decides what gets signed.
 *
 *   CSR (checked by csr.ts, caller authorized by the HTTP layer)
 *     -> lifetime within the mesh maximum -> provider signs with the active root
 *     -> leaf recorded under its root (txn fenced on the active root) -> chain
 *
 * Rotation (Consul's model): `rotate()` creates a new root, cross-signed by
 * the current one, and makes it active; the old root turns "retiring" and
 * stays in the bundle. New leaves come with the chain [leaf, cross-signed
 * new root], so a peer that has not yet fetched the new bundle still
 * validates them through the old root — no handshake fails during the roll.
 * The sweep removes the retiring root once every leaf it signed has expired
 * or been replaced (a holder renewing from the new root replaces its leaf),
 * plus a grace for handshakes that started just before.
 *
 * Several replicas (#12, `leader` given): only the elected leader uses the
 * signing key (sign, rotate) and sweeps. A follower refuses with 503
 * (server.ts forwards sign/rotate requests to the leader first, see
 * ha/leader-forward.ts); a leader that lost its lease refuses at once (the
 * election's local step-down comes before the lease can lapse in etcd),
 * and the leaf record is written through the term-fenced store, so a
 * certificate is only handed out if etcd confirmed our term at that write.
 * Creating the first root stays on any replica: it is a create-if-absent txn.
 */
import { createHash, randomBytes } from "node:crypto";
import type { CaRoot, CaRootsResponse, InstanceCertificate, RotateResponse, SignResponse } from "@weft/api";
import {
  type Clock,
  type Disposable,
  formatDuration,
  systemClock,
  type TimerHandle,
  weftError,
} from "@weft/core";
import type { Logger } from "pino";
import type { LeaderGate } from "../catalog/catalog.js";
import { ChangeFeed, type ChangeListener } from "../state/change-feed.js";
import {
  CA_ACTIVE_KEY,
  CA_PREFIX,
  CA_RETIRING_KEY,
  caLeafKey,
  caLeavesPrefix,
  caRootKey,
} from "../state/keys.js";
import { PrefixMirror } from "../state/prefix-mirror.js";
import type { Store, TxnOp } from "../store/store.js";
import { CaView, type LeafRecord, type RootRecord } from "./ca-view.js";
import type { CheckedCsr } from "./csr.js";
import type { CaProvider } from "./provider.js";
import * as x509 from "./x509.js";

export interface CaSettings {
  trustDomain: string;
  leafTtlMs: number;
  maxLeafTtlMs: number;
  rootTtlMs: number;
}

export interface CaServiceOptions {
  store: Store;
  provider: CaProvider;
  /** Current mesh settings (the Mesh resource, defaults filled). Read on every call. */
  settings: () => CaSettings;
  clock?: Clock;
  logger?: Logger;
  /** A retiring root stays this long after its last leaf was replaced. Default 5 s. */
  retireGraceMs?: number;
  /** Sweep period (expired leaf records, retiring root, root expiry). Default 30 s; 1 s while a root retires. */
  sweepIntervalMs?: number;
  /** Replicated control plane: signing, rotation and the sweep run only while leader, writing through its fenced store. */
  leader?: LeaderGate;
}

/** Leaves are valid from a minute before signing: peers' clocks drift. */
const BACKDATE_MS = 60_000;
/** Bound on records deleted per sweep txn. */
const SWEEP_BATCH = 500;

function serialNumber(): string {
  const b = randomBytes(16);
  b[0] = (b[0] as number) & 0x7f; // positive, 128 bits of entropy minus one
  if (b[0] === 0) b[0] = 1; // no leading zero byte: DER would drop it
  return b.toString("hex");
}

function fingerprint(pem: string): string {
  const der = new x509.X509Certificate(pem).rawData;
  const hex = createHash("sha256").update(Buffer.from(der)).digest("hex").toUpperCase();
  return hex.replace(/(..)(?!$)/g, "$1:");
}

const iso = (ms: number) => new Date(ms).toISOString();

export class CaService implements Disposable {
  private readonly view: CaView;
  private mirror: PrefixMirror | undefined;
  private readonly feed: ChangeFeed;
  private readonly clock: Clock;
  private readonly log: Logger | undefined;
  private timer: TimerHandle | undefined;
  private sweeping: Promise<void> | undefined;
  private sweepAgain: Promise<void> | undefined;
  private closed = false;
  /** When a leaf of the retiring root was last replaced (in this process). */
  private lastReplacedAt = 0;
  private readonly halfLifeWarned = new Set<string>();
  private readonly fingerprints = new Map<string, string>();
  private rootsMemo: { key: string; value: CaRootsResponse } | undefined;

  private constructor(private readonly opts: CaServiceOptions) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.logger;
    this.view = new CaView(this.log);
    this.feed = new ChangeFeed("ca", this.log);
  }

  /** Loads the CA state; creates the first root when the store has none. */
  static async open(opts: CaServiceOptions): Promise<CaService> {
    const ca = new CaService(opts);
    ca.mirror = await PrefixMirror.open(opts.store, CA_PREFIX, {
      load: (kvs, revision) => {
        ca.feed.loaded(revision);
        for (const kv of kvs) if (ca.view.put(kv)) ca.feed.saw("roots", kv.modRevision);
      },
      apply: (batch) => {
        let bundle = false;
        for (const ev of batch.events) {
          bundle = (ev.type === "put" ? ca.view.put(ev.kv) : ca.view.delete(ev.key)) || bundle;
        }
        ca.feed.changed(new Set(bundle ? ["roots", "leaves"] : ["leaves"]), batch.revision);
      },
      onError: (err) => ca.log?.error({ err }, "CA watch broke; the trust bundle may be stale"),
    });
    await ca.ensureRoot();
    ca.schedule();
    return ca;
  }

  private async ensureRoot(): Promise<void> {
    if (this.view.active()) return;
    const root = await this.generateRoot();
    const res = await this.opts.store.txn({
      compare: [{ key: CA_ACTIVE_KEY, target: "exists", value: false }],
      success: [
        { type: "put", key: caRootKey(root.id), value: JSON.stringify(root) },
        { type: "put", key: CA_ACTIVE_KEY, value: root.id },
      ],
    });
    await this.mirror?.waitApplied(res.revision);
    if (res.succeeded) this.log?.info({ rootId: root.id, notAfter: iso(root.notAfter) }, "CA root created");
    if (!this.view.active()) {
      throw weftError("WEFT_ERR_UNAVAILABLE", { detail: "CA: no usable active root in the store" });
    }
  }

  private async generateRoot(): Promise<RootRecord> {
    const s = this.opts.settings();
    const now = this.clock.now();
    const id = randomBytes(8).toString("hex");
    const serial = serialNumber();
    const notBefore = now - BACKDATE_MS;
    const notAfter = now + s.rootTtlMs;
    const material = await this.opts.provider.generateRoot({
      id,
      trustDomain: s.trustDomain,
      serialNumber: serial,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
    });
    return {
      id,
      provider: this.opts.provider.name,
      certPem: material.certPem,
      privateState: material.privateState,
      serialNumber: serial,
      notBefore,
      notAfter,
      createdAt: now,
    };
  }

  // --- reads ---

  index(): number {
    return this.feed.index("roots");
  }

  onChange(fn: ChangeListener): Disposable {
    return this.feed.onChange(fn);
  }

  roots(): CaRootsResponse {
    const active = this.requireActive();
    const now = this.clock.now();
    const trustDomain = this.opts.settings().trustDomain;
    // Every proxy's bundle watch reads this after a change, and counting outstanding leaves is
    // linear in the leaves: build it once per store revision and second, then share it.
    const key = `${this.mirror?.revision ?? 0}:${Math.floor(now / 1000)}:${trustDomain}`;
    if (this.rootsMemo?.key === key) return this.rootsMemo.value;
    const ordered = [...this.view.roots.values()].sort((a, b) =>
      a.id === active.id ? -1 : b.id === active.id ? 1 : b.createdAt - a.createdAt,
    );
    const value: CaRootsResponse = {
      trustDomain,
      activeRootId: active.id,
      roots: ordered.map((r) => this.describe(r, now)),
      index: this.index(),
    };
    this.rootsMemo = { key, value };
    return value;
  }

  /** Every root to trust, PEM. */
  bundlePem(): string[] {
    return this.roots().roots.map((r) => r.certificatePem);
  }

  certificateOf(service: string, instanceId: string): InstanceCertificate | undefined {
    const l = this.view.leafOf(service, instanceId);
    return l && { serialNumber: l.serialNumber, rootId: l.rootId, notAfter: iso(l.notAfter) };
  }

  private describe(r: RootRecord, now: number): CaRoot {
    let fp = this.fingerprints.get(r.id);
    if (!fp) {
      fp = fingerprint(r.certPem);
      this.fingerprints.set(r.id, fp);
    }
    return {
      id: r.id,
      certificatePem: r.certPem,
      serialNumber: r.serialNumber,
      fingerprintSha256: fp,
      notBefore: iso(r.notBefore),
      notAfter: iso(r.notAfter),
      state: r.id === this.view.activeId ? "active" : "retiring",
      leavesOutstanding: this.view.outstanding(r.id, now).length,
    };
  }

  private requireActive(): RootRecord {
    const a = this.view.active();
    if (!a) throw weftError("WEFT_ERR_UNAVAILABLE", { detail: "CA: no active root (store still loading?)" });
    return a;
  }

  /**
   * The store for a key-use or sweep write: the plain store without a gate,
   * the term-fenced one while leader; throws 503 when not leader.
   */
  private leaderStore(): Store {
    const gate = this.opts.leader;
    if (!gate) return this.opts.store;
    const store = gate.isLeader() ? gate.dutyStore() : undefined;
    if (!store) {
      throw weftError("WEFT_ERR_UNAVAILABLE", {
        detail: "this control-plane replica is not the leader: CA signing runs on the leader; retry",
      });
    }
    return store;
  }

  /** Whether this replica may use the signing key now (always without a gate). */
  mayUseKey(): boolean {
    return this.opts.leader === undefined || this.opts.leader.isLeader();
  }

  // --- signing ---

  /** Signs a checked CSR. `ttlMs` above the mesh maximum is refused (WEFT_ERR_CERT_TTL_TOO_LONG). */
  async sign(csr: CheckedCsr, opts: { ttlMs?: number | undefined; instanceId?: string | undefined } = {}) {
    const s = this.opts.settings();
    const ttl = opts.ttlMs ?? s.leafTtlMs;
    if (ttl > s.maxLeafTtlMs) {
      throw weftError("WEFT_ERR_CERT_TTL_TOO_LONG", {
        requested: formatDuration(ttl),
        max: formatDuration(s.maxLeafTtlMs),
      });
    }
    if (csr.identity.trustDomain !== s.trustDomain) {
      throw weftError("WEFT_ERR_CSR_INVALID", {
        detail: `trust domain "${csr.identity.trustDomain}" is not this mesh's ("${s.trustDomain}")`,
      });
    }
    // Two tries: a rotation between reading the active root and the fenced write is retried once.
    for (let attempt = 0; ; attempt++) {
      this.leaderStore(); // refuse before touching the key when not leader
      const root = this.requireActive();
      const now = this.clock.now();
      const serial = serialNumber();
      const notBefore = Math.max(now - BACKDATE_MS, root.notBefore);
      const notAfter = Math.min(now + ttl, root.notAfter);
      const leafPem = await this.opts.provider.signLeaf(root, {
        spiffeId: csr.spiffeId,
        commonName: csr.identity.service,
        publicKey: csr.publicKey,
        serialNumber: serial,
        notBefore: new Date(notBefore),
        notAfter: new Date(notAfter),
      });
      const service = csr.identity.service;
      const holder = opts.instanceId ?? `serial-${serial}`;
      const record: LeafRecord = { serialNumber: serial, notAfter, signedAt: now };
      if (opts.instanceId !== undefined) record.instanceId = opts.instanceId;
      const ops: TxnOp[] = [
        { type: "put", key: caLeafKey(root.id, service, holder), value: JSON.stringify(record) },
      ];
      const retiring = this.view.retiring?.rootId;
      const replaces =
        retiring !== undefined &&
        retiring !== root.id &&
        this.view.leaves.get(retiring)?.has(`${service}/${holder}`);
      if (replaces && retiring) ops.push({ type: "delete", key: caLeafKey(retiring, service, holder) });
      // Fenced on our term when replicated: a deposed leader's record write fails in etcd.
      const res = await this.leaderStore().txn({
        compare: [{ key: CA_ACTIVE_KEY, target: "value", op: "=", value: root.id }],
        success: ops,
      });
      await this.mirror?.waitApplied(res.revision);
      if (!res.succeeded) {
        if (attempt >= 1)
          throw weftError("WEFT_ERR_CONFLICT", { detail: "CA root changed while signing; retry" });
        continue;
      }
      if (replaces) {
        this.lastReplacedAt = now;
        this.kick();
      }
      const chain = [leafPem];
      if (root.crossSignedPem && root.crossSignedBy && this.view.roots.has(root.crossSignedBy)) {
        chain.push(root.crossSignedPem);
      }
      const response: SignResponse = {
        spiffeId: csr.spiffeId,
        service,
        serialNumber: serial,
        certificatePem: leafPem,
        chainPem: chain.join(""),
        rootId: root.id,
        notBefore: iso(notBefore),
        notAfter: iso(notAfter),
        rootsPem: this.bundlePem(),
        trustDomain: s.trustDomain,
      };
      this.log?.info(
        { service, serial, instanceId: opts.instanceId, rootId: root.id, notAfter: response.notAfter },
        "leaf signed",
      );
      return response;
    }
  }

  // --- rotation ---

  async rotate(): Promise<RotateResponse> {
    this.leaderStore();
    const old = this.requireActive();
    const pending = this.view.retiring;
    if (pending) {
      const leaves = this.view.outstanding(pending.rootId, this.clock.now());
      const until = Math.max(this.clock.now(), ...leaves.map((l) => l.notAfter));
      throw weftError("WEFT_ERR_CA_ROTATION_PENDING", { rootId: pending.rootId, until: iso(until) });
    }
    const next = await this.generateRoot();
    next.crossSignedPem = await this.opts.provider.crossSign(
      old,
      { certPem: next.certPem },
      { serialNumber: serialNumber(), notAfter: new Date(next.notAfter) },
    );
    next.crossSignedBy = old.id;
    const res = await this.leaderStore().txn({
      compare: [
        { key: CA_ACTIVE_KEY, target: "value", op: "=", value: old.id },
        { key: CA_RETIRING_KEY, target: "exists", value: false },
      ],
      success: [
        { type: "put", key: caRootKey(next.id), value: JSON.stringify(next) },
        { type: "put", key: CA_ACTIVE_KEY, value: next.id },
        {
          type: "put",
          key: CA_RETIRING_KEY,
          value: JSON.stringify({ rootId: old.id, since: this.clock.now() }),
        },
      ],
    });
    await this.mirror?.waitApplied(res.revision);
    if (!res.succeeded)
      throw weftError("WEFT_ERR_CONFLICT", { detail: "another root rotation happened at the same time" });
    this.lastReplacedAt = this.clock.now();
    this.log?.warn(
      { activeRootId: next.id, retiringRootId: old.id },
      "CA root rotated; the old root retires when its last leaf expires or is replaced",
    );
    this.schedule();
    return { activeRootId: next.id, previousRootId: old.id, roots: this.roots().roots };
  }

  // --- sweep ---

  /**
   * Runs one sweep now (tests; and after a replacement). A sweep already
   * under way read the clock and the view before this call, so another one
   * follows it (calls meanwhile share that one).
   */
  sweep(): Promise<void> {
    if (this.sweeping) {
      this.sweepAgain ??= this.sweeping.then(() => {
        this.sweepAgain = undefined;
        return this.sweep();
      });
      return this.sweepAgain;
    }
    this.sweeping = this.doSweep()
      .catch((err) => this.log?.error({ err }, "CA sweep failed; will retry"))
      .finally(() => {
        this.sweeping = undefined;
      });
    return this.sweeping;
  }

  private kick(): void {
    void this.sweep();
  }

  private async doSweep(): Promise<void> {
    if (this.closed || !this.mayUseKey()) return;
    const now = this.clock.now();
    const store = this.leaderStore();
    // A leaf counts until a grace after its notAfter: X.509 validity includes the notAfter
    // second, and a handshake may have started just before it.
    const grace = this.opts.retireGraceMs ?? 5_000;
    const cutoff = now - grace;
    // 1. Expired leaf records go (bounded per txn).
    const expired: TxnOp[] = [];
    collect: for (const [rootId, m] of this.view.leaves) {
      for (const [k, l] of m) {
        if (l.notAfter > cutoff) continue;
        const slash = k.indexOf("/");
        expired.push({ type: "delete", key: caLeafKey(rootId, k.slice(0, slash), k.slice(slash + 1)) });
        if (expired.length >= SWEEP_BATCH) break collect;
      }
    }
    if (expired.length > 0) {
      const r = await store.txn({ compare: [], success: expired });
      await this.mirror?.waitApplied(r.revision);
    }
    // 2. A retiring root with no leaf left (expired past the grace or replaced a grace ago) leaves the bundle.
    const retiring = this.view.retiring;
    if (
      retiring &&
      this.view.outstanding(retiring.rootId, cutoff).length === 0 &&
      now >= this.lastReplacedAt + grace
    ) {
      const r = await store.txn({
        compare: [{ key: CA_RETIRING_KEY, target: "value", op: "=", value: JSON.stringify(retiring) }],
        success: [
          { type: "delete", key: caRootKey(retiring.rootId) },
          { type: "deletePrefix", prefix: caLeavesPrefix(retiring.rootId) },
          { type: "delete", key: CA_RETIRING_KEY },
        ],
      });
      await this.mirror?.waitApplied(r.revision);
      if (r.succeeded)
        this.log?.info({ rootId: retiring.rootId }, "retired CA root removed from the trust bundle");
    }
    // 3. Root expiry: warn at half-life; rotate before leaves would outlive the root.
    const active = this.view.active();
    if (active && !this.view.retiring) {
      const life = active.notAfter - active.notBefore;
      const left = active.notAfter - now;
      if (left < life / 2 && !this.halfLifeWarned.has(active.id)) {
        this.halfLifeWarned.add(active.id);
        this.log?.warn(
          { rootId: active.id, notAfter: iso(active.notAfter) },
          "CA root is past half of its lifetime; plan a rotation (weft ca rotate)",
        );
      }
      if (left < 2 * this.opts.settings().maxLeafTtlMs) {
        this.log?.warn(
          { rootId: active.id, notAfter: iso(active.notAfter) },
          "CA root close to expiry: rotating automatically",
        );
        await this.rotate();
      }
    }
  }

  private schedule(): void {
    this.timer?.cancel();
    if (this.closed) return;
    const period = this.view.retiring ? 1_000 : (this.opts.sweepIntervalMs ?? 30_000);
    this.timer = this.clock.setTimeout(
      () => {
        void this.sweep().finally(() => this.schedule());
      },
      Math.min(period, this.opts.sweepIntervalMs ?? period),
    );
  }

  async dispose(): Promise<void> {
    this.closed = true;
    this.timer?.cancel();
    await this.sweeping;
    await this.sweepAgain;
    this.feed.dispose();
    await this.mirror?.dispose();
  }
}
