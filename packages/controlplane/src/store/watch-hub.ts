/**
 * Watch delivery shared by the embedded backends.
 *
 * A watcher is either replaying (reading history pages from its cursor) or
 * live (fed by `publish` right after each commit). The switch from replaying
 * to live happens in the same synchronous step as the last history read, and
 * writes are synchronous too, so no commit can fall between the two: no gap
 * and no duplicate, even while writes race a long replay. Replay is paged and
 * yields to the event loop between pages so a watcher starting from far back
 * does not stall the server.
 *
 * Delivery goes through one FIFO queue of (watcher, batch): a callback that
 * writes to the store (re-entrancy) only enqueues, and the outer loop keeps
 * revision order for everyone.
 */

import { type Disposable, toDisposable, tracer, weftError } from "@weft/core";
import type { WatchBatch, WatchOptions } from "./store.js";

const trace = tracer("store");

/** What the hub needs from a backend's history. */
export interface HistoryReader {
  /** Batches with revision > `after`, oldest first, at most `maxRevisions` of them. */
  readHistory(after: number, maxRevisions: number): readonly WatchBatch[];
  /** History at or below this revision is gone. */
  compactedRevision(): number;
  currentRevision(): number;
}

interface Watcher {
  readonly prefix: string;
  readonly onBatch: (batch: WatchBatch) => void;
  readonly onError: ((err: Error) => void) | undefined;
  /** Highest revision already handed to this watcher (delivered or filtered out). */
  cursor: number;
  state: "replaying" | "live" | "done";
}

const REPLAY_PAGE_REVISIONS = 500;

export class WatchHub {
  private readonly watchers = new Set<Watcher>();
  private queue: { w: Watcher; batch: WatchBatch }[] = [];
  private head = 0;
  private draining = false;

  constructor(private readonly history: HistoryReader) {}

  /** Registers a watcher; throws WEFT_ERR_STORE_COMPACTED if history no longer reaches `fromRevision`. */
  watch(prefix: string, onBatch: (batch: WatchBatch) => void, opts: WatchOptions = {}): Disposable {
    const current = this.history.currentRevision();
    const from = opts.fromRevision ?? current;
    const compacted = this.history.compactedRevision();
    if (from < compacted) {
      throw weftError("WEFT_ERR_STORE_COMPACTED", { revision: from, oldest: compacted });
    }
    const w: Watcher = { prefix, onBatch, onError: opts.onError, cursor: from, state: "live" };
    this.watchers.add(w);
    if (from < current) {
      w.state = "replaying";
      setImmediate(() => this.catchUp(w));
    }
    return toDisposable(() => {
      w.state = "done";
      this.watchers.delete(w);
    });
  }

  /** Called by the backend after a commit is durable. */
  publish(batch: WatchBatch): void {
    for (const w of this.watchers) if (w.state === "live") this.enqueue(w, batch);
    this.drain();
  }

  /** Ends every watch with `err` (store closed). */
  closeAll(err: Error): void {
    for (const w of [...this.watchers]) this.fail(w, err);
  }

  get size(): number {
    return this.watchers.size;
  }

  private catchUp(w: Watcher): void {
    if (w.state !== "replaying") return;
    const compacted = this.history.compactedRevision();
    if (w.cursor < compacted) {
      this.fail(w, weftError("WEFT_ERR_STORE_COMPACTED", { revision: w.cursor, oldest: compacted }));
      return;
    }
    const page = this.history.readHistory(w.cursor, REPLAY_PAGE_REVISIONS);
    for (const batch of page) this.enqueue(w, batch);
    const current = this.history.currentRevision();
    if (w.cursor >= current) {
      w.state = "live";
    } else if (page.length === 0) {
      // History ends before the current revision: events are missing.
      this.fail(w, weftError("WEFT_ERR_STORE_COMPACTED", { revision: w.cursor, oldest: current }));
      return;
    }
    this.drain();
    if (w.state === "replaying") setImmediate(() => this.catchUp(w));
  }

  private enqueue(w: Watcher, batch: WatchBatch): void {
    if (batch.revision <= w.cursor) return;
    w.cursor = batch.revision;
    const events =
      w.prefix === "" ? batch.events : batch.events.filter((e) => eventKey(e).startsWith(w.prefix));
    if (events.length === 0) return;
    this.queue.push({ w, batch: events === batch.events ? batch : { revision: batch.revision, events } });
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.head < this.queue.length) {
        const item = this.queue[this.head++] as { w: Watcher; batch: WatchBatch };
        if (item.w.state === "done") continue;
        try {
          item.w.onBatch(item.batch);
        } catch (e) {
          // A throwing callback is a bug in the consumer; end its watch loudly
          // rather than skip events silently (the consumer can re-watch).
          this.fail(item.w, e instanceof Error ? e : new Error(String(e)));
        }
      }
    } finally {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
      this.draining = false;
    }
  }

  private fail(w: Watcher, err: Error): void {
    if (w.state === "done") return;
    w.state = "done";
    this.watchers.delete(w);
    trace("watch ended", { prefix: w.prefix, cursor: w.cursor, error: err.message });
    if (w.onError) {
      try {
        w.onError(err);
      } catch (e) {
        process.emitWarning(`store watch onError threw: ${String(e)}`);
      }
    } else if (!isClosed(err)) {
      process.emitWarning(`store watch on "${w.prefix}" ended: ${err.message}`);
    }
  }
}

function eventKey(e: WatchBatch["events"][number]): string {
  return e.type === "put" ? e.kv.key : e.key;
}

function isClosed(err: Error): boolean {
  return (err as { code?: string }).code === "WEFT_ERR_STORE_CLOSED";
}
