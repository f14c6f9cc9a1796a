/**
 * Heartbeats shared between control-plane replicas on one store (etcd).
 *
 * Data flow: a replica receives a heartbeat -> `heard()` notes the check ->
 * within a quarter of that check's TTL, one put of this replica's digest key
 * (`/ha/heartbeats/<replica>`) with every check heard since the last put ->
 * every other replica's watch -> `onRemote` -> the catalog moves that
 * check's last report forward. The leader's expiry thus sees heartbeats
 * received by ANY replica, and reads on every replica agree.
 *
 * Cost: at most one write per replica per flush period (TTL/4, bounded
 * below by `minFlushMs`), whatever the number of instances and heartbeats;
 * nothing at all while no heartbeat arrives. The digest holds ages, not
 * timestamps ("heard 120 ms before this put"): the receiver computes
 * `now - age` on its own clock, so clock skew between hosts does not matter
 * and the watch delay only makes a report look later (never an early expiry).
 *
 * The initial contents of other replicas' keys are NOT applied (they may be
 * from a dead replica, long ago): like a restart, a new replica counts TTLs
 * from its start. The key is deleted on dispose; a crashed replica's key is
 * left behind, harmless for that reason.
 */
import { type Clock, type Disposable, systemClock, type TimerHandle } from "@weft/core";
import type { Logger } from "pino";
import type { Store, WatchBatch } from "../store/store.js";

export const HEARTBEATS_PREFIX = "/ha/heartbeats/";

/** One remote report: instance id, check id, milliseconds since it was heard (at the sender's put). */
export interface RemoteHeartbeat {
  readonly id: string;
  readonly checkId: string;
  readonly ageMs: number;
}

export interface HeartbeatShareOptions {
  store: Store;
  /** Unique per replica (process): names the digest key. */
  replicaId: string;
  clock?: Clock;
  logger?: Logger;
  /** Called with the reports another replica received. Must not throw. */
  onRemote: (reports: readonly RemoteHeartbeat[]) => void;
  /** Lower bound of the flush period. Default 50 ms. */
  minFlushMs?: number;
  /** Upper bound of the flush period. Default 5 s. */
  maxFlushMs?: number;
}

interface Digest {
  v: 1;
  /** [instance id, check id, age ms] */
  checks: [string, string, number][];
}

export class HeartbeatShare implements Disposable {
  readonly key: string;
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly log: Logger | undefined;
  private readonly onRemote: HeartbeatShareOptions["onRemote"];
  private readonly minFlushMs: number;
  private readonly maxFlushMs: number;
  /** Checks heard since the last put: "id\0checkId" -> heard at (epoch ms). */
  private pending = new Map<string, number>();
  private timer: TimerHandle | undefined;
  private flushAt = Number.POSITIVE_INFINITY;
  private flushing: Promise<void> | undefined;
  private watch: Disposable | undefined;
  private disposed = false;
  /** Puts done (for tests and the load measurement). */
  writes = 0;

  private constructor(opts: HeartbeatShareOptions) {
    this.store = opts.store;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.logger;
    this.onRemote = opts.onRemote;
    this.key = `${HEARTBEATS_PREFIX}${opts.replicaId}`;
    this.minFlushMs = opts.minFlushMs ?? 50;
    this.maxFlushMs = opts.maxFlushMs ?? 5_000;
  }

  static async open(opts: HeartbeatShareOptions): Promise<HeartbeatShare> {
    const s = new HeartbeatShare(opts);
    s.watch = await s.store.watch(HEARTBEATS_PREFIX, (b) => s.onBatch(b), {
      onError: (err) => s.log?.error({ err }, "heartbeat share watch broke; remote heartbeats are not seen"),
    });
    return s;
  }

  /** A heartbeat of a check with TTL `ttlMs` was received here: others hear of it within TTL/4. */
  heard(id: string, checkId: string, ttlMs: number): void {
    if (this.disposed) return;
    this.pending.set(`${id}\u0000${checkId}`, this.clock.now());
    const period = Math.min(this.maxFlushMs, Math.max(this.minFlushMs, ttlMs / 4));
    const at = this.clock.now() + period;
    if (at < this.flushAt) {
      this.flushAt = at;
      this.timer?.cancel();
      this.timer = this.clock.setTimeout(() => void this.flush(), period);
    }
  }

  /** Writes the digest of the checks heard since the last put (now; tests). */
  flush(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    this.flushAt = Number.POSITIVE_INFINITY;
    if (this.flushing) return this.flushing.then(() => this.flush());
    if (this.pending.size === 0 || this.disposed) return Promise.resolve();
    const batch = this.pending;
    this.pending = new Map();
    const now = this.clock.now();
    const digest: Digest = { v: 1, checks: [] };
    for (const [k, at] of batch) {
      const sep = k.indexOf("\u0000");
      digest.checks.push([k.slice(0, sep), k.slice(sep + 1), Math.max(0, now - at)]);
    }
    this.flushing = this.store
      .put(this.key, JSON.stringify(digest))
      .then(
        () => {
          this.writes++;
        },
        (err: unknown) => {
          if (this.disposed) return;
          // Put the reports back (newer ones win) and try again a bit later.
          for (const [k, at] of batch) if (!this.pending.has(k)) this.pending.set(k, at);
          this.log?.warn({ err }, "heartbeat digest write failed; retrying");
          this.flushAt = this.clock.now() + this.maxFlushMs / 5;
          this.timer = this.clock.setTimeout(() => void this.flush(), this.maxFlushMs / 5);
        },
      )
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  private onBatch(batch: WatchBatch): void {
    for (const ev of batch.events) {
      if (ev.type !== "put" || ev.kv.key === this.key) continue;
      let digest: Digest;
      try {
        digest = JSON.parse(ev.kv.value) as Digest;
      } catch {
        continue;
      }
      if (digest?.v !== 1 || !Array.isArray(digest.checks)) continue;
      const reports: RemoteHeartbeat[] = [];
      for (const c of digest.checks) {
        if (!Array.isArray(c) || typeof c[0] !== "string" || typeof c[1] !== "string") continue;
        const age = Number(c[2]);
        reports.push({ id: c[0], checkId: c[1], ageMs: Number.isFinite(age) && age > 0 ? age : 0 });
      }
      if (reports.length > 0) this.onRemote(reports);
    }
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.timer?.cancel();
    await this.flushing;
    await this.watch?.dispose();
    await this.store.delete(this.key).catch(() => {});
  }
}
