/**
 * The change bookkeeping every in-memory view of the store keeps (catalog
 * by service, config by kind): the index of each group (the store revision
 * of its last change; the load revision for a group not changed since),
 * the revision of the last change of all, and listeners told which groups
 * changed after each applied batch. Blocking queries wait on these indexes.
 */
import { type Disposable, toDisposable } from "@weft/core";
import type { Logger } from "pino";

export type ChangeListener = (groups: ReadonlySet<string>) => void;

export class ChangeFeed implements Disposable {
  private readonly indexes = new Map<string, number>();
  private readonly listeners = new Set<ChangeListener>();
  private loadRevision = 0;
  private last = 0;

  /** `what` names the view in the log when a listener throws. */
  constructor(
    private readonly what: string,
    private readonly log: Logger | undefined,
  ) {}

  /** The view was loaded at `revision`. */
  loaded(revision: number): void {
    this.loadRevision = revision;
    this.last = revision;
  }

  /** A record of `group` seen (at load or in a batch) with this modRevision. */
  saw(group: string, modRevision: number): void {
    this.indexes.set(group, Math.max(this.indexes.get(group) ?? 0, modRevision));
  }

  /** A batch at `revision` changed `groups`: move their indexes and tell the listeners. */
  changed(groups: ReadonlySet<string>, revision: number): void {
    this.last = revision;
    for (const g of groups) this.indexes.set(g, revision);
    for (const fn of this.listeners) {
      try {
        fn(groups);
      } catch (err) {
        this.log?.error({ err }, `${this.what} change listener failed`);
      }
    }
  }

  index(group: string): number {
    return this.indexes.get(group) ?? this.loadRevision;
  }

  get lastChange(): number {
    return this.last;
  }

  onChange(fn: ChangeListener): Disposable {
    this.listeners.add(fn);
    return toDisposable(() => {
      this.listeners.delete(fn);
    });
  }

  dispose(): void {
    this.listeners.clear();
  }
}
