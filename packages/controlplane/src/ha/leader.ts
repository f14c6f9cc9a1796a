/**
 * Leader election on etcd, for work that must happen once in a replicated
 * control plane (TTL expiry and health reaping; CA key use when gated).
 *
 * Data flow: lease grant -> campaign txn (put the leader key with the lease
 * if it does not exist) -> while leader: keepalives extend a local deadline,
 * a periodic read checks the key is still ours -> `isLeader()` / change
 * events -> gated duties; `fence()` names the key revision that writes can
 * compare (EtcdStore.fenced), so a deposed leader's writes fail in etcd.
 *
 * Why not etcd3's `Election`: the safety argument needs the time each
 * keepalive was SENT. etcd counts a lease's TTL from when it processes the
 * grant or keepalive, which is after we sent it, so "sent at + TTL" is a
 * lower bound of the server's expiry. We consider ourselves leader only
 * until that bound minus `marginMs` (clock rate differences, event-loop
 * stalls): a partitioned leader steps down on its own before etcd expires
 * its lease, i.e. before any other replica can win. `isLeader()` compares the
 * clock on every call, so a late step-down timer cannot extend leadership.
 */

import { type Disposable, toDisposable } from "@weft/core";
import type { Etcd3 } from "etcd3";
import type { Logger } from "pino";
import type { EtcdFence } from "../store/etcd.js";

export const DEFAULT_LEASE_TTL_MS = 10_000;

export interface LeaderElectionOptions {
  client: Etcd3;
  /** The raw etcd key of this election (e.g. "/weft/leader/duties"). */
  key: string;
  /** Who we are (shown as the key's value): e.g. "host:pid http://addr". */
  id: string;
  /** Lease TTL; rounded up to whole seconds (etcd's unit), at least 2 s. Default 10 s. */
  ttlMs?: number;
  /** Step down this long before the lease can have expired. Default max(500 ms, TTL/5). */
  marginMs?: number;
  /** How often a follower retries the campaign and a leader re-reads its key. Default min(1 s, TTL/5). */
  retryMs?: number;
  logger?: Logger;
}

export type LeaderListener = (leader: boolean) => void;

interface Term {
  readonly leaseId: string;
  readonly createRevision: string;
}

export class LeaderElection implements Disposable {
  readonly key: string;
  readonly id: string;
  readonly ttlMs: number;
  readonly marginMs: number;
  private readonly retryMs: number;
  private readonly client: Etcd3;
  private readonly log: Logger | undefined;
  private readonly listeners = new Set<LeaderListener>();
  /** The lease we hold (granted, not known expired) and how long it surely lives. */
  private lease: { id: string; validUntil: number } | undefined;
  private term: Term | undefined;
  /** The leader key's value: `id`, then the advertised API URL once known ("id url"). */
  private value: string;
  private announced = false;
  private stopped = false;
  /** Wakes the loops' pauses at once (dispose). */
  private readonly wakers = new Set<() => void>();
  private stepDownTimer: NodeJS.Timeout | undefined;
  private readonly loops: Promise<void>[] = [];

  private constructor(opts: LeaderElectionOptions) {
    this.client = opts.client;
    this.key = opts.key;
    this.id = opts.id;
    this.ttlMs = Math.max(2, Math.ceil((opts.ttlMs ?? DEFAULT_LEASE_TTL_MS) / 1000)) * 1000;
    this.marginMs = opts.marginMs ?? Math.max(500, this.ttlMs / 5);
    if (this.marginMs >= this.ttlMs / 2) this.marginMs = this.ttlMs / 2;
    this.retryMs = opts.retryMs ?? Math.min(1_000, this.ttlMs / 5);
    this.log = opts.logger;
    this.value = opts.id;
  }

  /** Starts campaigning in the background; listen with `onChange`. */
  static start(opts: LeaderElectionOptions): LeaderElection {
    const e = new LeaderElection(opts);
    e.loops.push(e.campaignLoop(), e.keepAliveLoop());
    return e;
  }

  /** True only while we hold the leader key and our lease surely lives (checked against the clock now). */
  isLeader(): boolean {
    return this.term !== undefined && this.lease !== undefined && Date.now() < this.stepDownAt();
  }

  /** The compare that fences writes to our term (undefined when not leader). */
  fence(): EtcdFence | undefined {
    return this.isLeader() && this.term
      ? { key: this.key, createRevision: this.term.createRevision }
      : undefined;
  }

  /** Called with true on gaining leadership and false on losing it. */
  onChange(fn: LeaderListener): Disposable {
    this.listeners.add(fn);
    return toDisposable(() => {
      this.listeners.delete(fn);
    });
  }

  /**
   * Publishes this replica's API URL with the leader key while it leads (written by the
   * leader's periodic key check, within `retryMs`), so that followers can forward
   * leader-only requests (ha/leader-forward.ts).
   */
  advertise(url: string): void {
    this.value = `${this.id} ${url}`;
  }

  /** The current leader's advertised API URL, if it published one. */
  async leaderUrl(): Promise<string | undefined> {
    const v = await this.holder();
    const sp = v?.indexOf(" ") ?? -1;
    return v !== undefined && sp > 0 ? v.slice(sp + 1) : undefined;
  }

  /** The current holder's id as stored in etcd (for status output). */
  async holder(): Promise<string | undefined> {
    const res = await this.client.kv.range(
      { key: Buffer.from(this.key) },
      { deadline: Date.now() + this.ttlMs },
    );
    return res.kvs[0]?.value.toString("utf8");
  }

  /** Resigns (deletes our key, revokes the lease) and stops. */
  async dispose(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const w of [...this.wakers]) w();
    const lease = this.lease;
    const term = this.term;
    this.stepDown("stopping");
    this.lease = undefined;
    await Promise.allSettled(this.loops);
    const deadline = Date.now() + Math.min(2_000, this.ttlMs);
    if (term) {
      await this.client.kv
        .txn(
          {
            compare: [
              {
                key: Buffer.from(this.key),
                target: "Create",
                result: "Equal",
                create_revision: term.createRevision,
              },
            ],
            success: [{ request_delete_range: { key: Buffer.from(this.key) } }],
          },
          { deadline },
        )
        .catch(() => {});
    }
    if (lease) await this.client.leaseClient.leaseRevoke({ ID: lease.id }, { deadline }).catch(() => {});
  }

  // --- internals -----------------------------------------------------------

  private stepDownAt(): number {
    return (this.lease?.validUntil ?? 0) - this.marginMs;
  }

  private async campaignLoop(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.campaignOnce();
      } catch (err) {
        this.log?.warn({ err }, "leader election: etcd call failed");
      }
      await this.pause(this.retryMs);
    }
  }

  private async campaignOnce(): Promise<void> {
    const deadline = Date.now() + Math.min(this.ttlMs / 2, 5_000);
    const key = Buffer.from(this.key);
    if (!this.lease) {
      const sentAt = Date.now();
      const res = await this.client.leaseClient.leaseGrant({ TTL: this.ttlMs / 1000, ID: 0 }, { deadline });
      if (this.stopped) {
        await this.client.leaseClient.leaseRevoke({ ID: res.ID }, { deadline }).catch(() => {});
        return;
      }
      this.lease = { id: String(res.ID), validUntil: sentAt + Number(res.TTL) * 1000 };
    }
    const lease = this.lease;
    if (this.term) {
      // Leader: is the key still ours? (Deleted by hand, or our lease expired in etcd.)
      const res = await this.client.kv.range({ key }, { deadline });
      const kv = res.kvs[0];
      if (!kv || String(kv.create_revision) !== this.term.createRevision) {
        this.stepDown("leader key lost");
      } else if (kv.value.toString("utf8") !== this.value) {
        // Same term (create revision compared), same lease: only the advertised value changes.
        await this.client.kv.txn(
          {
            compare: [{ key, target: "Create", result: "Equal", create_revision: this.term.createRevision }],
            success: [{ request_put: { key, value: Buffer.from(this.value), lease: this.term.leaseId } }],
          },
          { deadline },
        );
      }
      return;
    }
    const res = await this.client.kv.txn(
      {
        compare: [{ key, target: "Create", result: "Equal", create_revision: 0 }],
        success: [{ request_put: { key, value: Buffer.from(this.value), lease: lease.id } }],
        failure: [{ request_range: { key } }],
      },
      { deadline },
    );
    if (this.stopped || this.lease !== lease) return;
    if (res.succeeded) {
      this.becomeLeader({ leaseId: lease.id, createRevision: String(res.header.revision) });
      return;
    }
    const holder = res.responses[0]?.response_range?.kvs[0];
    if (holder && String(holder.lease) === lease.id) {
      // Our own key from this lease (our answer was lost, or we stepped down on time but kept the lease).
      this.becomeLeader({ leaseId: lease.id, createRevision: String(holder.create_revision) });
    }
  }

  private becomeLeader(term: Term): void {
    if (Date.now() >= this.stepDownAt()) return; // the lease is too close to its end to lead on it
    this.term = term;
    this.armStepDown();
    if (!this.announced) {
      this.announced = true;
      this.log?.info({ key: this.key, id: this.id, createRevision: term.createRevision }, "became leader");
      this.emit(true);
    }
  }

  /** A timer at the local deadline, so listeners hear of the loss on time (isLeader() does not need it). */
  private armStepDown(): void {
    clearTimeout(this.stepDownTimer);
    if (!this.term) return;
    this.stepDownTimer = setTimeout(
      () => {
        if (this.term && Date.now() >= this.stepDownAt()) {
          this.stepDown("lease not renewed in time");
          // Keep the lease record only if it can still be alive in etcd: the key may come back to us.
          if (this.lease && Date.now() >= this.lease.validUntil) this.lease = undefined;
        } else this.armStepDown();
      },
      Math.max(0, this.stepDownAt() - Date.now()),
    );
  }

  private stepDown(why: string): void {
    clearTimeout(this.stepDownTimer);
    this.term = undefined;
    if (this.announced) {
      this.announced = false;
      this.log?.warn({ key: this.key, id: this.id, why }, "lost leadership");
      this.emit(false);
    }
  }

  private emit(leader: boolean): void {
    for (const fn of [...this.listeners]) {
      try {
        fn(leader);
      } catch (err) {
        this.log?.error({ err }, "leader listener threw");
      }
    }
  }

  /** Keeps the lease alive every TTL/3; each answer extends the local deadline from its send time. */
  private async keepAliveLoop(): Promise<void> {
    while (!this.stopped) {
      await this.pause(this.ttlMs / 3);
      const lease = this.lease;
      if (!lease || this.stopped) continue;
      if (Date.now() >= lease.validUntil) {
        // Expired in etcd for sure: forget it; the campaign loop grants a new one.
        this.lease = undefined;
        this.stepDown("lease expired");
        continue;
      }
      const sentAt = Date.now();
      try {
        const ttl = await this.keepAliveOnce(lease.id, sentAt + this.ttlMs / 3);
        if (this.lease !== lease) continue;
        if (ttl <= 0) {
          this.lease = undefined;
          this.stepDown("lease expired in etcd");
        } else {
          lease.validUntil = Math.max(lease.validUntil, sentAt + ttl * 1000);
          if (this.term) this.armStepDown();
        }
      } catch (err) {
        this.log?.warn({ err, lease: lease.id }, "leader election: keepalive failed");
      }
    }
  }

  private async keepAliveOnce(id: string, deadline: number): Promise<number> {
    const stream = await this.client.leaseClient.leaseKeepAlive({ deadline });
    try {
      return await new Promise<number>((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error("keepalive timed out")),
          Math.max(0, deadline - Date.now()),
        );
        stream.on("data", (res: { TTL: string }) => {
          clearTimeout(t);
          resolve(Number(res.TTL));
        });
        stream.on("error", (err: Error) => {
          clearTimeout(t);
          reject(err);
        });
        stream.write({ ID: id });
      });
    } finally {
      stream.end();
    }
  }

  private pause(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wakers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }
}
