/**
 * The service catalog and its TTL health.
 *
 * Data flow: register/heartbeat/deregister -> store write (per-instance
 * lock, compare-on-revision txn) -> store watch -> in-memory index
 * (`byId`, `byService`, per-service index) -> reads and blocking queries.
 *
 * Health: a check not reported within its TTL goes critical; an instance
 * with a check critical for longer than its `deregisterCriticalAfter` is
 * removed. Heartbeat times live in memory only; the store is written on
 * status TRANSITIONS only, so a steady heartbeat costs no write and wakes no
 * blocking query. With several replicas (etcd), each replica publishes the
 * checks it heard as one digest write per TTL/4 (heartbeat-share.ts), so
 * the leader's expiry counts heartbeats received by any replica. After a restart TTLs (and the reap grace) count from the
 * restart. Deadlines sit on one DeadlineWheel (one timer for all checks).
 *
 * Re-registering an existing instance id replaces the record but keeps the
 * current state of checks that keep their id, so that a sidecar's periodic
 * re-registration does not flap health.
 */
import {
  type CheckState,
  type HealthStatus,
  type Instance,
  type ParsedInstanceRegistration,
  type ServiceSummary,
  worstStatus,
} from "@weft/api";
import {
  type Clock,
  type Disposable,
  formatDuration,
  newId,
  systemClock,
  tracer,
  weftError,
} from "@weft/core";
import type { Logger } from "pino";
import { ChangeFeed, type ChangeListener } from "../state/change-feed.js";
import { INSTANCES_PREFIX, instanceKey, parseInstanceKey, serviceInstancesPrefix } from "../state/keys.js";
import { PrefixMirror } from "../state/prefix-mirror.js";
import type { KeyValue, Store, WatchBatch } from "../store/store.js";
import { DeadlineWheel } from "./deadline-wheel.js";
import { HeartbeatShare, type RemoteHeartbeat } from "./heartbeat-share.js";

const trace = tracer("health");

/** The persisted form of an instance: `modifyIndex` comes from the store. */
export type StoredInstance = Omit<Instance, "modifyIndex">;

/** Which instances discovery returns. */
export type StatusFilter = "passing" | "warning" | "critical" | "any";

export const DEFAULT_DEREGISTER_CRITICAL_AFTER_MS = 60_000;
/** Shortest TTL accepted: below the sweep granularity a TTL means nothing. */
export const MIN_TTL_MS = 100;

/**
 * Who may run the catalog's once-only duties (TTL expiry, reaping) when
 * several replicas share a store (ha/duties.ts, on etcd). Absent: this
 * process is the store's only server and always may.
 */
export interface LeaderGate {
  /** Checked right before acting and again right before the write. */
  isLeader(): boolean;
  onChange(fn: (leader: boolean) => void): Disposable;
  /** The store for duty writes, fenced on the current term (a deposed leader's write fails in the store); undefined when not leader. */
  dutyStore(): Store | undefined;
}

export interface CatalogOptions {
  store: Store;
  /** Gate for TTL expiry and reaping (replicated control plane). */
  leader?: LeaderGate;
  clock?: Clock;
  logger?: Logger;
  /** Server-wide default for checks that do not set `deregisterCriticalAfter`. */
  deregisterCriticalAfterMs?: number;
  /**
   * Share heartbeats with the other replicas of the store (catalog/heartbeat-share.ts), so
   * that the leader's expiry counts reports received by any replica. Default: on when
   * `leader` is given (a replicated control plane), off otherwise.
   */
  shareHeartbeats?: boolean;
  /** Names this replica's heartbeat digest key. Default: a random id. */
  replicaId?: string;
  /** Sweep granularity of the health deadlines. Default 20 ms: a TTL runs out at most this late, and an idle tick costs a few map lookups. */
  granularityMs?: number;
}

interface Entry {
  readonly key: string;
  readonly inst: StoredInstance;
  readonly modRevision: number;
}

interface CheckRuntime {
  /** Last report (or registration, or load after a restart), epoch ms. */
  lastReport: number;
  /** Output and time of the last report, not persisted unless the status changed. */
  output?: string;
  updatedAt?: number;
  /** The reap grace does not count before this (the load time after a restart). */
  graceFrom: number;
}

/** The deadline wheel's key of a check: instance id and check id, NUL-separated (ids never hold NUL). */
function checkKey(id: string, checkId: string): string {
  return `${id}\u0000${checkId}`;
}

function splitCheckKey(k: string): [id: string, checkId: string] {
  const sep = k.indexOf("\u0000");
  return [k.slice(0, sep), k.slice(sep + 1)];
}

export class Catalog implements Disposable {
  private readonly byId = new Map<string, Entry>();
  private readonly byService = new Map<string, Map<string, Entry>>();
  /** Index per service (kept after its last instance leaves), and change listeners. */
  private readonly feed: ChangeFeed;
  /** Per instance id, per check id: what heartbeats change without a store write. */
  private readonly runtime = new Map<string, Map<string, CheckRuntime>>();
  private readonly inflight = new Set<string>();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly clock: Clock;
  private readonly store: Store;
  private readonly log: Logger | undefined;
  private readonly defaultDcaMs: number;
  private readonly wheel: DeadlineWheel<string>;
  private mirror: PrefixMirror | undefined;
  private disposed = false;
  private readonly leader: LeaderGate | undefined;
  private leaderSub: Disposable | undefined;
  private share: HeartbeatShare | undefined;

  private constructor(opts: CatalogOptions) {
    this.store = opts.store;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.logger;
    this.defaultDcaMs = opts.deregisterCriticalAfterMs ?? DEFAULT_DEREGISTER_CRITICAL_AFTER_MS;
    this.feed = new ChangeFeed("catalog", opts.logger);
    this.wheel = new DeadlineWheel(this.clock, (k) => this.onDue(k), opts.granularityMs ?? 20);
    this.leader = opts.leader;
  }

  /** Expiry and reaping run only here: always without a gate, else while leader. */
  private mayRunDuties(): boolean {
    return this.leader === undefined || this.leader.isLeader();
  }

  /**
   * A new leader has not seen the heartbeats other replicas received, so, as
   * after a restart, TTLs and the reap grace count from the takeover.
   */
  private onLeadership(leader: boolean): void {
    if (!leader || this.disposed) return;
    const now = this.clock.now();
    for (const [id, checks] of this.runtime) {
      for (const [checkId, rt] of checks) {
        rt.lastReport = Math.max(rt.lastReport, now);
        rt.graceFrom = Math.max(rt.graceFrom, now);
        this.evaluate(id, checkId);
      }
    }
  }

  static async open(opts: CatalogOptions): Promise<Catalog> {
    const c = new Catalog(opts);
    try {
      c.mirror = await PrefixMirror.open(c.store, INSTANCES_PREFIX, {
        load: (kvs, revision) => c.load(kvs, revision),
        apply: (batch) => c.apply(batch),
        onError: (err) => c.log?.error({ err }, "catalog watch broke; catalog reads are stale"),
      });
    } catch (e) {
      c.wheel.dispose();
      throw e;
    }
    if (opts.shareHeartbeats ?? opts.leader !== undefined) {
      try {
        c.share = await HeartbeatShare.open({
          store: c.store,
          replicaId: opts.replicaId ?? newId(),
          clock: c.clock,
          ...(opts.logger ? { logger: opts.logger } : {}),
          onRemote: (reports) => c.onRemoteHeartbeats(reports),
        });
      } catch (e) {
        await c.dispose();
        throw e;
      }
    }
    if (c.leader) c.leaderSub = c.leader.onChange((leader) => c.onLeadership(leader));
    return c;
  }

  /** Reports another replica received: they move the last report forward (never back). */
  private onRemoteHeartbeats(reports: readonly RemoteHeartbeat[]): void {
    if (this.disposed) return;
    const now = this.clock.now();
    for (const r of reports) {
      const rt = this.rt(r.id, r.checkId);
      if (!rt) continue; // not (yet) in our mirror: its registration starts its TTL here
      const at = now - r.ageMs;
      if (at > rt.lastReport) rt.lastReport = at;
      // The deadline on the wheel is re-read when it fires: no reschedule needed.
    }
  }

  /** Writes the heartbeat digest now (tests; shared heartbeats only). */
  async flushHeartbeats(): Promise<void> {
    await this.share?.flush();
  }

  /** Heartbeat digest writes so far (shared heartbeats only; for the load measurement). */
  get heartbeatWrites(): number {
    return this.share?.writes ?? 0;
  }

  // --- index maintenance -------------------------------------------------

  private load(kvs: readonly KeyValue[], revision: number): void {
    this.feed.loaded(revision);
    for (const kv of kvs) this.upsert(kv);
  }

  private apply(batch: WatchBatch): void {
    const changed = new Set<string>();
    for (const ev of batch.events) {
      if (ev.type === "put") {
        const svc = this.upsert(ev.kv);
        if (svc) changed.add(svc);
      } else {
        const parsed = parseInstanceKey(ev.key);
        if (!parsed) continue;
        this.remove(ev.key, parsed.service, parsed.id);
        changed.add(parsed.service);
      }
    }
    this.feed.changed(changed, batch.revision);
  }

  private upsert(kv: KeyValue): string | undefined {
    const parsed = parseInstanceKey(kv.key);
    if (!parsed) return undefined;
    let inst: StoredInstance;
    try {
      inst = JSON.parse(kv.value) as StoredInstance;
    } catch (err) {
      this.log?.error({ err, key: kv.key }, "unreadable instance record in the store; ignored");
      return undefined;
    }
    const entry: Entry = { key: kv.key, inst, modRevision: kv.modRevision };
    const prev = this.byId.get(parsed.id);
    if (prev && prev.key !== kv.key) this.byService.get(prev.inst.service)?.delete(parsed.id);
    this.byId.set(parsed.id, entry);
    let svc = this.byService.get(parsed.service);
    if (!svc) {
      svc = new Map();
      this.byService.set(parsed.service, svc);
    }
    svc.set(parsed.id, entry);
    this.feed.saw(parsed.service, kv.modRevision);
    const now = this.clock.now();
    for (const check of inst.checks) {
      if (!this.rt(parsed.id, check.id)) this.setRt(parsed.id, check.id, { lastReport: now, graceFrom: now });
      this.evaluate(parsed.id, check.id);
    }
    this.dropRuntime(parsed.id, new Set(inst.checks.map((c) => c.id)));
    return parsed.service;
  }

  private remove(key: string, service: string, id: string): void {
    const entry = this.byId.get(id);
    if (entry && entry.key === key) {
      this.byId.delete(id);
      this.dropRuntime(id, new Set());
    }
    const svc = this.byService.get(service);
    if (svc?.get(id)?.key === key) svc.delete(id);
    if (svc && svc.size === 0) this.byService.delete(service);
  }

  private rt(id: string, checkId: string): CheckRuntime | undefined {
    return this.runtime.get(id)?.get(checkId);
  }

  private setRt(id: string, checkId: string, rt: CheckRuntime): void {
    let checks = this.runtime.get(id);
    if (!checks) {
      checks = new Map();
      this.runtime.set(id, checks);
    }
    checks.set(checkId, rt);
  }

  /** Forgets the runtime (and deadline) of the instance's checks not in `keep`. */
  private dropRuntime(id: string, keep: ReadonlySet<string>): void {
    const checks = this.runtime.get(id);
    if (!checks) return;
    for (const checkId of checks.keys()) {
      if (keep.has(checkId)) continue;
      checks.delete(checkId);
      this.wheel.cancel(checkKey(id, checkId));
    }
    if (checks.size === 0) this.runtime.delete(id);
  }

  // --- health state machine ----------------------------------------------

  private dcaOf(check: CheckState): number {
    return check.deregisterCriticalAfterMs ?? this.defaultDcaMs;
  }

  private onDue(k: string): void {
    this.evaluate(...splitCheckKey(k));
  }

  /** Acts on a check whose deadline has come, or schedules its next deadline. */
  private evaluate(id: string, checkId: string): void {
    if (this.disposed) return;
    const k = checkKey(id, checkId);
    const entry = this.byId.get(id);
    const check = entry?.inst.checks.find((c) => c.id === checkId);
    const rt = this.rt(id, checkId);
    if (!entry || !check || !rt) return;
    if (this.inflight.has(k)) return; // re-evaluated when the write lands
    const now = this.clock.now();
    if (check.status !== "critical") {
      const deadline = rt.lastReport + check.ttlMs;
      if (now < deadline) this.wheel.schedule(k, deadline);
      // Not leader: nothing to do; `onLeadership` re-evaluates everything on a gain.
      else if (this.mayRunDuties()) this.background(k, () => this.expire(id, checkId));
    } else {
      const reapAt = Math.max(check.criticalSince ?? now, rt.graceFrom) + this.dcaOf(check);
      if (now < reapAt) this.wheel.schedule(k, reapAt);
      else if (this.mayRunDuties()) this.background(k, () => this.reap(id, checkId));
    }
  }

  private background(k: string, fn: () => Promise<void>): void {
    this.inflight.add(k);
    const p = fn()
      .catch((err) => {
        if (!this.disposed) this.log?.error({ err }, "health transition failed");
      })
      .finally(() => {
        this.inflight.delete(k);
        this.pending.delete(p);
        this.evaluate(...splitCheckKey(k));
      });
    this.pending.add(p);
  }

  /**
   * Runs `fn` under the instance's lock with the instance as stored (not as
   * mirrored: a sweep must act on the latest write), its check and the
   * check's runtime; does nothing when any of them is gone.
   */
  private async withStoredCheck(
    id: string,
    checkId: string,
    fn: (kv: KeyValue, inst: StoredInstance, check: CheckState, rt: CheckRuntime) => Promise<void>,
  ): Promise<void> {
    await this.withLock(id, async () => {
      const entry = this.byId.get(id);
      if (!entry || this.disposed) return;
      const kv = await this.store.get(entry.key);
      if (!kv) return;
      const inst = JSON.parse(kv.value) as StoredInstance;
      const check = inst.checks.find((c) => c.id === checkId);
      const rt = this.rt(id, checkId);
      if (!check || !rt) return;
      await fn(kv, inst, check, rt);
    });
  }

  /** TTL expiry: passing/warning -> critical, re-checked against the store under the lock. */
  private async expire(id: string, checkId: string): Promise<void> {
    await this.withStoredCheck(id, checkId, async (kv, inst, check, rt) => {
      if (check.status === "critical") return;
      const now = this.clock.now();
      if (now < rt.lastReport + check.ttlMs) return;
      check.status = "critical";
      check.output = `TTL of ${formatDuration(check.ttlMs)} expired: no report since ${new Date(rt.lastReport).toISOString()}`;
      check.updatedAt = now;
      // Critical since the TTL ran out (not since this write, which may come a sweep later).
      check.criticalSince = rt.lastReport + check.ttlMs;
      const store = this.dutyStore();
      if (!store) return; // deposed while reading: the new leader decides
      rt.output = check.output;
      rt.updatedAt = now;
      inst.status = worstStatus(inst.checks.map((c) => c.status));
      trace("ttl expired", { id, checkId });
      this.log?.info(
        { instance: id, service: inst.service, check: checkId },
        "health check TTL expired: critical",
      );
      await this.writeIfUnchanged(kv, inst, store);
    });
  }

  /** The store for a duty write (fenced when gated), or undefined when no longer leader. */
  private dutyStore(): Store | undefined {
    if (!this.leader) return this.store;
    return this.leader.isLeader() ? this.leader.dutyStore() : undefined;
  }

  private async reap(id: string, checkId: string): Promise<void> {
    await this.withStoredCheck(id, checkId, async (kv, inst, check, rt) => {
      if (check.status !== "critical") return;
      const now = this.clock.now();
      if (now < Math.max(check.criticalSince ?? now, rt.graceFrom) + this.dcaOf(check)) return;
      const store = this.dutyStore();
      if (!store) return;
      this.log?.info(
        { instance: id, service: inst.service, check: checkId },
        `instance critical for over ${formatDuration(this.dcaOf(check))}: deregistered`,
      );
      const r = await store.txn({
        compare: [{ key: kv.key, target: "modRevision", op: "=", value: kv.modRevision }],
        success: [{ type: "delete", key: kv.key }],
      });
      if (r.succeeded) await this.mirror?.waitApplied(r.revision);
    });
  }

  private async writeIfUnchanged(
    kv: KeyValue,
    inst: StoredInstance,
    store: Store = this.store,
  ): Promise<number | undefined> {
    const r = await store.txn({
      compare: [{ key: kv.key, target: "modRevision", op: "=", value: kv.modRevision }],
      success: [{ type: "put", key: kv.key, value: JSON.stringify(inst) }],
    });
    if (!r.succeeded) return undefined;
    await this.mirror?.waitApplied(r.revision);
    return r.revision;
  }

  /** Serializes writes per instance id (heartbeats, sweeps and re-registration race otherwise). */
  private async withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    this.locks.set(id, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }

  // --- writes --------------------------------------------------------------

  /** Registers or replaces an instance (idempotent by id). */
  async register(reg: ParsedInstanceRegistration): Promise<{ instance: Instance; created: boolean }> {
    const id = reg.id ?? newId();
    const seen = new Set<string>();
    reg.checks.forEach((c, i) => {
      if (seen.has(c.id))
        throw weftError("WEFT_ERR_VALIDATION", { detail: `checks[${i}].id: duplicate check id "${c.id}"` });
      seen.add(c.id);
      if (c.ttl < MIN_TTL_MS) {
        throw weftError("WEFT_ERR_VALIDATION", {
          detail: `checks[${i}].ttl: must be at least ${MIN_TTL_MS}ms`,
        });
      }
    });
    const other = this.byId.get(id);
    if (other && other.inst.service !== reg.service) {
      throw weftError("WEFT_ERR_CONFLICT", {
        detail: `instance id "${id}" is registered for service "${other.inst.service}"; deregister it first`,
      });
    }
    return this.withLock(id, async () => {
      const key = instanceKey(reg.service, id);
      const kv = await this.store.get(key);
      const prev = kv ? (JSON.parse(kv.value) as StoredInstance) : undefined;
      const now = this.clock.now();
      const checks: CheckState[] = reg.checks.map((c) => {
        const old = prev?.checks.find((p) => p.id === c.id);
        const base = old
          ? {
              status: old.status,
              output: old.output,
              updatedAt: old.updatedAt,
              criticalSince: old.criticalSince,
            }
          : {
              status: c.status,
              output: "",
              updatedAt: now,
              criticalSince: c.status === "critical" ? now : undefined,
            };
        const state: CheckState = {
          id: c.id,
          ttlMs: c.ttl,
          deregisterCriticalAfterMs: c.deregisterCriticalAfter ?? this.defaultDcaMs,
          ...base,
        };
        if (c.name !== undefined) state.name = c.name;
        if (state.criticalSince === undefined) delete state.criticalSince;
        return state;
      });
      const inst: StoredInstance = {
        id,
        service: reg.service,
        address: reg.address,
        port: reg.port,
        ports: reg.ports ?? {},
        tags: reg.tags,
        meta: reg.meta,
        datacenter: reg.datacenter,
        ...(reg.locality ? { locality: reg.locality } : {}),
        ...(reg.proxy ? { proxy: reg.proxy } : {}),
        checks,
        status: worstStatus(checks.map((c) => c.status)),
        registeredAt: prev?.registeredAt ?? now,
      };
      const r = await this.store.txn({
        compare: kv
          ? [{ key, target: "modRevision", op: "=", value: kv.modRevision }]
          : [{ key, target: "exists", value: false }],
        success: [{ type: "put", key, value: JSON.stringify(inst) }],
      });
      if (!r.succeeded) {
        throw weftError("WEFT_ERR_CONFLICT", { detail: `instance "${id}" changed concurrently; retry` });
      }
      // A new registration (or new check) starts its TTL now.
      for (const c of checks) {
        if (!this.rt(id, c.id) || !prev?.checks.some((p) => p.id === c.id))
          this.setRt(id, c.id, { lastReport: now, graceFrom: now });
      }
      await this.mirror?.waitApplied(r.revision);
      const instance = this.getInstance(id) ?? { ...inst, modifyIndex: r.revision };
      return { instance, created: !kv };
    });
  }

  /** Removes an instance; false when it was not registered. */
  async deregister(id: string): Promise<boolean> {
    return this.withLock(id, async () => {
      const entry = this.byId.get(id);
      if (!entry) return false;
      const r = await this.store.delete(entry.key);
      if (r.deleted.length === 0) return false;
      await this.mirror?.waitApplied(r.revision);
      return true;
    });
  }

  /**
   * Deregisters a service: every instance of it, in one transaction (a service
   * exists while it has instances; it is registered by registering one).
   * Returns how many instances were removed.
   */
  async deregisterService(name: string): Promise<number> {
    const r = await this.store.deletePrefix(serviceInstancesPrefix(name));
    if (r.deleted.length > 0) await this.mirror?.waitApplied(r.revision);
    return r.deleted.length;
  }

  /** A TTL check report. Writes to the store only when the status changes. */
  async heartbeat(
    id: string,
    checkId: string,
    update: { status: HealthStatus; output: string },
  ): Promise<CheckState> {
    return this.withLock(id, async () => {
      const entry = this.byId.get(id);
      const notFound = () =>
        weftError("WEFT_ERR_NOT_FOUND", { what: `check "${checkId}" of instance "${id}"` });
      if (!entry) throw weftError("WEFT_ERR_NOT_FOUND", { what: `instance "${id}"` });
      if (!entry.inst.checks.some((c) => c.id === checkId)) throw notFound();
      const now = this.clock.now();
      const rt = this.rt(id, checkId) ?? { lastReport: now, graceFrom: now };
      rt.lastReport = now;
      rt.output = update.output;
      rt.updatedAt = now;
      this.setRt(id, checkId, rt);
      const current = entry.inst.checks.find((c) => c.id === checkId);
      if (current) this.share?.heard(id, checkId, current.ttlMs);
      if (current && current.status !== update.status) {
        const kv = await this.store.get(entry.key);
        if (!kv) throw weftError("WEFT_ERR_NOT_FOUND", { what: `instance "${id}"` });
        const inst = JSON.parse(kv.value) as StoredInstance;
        const check = inst.checks.find((c) => c.id === checkId);
        if (!check) throw notFound();
        if (check.status !== update.status) {
          check.status = update.status;
          check.output = update.output;
          check.updatedAt = now;
          if (update.status === "critical") check.criticalSince = now;
          else delete check.criticalSince;
          inst.status = worstStatus(inst.checks.map((c) => c.status));
          trace("transition", { id, checkId, status: update.status });
          const rev = await this.writeIfUnchanged(kv, inst);
          if (rev === undefined) {
            throw weftError("WEFT_ERR_CONFLICT", { detail: `instance "${id}" changed concurrently; retry` });
          }
        }
      } else {
        this.evaluate(id, checkId);
      }
      const after = this.getInstance(id)?.checks.find((c) => c.id === checkId);
      if (!after) throw notFound();
      return after;
    });
  }

  // --- reads ---------------------------------------------------------------

  private view(entry: Entry): Instance {
    const checks = entry.inst.checks.map((c) => {
      const rt = this.rt(entry.inst.id, c.id);
      return {
        ...c,
        output: rt?.output ?? c.output,
        updatedAt: Math.max(rt?.updatedAt ?? 0, c.updatedAt),
      };
    });
    return { ...entry.inst, checks, modifyIndex: entry.modRevision };
  }

  getInstance(id: string): Instance | undefined {
    const e = this.byId.get(id);
    return e ? this.view(e) : undefined;
  }

  listServices(): ServiceSummary[] {
    const out: ServiceSummary[] = [];
    for (const [name, insts] of this.byService) {
      if (insts.size === 0) continue;
      const s: ServiceSummary = {
        name,
        instances: insts.size,
        passing: 0,
        warning: 0,
        critical: 0,
        tags: [],
        modifyIndex: this.serviceIndex(name),
      };
      const tags = new Set<string>();
      for (const e of insts.values()) {
        s[e.inst.status] += 1;
        for (const t of e.inst.tags) tags.add(t);
      }
      s.tags = [...tags].sort();
      out.push(s);
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  serviceInstances(name: string, filter: StatusFilter = "passing"): Instance[] {
    const insts = this.byService.get(name);
    if (!insts) return [];
    // "warning" means "at least warning": passing and warning instances.
    const keep = (s: HealthStatus): boolean =>
      filter === "any" || s === filter || (filter === "warning" && s === "passing");
    const out: Instance[] = [];
    for (const e of insts.values()) if (keep(e.inst.status)) out.push(this.view(e));
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Index of a service: the revision of its last change, or the load revision if none seen. */
  serviceIndex(name: string): number {
    return this.feed.index(name);
  }

  /** Index of the whole catalog: the revision of its last change. */
  catalogIndex(): number {
    return this.feed.lastChange;
  }

  /** Called with the names of the services that changed, after each applied batch. */
  onChange(fn: ChangeListener): Disposable {
    return this.feed.onChange(fn);
  }

  /** Resolves when background health work (transitions, reaps) has finished. For tests. */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** Number of checks with a live deadline (for tests and metrics). */
  get scheduledChecks(): number {
    return this.wheel.size;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.leaderSub?.dispose();
    await this.share?.dispose();
    this.wheel.dispose();
    this.feed.dispose();
    await Promise.allSettled([...this.pending]);
    await this.mirror?.dispose();
  }
}
