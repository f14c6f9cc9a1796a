/**
 * Owned lifetimes (VS Code's DisposableStore): every timer, watcher and
 * socket belongs to an owner that releases it exactly once.
 */

export interface Disposable {
  dispose(): void | Promise<void>;
}

export function toDisposable(fn: () => void | Promise<void>): Disposable {
  let done = false;
  return {
    dispose() {
      if (done) return;
      done = true;
      return fn();
    },
  };
}

export class DisposableStore implements Disposable {
  private readonly items = new Set<Disposable>();
  private disposed = false;

  /** Adds `d`; if the store is already disposed, `d` is disposed at once. */
  add<T extends Disposable>(d: T): T {
    if (this.disposed) {
      void d.dispose();
      return d;
    }
    this.items.add(d);
    return d;
  }

  delete(d: Disposable): void {
    this.items.delete(d);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Disposes everything in reverse order of addition; errors are collected, not thrown early. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const items = [...this.items].reverse();
    this.items.clear();
    const errors: unknown[] = [];
    for (const d of items) {
      try {
        await d.dispose();
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, "several disposables failed");
  }
}
