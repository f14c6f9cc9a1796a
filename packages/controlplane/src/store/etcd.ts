/**
 * The etcd backend: the Store contract on an etcd v3 cluster (`etcd3`
 * client), so several control-plane replicas share one state.
 *
 * Data flow: Store call -> one read txn (counter + the keys the op touches,
 * at one etcd revision) -> `execute` (txn.ts, the same semantics as the
 * embedded backends) -> one write txn guarded by the counter's mod_revision
 * (retried on conflict) -> etcd watch on `<root>kv` -> batches per store
 * revision -> watchers. Key layout and the revision mapping: etcd-codec.ts.
 *
 * What differs from the embedded backends, honestly:
 * - Store revisions are our own counter, not etcd's (which are cluster-wide).
 *   All writes of one store are serialized through it: across replicas
 *   optimistically (a write that lost the race re-reads and retries within
 *   the call's timeout), within a process by a FIFO queue. The prefix
 *   belongs to Weft: a foreign writer under `<root>kv` is not seen by the
 *   counter and breaks the guarantees.
 * - Watches are delivered from etcd's watch stream, asynchronously after the
 *   write is acknowledged (as for remote writers, there is no other way).
 * - History is etcd's: etcd's own compaction (`--auto-compaction-*`) decides
 *   how far back a watch can start; `historyLimit` does not apply. `compact`
 *   records the store's compaction point and compacts etcd to the matching
 *   etcd revision, which is cluster-wide (it trims other meshes' history too).
 * - Every call is bounded by `timeoutMs`; a failed or timed-out call rejects
 *   with WEFT_ERR_STORE_FAILED. A write whose outcome is unknown (the
 *   connection broke after sending it) is checked through the counter, which
 *   carries the id of the write that set it: either it committed (success)
 *   or WEFT_ERR_STORE_FAILED - never applied twice by a hidden retry.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { type Disposable, isWeftError, newId, toDisposable, tracer, weftError } from "@weft/core";
import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  GRPCAlreadyExistsError,
  GRPCFailedPreconditionError,
  GRPCInvalidArgumentError,
  GRPCNotFoundError,
  GRPCOutOfRangeError,
  GRPCUnauthenticatedError,
  type ICompare,
  type IKeyValue,
  type IOptions,
  type IRequestOp,
  type ITxnResponse,
  type IWatchResponse,
  type Watcher,
} from "etcd3";
import { decodeCounter, EtcdLayout, encodeValue } from "./etcd-codec.js";
import { checkKey, checkPrefix, checkRevision, checkValue } from "./keys.js";
import type {
  DeleteResult,
  KeyValue,
  PutResult,
  RangeOptions,
  RangeResult,
  Store,
  TxnOp,
  TxnRequest,
  TxnResult,
  WatchBatch,
  WatchEvent,
  WatchOptions,
} from "./store.js";
import { type Commit, checkTxn, compareHolds, type Execution, execute } from "./txn.js";

const trace = tracer("store");

/** Ranges per read txn (plus the counter): under etcd's default --max-txn-ops of 128. */
const READ_CHUNK = 100;

/** etcd errors that mean the request was evaluated and refused: not applied, and final. */
const DEFINITE_REJECTIONS = [
  GRPCInvalidArgumentError,
  GRPCFailedPreconditionError,
  GRPCOutOfRangeError,
  GRPCNotFoundError,
  GRPCAlreadyExistsError,
  GRPCUnauthenticatedError,
  EtcdPermissionDeniedError,
  EtcdAuthenticationFailedError,
  EtcdLeaseInvalidError,
];

export const DEFAULT_ETCD_ROOT = "/weft/";
export const DEFAULT_ETCD_TIMEOUT_MS = 5_000;

export interface EtcdStoreOptions {
  /** Endpoints with scheme: "http://127.0.0.1:2379", "https://etcd-1:2379". */
  hosts: readonly string[];
  /** Root prefix of this store's keys; several meshes can share an etcd with different roots. Default "/weft/". */
  root?: string;
  /** TLS: CA bundle, and a client certificate and key for mTLS. */
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
  /** etcd user authentication. */
  auth?: { username: string; password: string };
  /** Bound on each etcd call (and on connecting). Default 5 s. */
  timeoutMs?: number;
}

/** An extra etcd compare every write must pass (leader fencing, ha/leader.ts). */
export interface EtcdFence {
  /** The raw etcd key (e.g. the leader key). */
  key: string;
  /** The create_revision it must still have (the campaign that won). */
  createRevision: string;
}

/** What one read txn saw, at one etcd revision. */
interface Snapshot {
  readonly rev: number;
  /** The counter's etcd mod_revision (0: absent). */
  readonly counterMod: string;
  readonly kvs: Map<string, KeyValue | undefined>;
  readonly scans: Map<string, KeyValue[]>;
  readonly fenceHeld: boolean;
}

// etcd3 retries failed calls through a global cockatiel policy (3 attempts by
// default). A retried txn could apply twice, so writes are never retried
// blindly: this no-op policy runs each call once, and the store decides.
const RUN_ONCE = {
  execute: <T>(fn: (ctx: { signal: AbortSignal; attempt: number }) => Promise<T> | T) =>
    Promise.resolve().then(() => fn({ signal: new AbortController().signal, attempt: 0 })),
} as unknown as NonNullable<NonNullable<IOptions["faultHandling"]>["global"]>;

export class EtcdStore implements Store {
  readonly backend = "etcd";
  readonly layout: EtcdLayout;
  private closed = false;
  private readonly watches = new Set<EtcdWatch>();
  /** This process's writes, one at a time (shared with fenced views of the same client). */
  private readonly writeQueue: WriteQueue;

  private constructor(
    readonly client: Etcd3,
    root: string,
    readonly timeoutMs: number,
    private readonly ownsClient: boolean,
    private readonly fence: EtcdFence | undefined,
    private readonly describe: string,
    writeQueue?: WriteQueue,
  ) {
    this.layout = new EtcdLayout(root);
    this.writeQueue = writeQueue ?? new WriteQueue();
  }

  /** Connects and reads the store's revision (so a bad address fails here, within `timeoutMs`). */
  static async open(opts: EtcdStoreOptions): Promise<EtcdStore> {
    const root = opts.root ?? DEFAULT_ETCD_ROOT;
    checkKey(root, "etcd root prefix");
    const timeoutMs = opts.timeoutMs ?? DEFAULT_ETCD_TIMEOUT_MS;
    if (opts.hosts.length === 0) throw weftError("WEFT_ERR_CONFIG_INVALID", { detail: "etcd: no hosts" });
    const options: IOptions = {
      hosts: [...opts.hosts],
      dialTimeout: timeoutMs,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
      faultHandling: { global: RUN_ONCE },
    };
    if (opts.tls) {
      options.credentials = { rootCertificate: opts.tls.ca };
      if (opts.tls.key) options.credentials.privateKey = opts.tls.key;
      if (opts.tls.cert) options.credentials.certChain = opts.tls.cert;
    }
    if (opts.auth) {
      options.auth = {
        ...opts.auth,
        callOptions: () => ({ deadline: Date.now() + timeoutMs }),
      };
    }
    const client = new Etcd3(options);
    const store = new EtcdStore(client, root, timeoutMs, true, undefined, opts.hosts.join(","));
    try {
      await store.revision();
    } catch (e) {
      client.close();
      if (isWeftError(e, "WEFT_ERR_STORE_CORRUPT")) throw e;
      throw weftError(
        "WEFT_ERR_STORE_FAILED",
        { detail: `cannot use etcd at ${store.describe} (root ${root}): ${errMessage(e)}` },
        { cause: e },
      );
    }
    return store;
  }

  /**
   * A view of this store whose writes also require `fence` to hold (etcd
   * compares it in the same txn): a deposed leader's writes then fail with
   * WEFT_ERR_CONFLICT, whatever its local timers believe. Shares the client;
   * closing the view does not close it.
   */
  fenced(fence: EtcdFence): EtcdStore {
    return new EtcdStore(
      this.client,
      this.layout.root,
      this.timeoutMs,
      false,
      fence,
      this.describe,
      this.writeQueue,
    );
  }

  // --- reads ---------------------------------------------------------------

  async get(key: string): Promise<KeyValue | undefined> {
    this.ensureOpen();
    checkKey(key);
    const res = await this.call(
      "get",
      (o) => this.client.kv.range({ key: this.layout.dataKey(key) }, o),
      true,
    );
    const kv = res.kvs[0];
    return kv ? this.layout.decode(kv) : undefined;
  }

  async range(prefix: string, opts: RangeOptions = {}): Promise<RangeResult> {
    this.ensureOpen();
    checkPrefix(prefix);
    const limit = opts.limit ?? 0;
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw weftError("WEFT_ERR_VALIDATION", { detail: "range limit must be a non-negative integer" });
    }
    const after = opts.startAfter === "" ? undefined : opts.startAfter;
    if (after !== undefined) checkKey(after, "startAfter");
    let { start, end } = this.layout.dataRange(prefix);
    if (after !== undefined) {
      // The smallest key after `after` is `after` + NUL.
      const next = Buffer.concat([this.layout.dataKey(after), Buffer.from([0])]);
      if (Buffer.compare(next, start) > 0) start = next;
    }
    // `startAfter` past the prefix: an empty range (etcd reads start >= end oddly, so do not ask).
    const empty = !(end.length === 1 && end[0] === 0) && Buffer.compare(start, end) >= 0;
    const ops: IRequestOp[] = [{ request_range: { key: this.layout.counterKey } }];
    if (!empty) ops.push({ request_range: { key: start, range_end: end, limit } });
    const res = await this.readTxn("range", ops);
    const data = res.responses[1]?.response_range;
    return {
      kvs: (data?.kvs ?? []).map((kv) => this.layout.decode(kv)),
      revision: decodeCounter(rangeOf(res, 0)[0]).rev,
      more: limit > 0 && data?.more === true,
    };
  }

  async revision(): Promise<number> {
    this.ensureOpen();
    const res = await this.call(
      "revision",
      (o) => this.client.kv.range({ key: this.layout.counterKey }, o),
      true,
    );
    return decodeCounter(res.kvs[0]).rev;
  }

  // --- writes --------------------------------------------------------------

  async put(key: string, value: string): Promise<PutResult> {
    this.ensureOpen();
    checkKey(key);
    checkValue(value);
    const r = await this.mutate([], [{ type: "put", key, value }], []);
    return { revision: r.revision, prev: r.results[0] };
  }

  async delete(key: string): Promise<DeleteResult> {
    this.ensureOpen();
    checkKey(key);
    return deleted(await this.mutate([], [{ type: "delete", key }], []));
  }

  async deletePrefix(prefix: string): Promise<DeleteResult> {
    this.ensureOpen();
    checkPrefix(prefix);
    return deleted(await this.mutate([], [{ type: "deletePrefix", prefix }], []));
  }

  async txn(req: TxnRequest): Promise<TxnResult> {
    this.ensureOpen();
    checkTxn(req);
    const r = await this.mutate(req.compare, req.success, req.failure ?? []);
    return { succeeded: r.succeeded, revision: r.revision, results: r.results };
  }

  /**
   * Read, evaluate, write guarded by the counter; on conflict start over.
   * Compares are evaluated on the snapshot: the counter guard makes the
   * write fail if anything in this store changed since. Writes of this
   * process queue up first (FIFO): they apply in call order, as on the
   * embedded backends, and only other replicas' writes can make one retry
   * (n concurrent writers racing on the counter would cost O(n^2) rounds).
   * The timeout covers the wait in the queue.
   */
  private mutate(
    compare: TxnRequest["compare"],
    success: readonly TxnOp[],
    failure: readonly TxnOp[],
  ): Promise<Execution & { succeeded: boolean; revision: number }> {
    const deadline = Date.now() + this.timeoutMs;
    return this.writeQueue.run(() => {
      if (Date.now() >= deadline) {
        throw weftError("WEFT_ERR_STORE_FAILED", {
          detail: `waited over ${this.timeoutMs} ms behind this server's earlier etcd writes`,
        });
      }
      return this.mutateNow(compare, success, failure, deadline);
    });
  }

  private async mutateNow(
    compare: TxnRequest["compare"],
    success: readonly TxnOp[],
    failure: readonly TxnOp[],
    deadline: number,
  ): Promise<Execution & { succeeded: boolean; revision: number }> {
    const keys = new Set<string>(compare.map((c) => c.key));
    const prefixes = new Set<string>();
    for (const op of [...success, ...failure]) {
      if (op.type === "deletePrefix") prefixes.add(op.prefix);
      else keys.add(op.key);
    }
    for (let attempt = 0; ; attempt++) {
      // First try: a serializable read (no raft round trip to confirm it is current): a stale one
      // makes the counter guard fail and the retry reads linearizably.
      const serializable = attempt === 0;
      const snap = await this.snapshot(keys, prefixes, serializable);
      if (!snap) {
        await this.backOff(attempt, deadline);
        continue;
      }
      if (!snap.fenceHeld) {
        if (serializable) continue; // maybe just stale: ask again, linearizably
        throw fenceLost(this.fence);
      }
      const succeeded = compare.every((c) => compareHolds(snap.kvs.get(c.key), c));
      const ops = succeeded ? success : failure;
      const ex = execute(
        {
          get: (k) => snap.kvs.get(k),
          scan: (p) => snap.scans.get(p) ?? [],
        },
        ops,
        snap.rev + 1,
      );
      if (!ex.commit) {
        // Nothing to write, so no guard: only a linearizable read may answer.
        if (serializable) continue;
        return { ...ex, succeeded, revision: snap.rev };
      }
      const writeId = newId();
      const guard: ICompare[] = [
        { key: this.layout.counterKey, target: "Mod", result: "Equal", mod_revision: snap.counterMod },
      ];
      if (this.fence) {
        guard.push({
          key: Buffer.from(this.fence.key),
          target: "Create",
          result: "Equal",
          create_revision: this.fence.createRevision,
        });
      }
      const writes: IRequestOp[] = [
        {
          request_put: {
            key: this.layout.counterKey,
            value: Buffer.from(`${ex.commit.revision} ${writeId}`),
          },
        },
        ...this.writeOps(ops, ex.commit),
      ];
      let committed: boolean;
      try {
        const res = await this.call("write", (o) =>
          this.client.kv.txn({ compare: guard, success: writes, failure: [] }, o),
        );
        committed = res.succeeded;
      } catch (e) {
        // Throws unless the write certainly committed or certainly did not (then retry).
        committed = await this.committedDespite(e, writeId, snap.counterMod, deadline);
      }
      if (committed) {
        trace("etcd commit", { revision: ex.commit.revision, attempt });
        return { ...ex, succeeded, revision: ex.commit.revision };
      }
      // Another writer moved the counter (or the fence is gone: the next snapshot says which).
      await this.backOff(attempt, deadline);
    }
  }

  /** A short jittered pause before another try, or WEFT_ERR_STORE_FAILED past the deadline. */
  private async backOff(attempt: number, deadline: number): Promise<void> {
    if (Date.now() > deadline) {
      throw weftError("WEFT_ERR_STORE_FAILED", {
        detail: `etcd write kept conflicting with other writers for ${this.timeoutMs} ms`,
      });
    }
    await sleep(Math.random() * Math.min(50, 2 ** attempt));
  }

  /** The etcd ops of a commit: puts, single-key deletes, and one range delete per deletePrefix. */
  private writeOps(ops: readonly TxnOp[], commit: Commit): IRequestOp[] {
    const out: IRequestOp[] = commit.puts.map((kv) => ({
      request_put: { key: this.layout.dataKey(kv.key), value: encodeValue(kv) },
    }));
    const deletedKeys = new Set(commit.deletes);
    for (const op of ops) {
      if (op.type === "delete" && deletedKeys.has(op.key)) {
        out.push({ request_delete_range: { key: this.layout.dataKey(op.key) } });
      } else if (op.type === "deletePrefix" && commit.deletes.some((k) => k.startsWith(op.prefix))) {
        const { start, end } = this.layout.dataRange(op.prefix);
        out.push({ request_delete_range: { key: start, range_end: end } });
      }
    }
    return out;
  }

  /**
   * After a write failed in flight: did it commit anyway? The counter names
   * the last writer. Ours: committed. Unchanged since our read: it did not
   * (false: the caller may retry). Moved by someone else: unknown, so fail.
   */
  private async committedDespite(
    err: unknown,
    writeId: string,
    counterMod: string,
    deadline: number,
  ): Promise<boolean> {
    if (this.closed) throw weftError("WEFT_ERR_STORE_CLOSED");
    const mapped = this.mapError(err, "write");
    // etcd answered with a refusal: nothing was applied, and trying again would not help.
    const raw = isWeftError(err) ? err.cause : err; // `call` wraps etcd3's error as the cause
    if (DEFINITE_REJECTIONS.some((C) => raw instanceof C)) throw mapped;
    if (Date.now() < deadline) {
      try {
        const res = await this.call(
          "write check",
          (o) => this.client.kv.range({ key: this.layout.counterKey }, o),
          true,
        );
        const counter = res.kvs[0];
        if (decodeCounter(counter).writeId === writeId) return true;
        const mod = counter ? String(counter.mod_revision) : "0";
        if (mod === counterMod && Date.now() < deadline) {
          trace("etcd write not applied; retrying", { error: mapped.message });
          return false;
        }
      } catch {
        // Unknown outcome; the original error says why.
      }
    }
    throw mapped;
  }

  /**
   * Reads the counter and everything a write touches at one point. etcd caps
   * the ops of one txn (`--max-txn-ops`, default 128), so reads go in chunks,
   * each with the counter: if it moved between chunks the snapshot is torn
   * and undefined comes back (the caller retries, as on a conflict).
   */
  private async snapshot(
    keys: Iterable<string>,
    prefixes: Iterable<string>,
    serializable = false,
  ): Promise<Snapshot | undefined> {
    const keyList = [...keys];
    const prefixList = [...prefixes];
    const reads: IRequestOp[] = keyList.map((k) => ({ request_range: { key: this.layout.dataKey(k) } }));
    for (const p of prefixList) {
      const { start, end } = this.layout.dataRange(p);
      reads.push({ request_range: { key: start, range_end: end } });
    }
    if (this.fence) reads.push({ request_range: { key: Buffer.from(this.fence.key), keys_only: true } });
    const results: IKeyValue[][] = [];
    let counter: IKeyValue | undefined;
    let counterMod: string | undefined;
    for (let i = 0; i === 0 || i < reads.length; i += READ_CHUNK) {
      const ops = [{ request_range: { key: this.layout.counterKey } }, ...reads.slice(i, i + READ_CHUNK)];
      if (serializable) for (const op of ops) if (op.request_range) op.request_range.serializable = true;
      const res = await this.readTxn("read", ops);
      const c = rangeOf(res, 0)[0];
      const mod = c ? String(c.mod_revision) : "0";
      if (counterMod !== undefined && mod !== counterMod) return undefined;
      counter = c;
      counterMod = mod;
      for (let j = 1; j < res.responses.length; j++) results.push(rangeOf(res, j));
    }
    const kvs = new Map<string, KeyValue | undefined>();
    keyList.forEach((k, i) => {
      const kv = results[i]?.[0];
      kvs.set(k, kv ? this.layout.decode(kv) : undefined);
    });
    const scans = new Map<string, KeyValue[]>();
    prefixList.forEach((p, i) => {
      scans.set(
        p,
        (results[keyList.length + i] ?? []).map((kv) => this.layout.decode(kv)),
      );
    });
    let fenceHeld = true;
    if (this.fence) {
      const f = results[reads.length - 1]?.[0];
      fenceHeld = f !== undefined && String(f.create_revision) === this.fence.createRevision;
    }
    return {
      rev: decodeCounter(counter).rev,
      counterMod: counterMod ?? "0",
      kvs,
      scans,
      fenceHeld,
    };
  }

  // --- watch and compaction ------------------------------------------------

  async watch(
    prefix: string,
    onBatch: (batch: WatchBatch) => void,
    opts: WatchOptions = {},
  ): Promise<Disposable> {
    this.ensureOpen();
    checkPrefix(prefix);
    if (opts.fromRevision !== undefined) checkRevision(opts.fromRevision, "watch fromRevision");
    const { cur, compacted, etcdRevision } = await this.positions();
    const from = opts.fromRevision ?? cur.rev;
    if (from < compacted.rev) {
      throw weftError("WEFT_ERR_STORE_COMPACTED", { revision: from, oldest: compacted.rev });
    }
    // etcd revision to start from: just after the one that wrote store revision `from`.
    const start = from >= cur.rev ? etcdRevision + 1 : (await this.locate(from, cur, compacted)) + 1;
    if (start <= etcdRevision) {
      // etcd refuses a watch from before its own compaction asynchronously; ask now.
      await this.call(
        "watch",
        (o) => this.client.kv.range({ key: this.layout.counterKey, revision: start }, o),
        true,
      );
    }
    const w = new EtcdWatch(this, prefix, onBatch, opts.onError, from, start, () => this.watches.delete(w));
    this.watches.add(w);
    try {
      await w.start();
    } catch (e) {
      this.watches.delete(w);
      throw this.mapError(e, "watch");
    }
    return toDisposable(() => w.dispose());
  }

  async compact(revision: number): Promise<void> {
    this.ensureOpen();
    checkRevision(revision, "compact revision");
    const { cur, compacted } = await this.positions();
    if (revision > cur.rev) {
      throw weftError("WEFT_ERR_VALIDATION", {
        detail: `cannot compact to revision ${revision}: the current revision is ${cur.rev}`,
      });
    }
    if (revision <= compacted.rev) return;
    const etcdRev = await this.locate(revision, cur, compacted);
    // The store's compaction point first (watches check it), then etcd's history.
    await this.call("compact", (o) =>
      this.client.kv.txn(
        {
          compare: [
            { key: this.layout.compactedKey, target: "Mod", result: "Equal", mod_revision: compacted.mod },
          ],
          success: [
            { request_put: { key: this.layout.compactedKey, value: Buffer.from(`${revision} ${etcdRev}`) } },
          ],
        },
        o,
      ),
    );
    if (etcdRev > 0) {
      await this.call("compact", (o) =>
        this.client.kv.compact({ revision: etcdRev, physical: true }, o),
      ).catch((e: unknown) => {
        // Already compacted further (by etcd's auto-compaction or another mesh): fine.
        if (!isWeftError(e, "WEFT_ERR_STORE_COMPACTED")) throw e;
      });
    }
  }

  /** The counter, the compaction point and the etcd revision they were read at. */
  private async positions() {
    const res = await this.readTxn("read", [
      { request_range: { key: this.layout.counterKey } },
      { request_range: { key: this.layout.compactedKey } },
    ]);
    const counter = rangeOf(res, 0)[0];
    const c = rangeOf(res, 1)[0];
    const cm = c ? /^(\d+) (\d+)$/.exec(c.value.toString("latin1")) : null;
    return {
      etcdRevision: Number(res.header.revision),
      cur: {
        rev: decodeCounter(counter).rev,
        mod: counter ? Number(counter.mod_revision) : 0,
        create: counter ? Number(counter.create_revision) : 0,
      },
      compacted: {
        rev: cm ? Number(cm[1]) : 0,
        etcd: cm ? Number(cm[2]) : 0,
        mod: c ? String(c.mod_revision) : "0",
      },
    };
  }

  /**
   * The etcd revision that wrote store revision `rev` (0 for revision 0: the
   * etcd revision before the store's first write). The counter's value is
   * non-decreasing in etcd revisions, so this is a search over historical
   * reads of the counter; the first probe assumes this store is etcd's only
   * writer, which is then exact.
   */
  private async locate(
    rev: number,
    cur: { rev: number; mod: number; create: number },
    compacted: { etcd: number },
  ): Promise<number> {
    if (rev === cur.rev) return cur.mod;
    if (rev === 0) return cur.create - 1;
    let lo = Math.max(cur.create, compacted.etcd);
    let hi = cur.mod;
    let probe = Math.min(hi, Math.max(lo, cur.mod - (cur.rev - rev)));
    while (lo <= hi) {
      const at = probe;
      const res = await this.call(
        "history",
        (o) => this.client.kv.range({ key: this.layout.counterKey, revision: at }, o),
        true,
      );
      const kv = res.kvs[0];
      const seen = decodeCounter(kv).rev;
      if (kv && seen === rev) return Number(kv.mod_revision);
      if (seen < rev) lo = at + 1;
      else hi = at - 1;
      probe = Math.floor((lo + hi) / 2);
    }
    throw weftError("WEFT_ERR_STORE_COMPACTED", { revision: rev, oldest: "unknown (etcd history)" });
  }

  // --- lifecycle -----------------------------------------------------------

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closing = [...this.watches].map((w) => w.fail(weftError("WEFT_ERR_STORE_CLOSED")));
    await Promise.all(closing);
    if (this.ownsClient) this.client.close();
  }

  dispose(): Promise<void> {
    return this.close();
  }

  get watchCount(): number {
    return this.watches.size;
  }

  ensureOpen(): void {
    if (this.closed) throw weftError("WEFT_ERR_STORE_CLOSED");
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private readTxn(what: string, ops: IRequestOp[]): Promise<ITxnResponse> {
    return this.call(what, (o) => this.client.kv.txn({ compare: [], success: ops, failure: [] }, o), true);
  }

  /**
   * One etcd call, bounded by the timeout (also when the client hangs before
   * sending), errors mapped. `retry` (reads only: they are idempotent)
   * repeats a failed call until the timeout, so a dead host in a host list
   * or a leader change inside etcd costs a retry, not an error.
   */
  async call<T>(what: string, fn: (opts: { deadline: number }) => Promise<T>, retry = false): Promise<T> {
    this.ensureOpen();
    const deadline = Date.now() + this.timeoutMs;
    for (let attempt = 0; ; attempt++) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer from etcd within ${this.timeoutMs} ms`)),
          Math.max(0, deadline - Date.now()) + 250,
        );
      });
      try {
        return await Promise.race([fn({ deadline }), timeout]);
      } catch (e) {
        const err = this.mapError(e, what);
        const again =
          retry &&
          isWeftError(err, "WEFT_ERR_STORE_FAILED") &&
          !DEFINITE_REJECTIONS.some((C) => e instanceof C) &&
          Date.now() + 50 < deadline;
        if (!again) throw err;
        trace("etcd read retry", { what, attempt, error: err.message });
        await sleep(Math.min(25 * 2 ** attempt, 250, Math.max(0, deadline - Date.now() - 25)));
      } finally {
        clearTimeout(timer);
      }
    }
  }

  mapError(e: unknown, what: string): Error {
    if (isWeftError(e)) return e;
    if (this.closed) return weftError("WEFT_ERR_STORE_CLOSED");
    const msg = errMessage(e);
    if (/too many operations in txn/i.test(msg)) {
      return weftError(
        "WEFT_ERR_STORE_FAILED",
        {
          detail: `etcd ${what}: the txn has more operations than etcd allows (its --max-txn-ops, default 128; raise it on every member): ${msg}`,
        },
        { cause: e },
      );
    }
    if (/compacted/i.test(msg)) {
      return weftError("WEFT_ERR_STORE_COMPACTED", {
        revision: "requested",
        oldest: "etcd's compaction point",
      });
    }
    return weftError(
      "WEFT_ERR_STORE_FAILED",
      { detail: `etcd ${what} at ${this.describe}: ${msg}` },
      { cause: e },
    );
  }
}

/** A FIFO of async jobs, one at a time; a failed job does not stop the next. */
class WriteQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const job = this.tail.then(fn, fn);
    this.tail = job.catch(() => {});
    return job;
  }
}

function rangeOf(res: ITxnResponse, i: number): IKeyValue[] {
  return res.responses[i]?.response_range?.kvs ?? [];
}

function deleted(r: Execution & { revision: number }): DeleteResult {
  return {
    revision: r.revision,
    deleted: r.commit ? r.commit.batch.events.map((e) => e.prev as KeyValue) : [],
  };
}

function fenceLost(fence: EtcdFence | undefined): Error {
  return weftError("WEFT_ERR_CONFLICT", {
    detail: `not the leader any more (fence ${fence?.key} changed); write refused`,
  });
}

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * One store watch on etcd's watch stream. etcd3's Watcher reconnects by
 * itself; it resumes from the revision in the last response header, which
 * during a catch-up can lie beyond the events actually received, so the
 * resume point is reset here to just after the last event seen. Events of
 * one etcd revision arrive in one response (fragmenting is off), and the
 * counter put among them names their store revision; a store revision at or
 * below the cursor (a replay after reconnecting) is skipped.
 */
class EtcdWatch {
  private watcher: Watcher | undefined;
  private done = false;
  private etcdCursor: number;

  constructor(
    private readonly store: EtcdStore,
    private readonly prefix: string,
    private readonly onBatch: (batch: WatchBatch) => void,
    private readonly onError: ((err: Error) => void) | undefined,
    private cursor: number,
    startEtcd: number,
    private readonly forget: () => void,
  ) {
    this.etcdCursor = startEtcd - 1;
  }

  async start(): Promise<void> {
    const { start, end } = this.store.layout.watchRange();
    const watcher = this.store.client
      .watch()
      .inRange({ start, end })
      .withPreviousKV()
      .startRevision(String(this.etcdCursor + 1))
      .watcher();
    this.watcher = watcher;
    watcher.on("data", (res: IWatchResponse) => this.onData(res));
    watcher.on("connected", () => this.pinResume());
    watcher.on("disconnected", (err: Error) => {
      this.pinResume();
      trace("etcd watch disconnected; resuming", { prefix: this.prefix, error: err.message });
    });
    watcher.on("error", (err: Error) => {
      void this.fail(this.store.mapError(err, "watch"));
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        watcher.once("connected", () => resolve());
        watcher.once("error", reject);
        timer = setTimeout(
          () => reject(new Error(`watch not established within ${this.store.timeoutMs} ms`)),
          this.store.timeoutMs,
        );
      });
    } catch (e) {
      this.done = true;
      await this.cancel();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  private pinResume(): void {
    if (this.watcher) this.watcher.request.start_revision = this.etcdCursor + 1;
  }

  private onData(res: IWatchResponse): void {
    if (this.done) return;
    try {
      if (res.events.length === 0) {
        // A progress notification: everything up to the header revision was sent.
        this.etcdCursor = Math.max(this.etcdCursor, Number(res.header.revision));
      }
      let i = 0;
      while (i < res.events.length && !this.done) {
        const etcdRev = String(res.events[i]?.kv.mod_revision);
        let j = i;
        while (j < res.events.length && String(res.events[j]?.kv.mod_revision) === etcdRev) j++;
        this.group(res.events.slice(i, j), Number(etcdRev));
        i = j;
      }
    } catch (e) {
      void this.fail(e instanceof Error ? e : new Error(String(e)));
    } finally {
      this.pinResume();
    }
  }

  private group(evs: IWatchResponse["events"], etcdRev: number): void {
    const layout = this.store.layout;
    this.etcdCursor = Math.max(this.etcdCursor, etcdRev);
    const counter = evs.find((e) => e.type === "Put" && layout.isCounter(e.kv.key));
    if (!counter) {
      trace("etcd watch: write without a store revision under the prefix; ignored", { etcdRev });
      return;
    }
    const revision = decodeCounter(counter.kv).rev;
    if (revision <= this.cursor) return;
    this.cursor = revision;
    const events: WatchEvent[] = [];
    for (const e of evs) {
      if (layout.isCounter(e.kv.key)) continue;
      const key = layout.weftKey(e.kv.key);
      if (!key.startsWith(this.prefix)) continue;
      const prev = e.prev_kv ? layout.decode(e.prev_kv) : undefined;
      if (e.type === "Put") events.push({ type: "put", kv: layout.decode(e.kv), prev });
      else events.push({ type: "delete", key, revision, prev });
    }
    if (events.length === 0) return;
    const batch: WatchBatch = Object.freeze({ revision, events: Object.freeze(events) });
    try {
      this.onBatch(batch);
    } catch (e) {
      // A throwing callback is a consumer bug: end its watch loudly (as WatchHub does).
      void this.fail(e instanceof Error ? e : new Error(String(e)));
    }
  }

  /** Ends the watch with `err` (reported once). */
  async fail(err: Error): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.forget();
    trace("etcd watch ended", { prefix: this.prefix, cursor: this.cursor, error: err.message });
    if (this.onError) {
      try {
        this.onError(err);
      } catch (e) {
        process.emitWarning(`store watch onError threw: ${String(e)}`);
      }
    } else if (!isWeftError(err, "WEFT_ERR_STORE_CLOSED")) {
      process.emitWarning(`store watch on "${this.prefix}" ended: ${err.message}`);
    }
    await this.cancel();
  }

  async dispose(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.forget();
    await this.cancel();
  }

  /** Cancels the etcd watcher, bounded: a cancel on a dead connection must not hang a close. */
  private async cancel(): Promise<void> {
    const w = this.watcher;
    if (!w) return;
    this.watcher = undefined;
    w.removeAllListeners("data");
    w.on("error", () => {});
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      w.cancel().catch(() => {}),
      new Promise<void>((r) => {
        timer = setTimeout(r, 1_000);
      }),
    ]);
    clearTimeout(timer);
  }
}
