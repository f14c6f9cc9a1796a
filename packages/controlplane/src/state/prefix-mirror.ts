/**
 * Keeps an in-memory view of one store prefix: a range read, then a watch
 * from that revision. Reads are served from memory, and the same code works
 * when another replica writes (the watch brings its changes in).
 *
 * Writers call `waitApplied(revision)` after their write so that a read
 * right after a successful write sees it (read-your-writes).
 */
import type { Disposable } from "@weft/core";
import type { KeyValue, Store, WatchBatch } from "../store/store.js";

export interface MirrorHandlers {
  /** The initial state, read at `revision`. */
  load(kvs: readonly KeyValue[], revision: number): void;
  /** Every later batch touching the prefix, in revision order. Must not throw. */
  apply(batch: WatchBatch): void;
  /** The watch broke (store closed, compacted); the view is now stale. */
  onError?(err: Error): void;
}

export class PrefixMirror implements Disposable {
  private appliedRevision = 0;
  private waiters: { rev: number; resolve: () => void }[] = [];
  private watch: Disposable | undefined;
  private closed = false;

  private constructor(
    readonly prefix: string,
    private readonly handlers: MirrorHandlers,
  ) {}

  static async open(store: Store, prefix: string, handlers: MirrorHandlers): Promise<PrefixMirror> {
    const m = new PrefixMirror(prefix, handlers);
    const r = await store.range(prefix);
    m.appliedRevision = r.revision;
    handlers.load(r.kvs, r.revision);
    m.watch = await store.watch(prefix, (batch) => m.onBatch(batch), {
      fromRevision: r.revision,
      onError: (err) => {
        handlers.onError?.(err);
        m.releaseAll();
      },
    });
    return m;
  }

  /** The revision of the last batch applied (or of the initial read). */
  get revision(): number {
    return this.appliedRevision;
  }

  private onBatch(batch: WatchBatch): void {
    if (batch.revision <= this.appliedRevision) return;
    this.appliedRevision = batch.revision;
    this.handlers.apply(batch);
    if (this.waiters.length === 0) return;
    const due = this.waiters.filter((w) => w.rev <= this.appliedRevision);
    this.waiters = this.waiters.filter((w) => w.rev > this.appliedRevision);
    for (const w of due) w.resolve();
  }

  /** Resolves once the batch of `revision` (a write to this prefix) has been applied. */
  waitApplied(revision: number): Promise<void> {
    if (revision <= this.appliedRevision || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ rev: revision, resolve }));
  }

  private releaseAll(): void {
    const all = this.waiters;
    this.waiters = [];
    for (const w of all) w.resolve();
  }

  async dispose(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.releaseAll();
    await this.watch?.dispose();
  }
}
