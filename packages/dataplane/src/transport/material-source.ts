import type { MaterialSource, TlsMaterial } from "./mtls.js";

/** A MaterialSource whose material is replaced by `set` (what the identity agent does on each renewal). */
export interface SettableMaterialSource extends MaterialSource {
  set(material: TlsMaterial): void;
}

export function createMaterialSource(initial: TlsMaterial): SettableMaterialSource {
  let material = initial;
  const listeners = new Set<() => void>();
  return {
    current: () => material,
    onChange(fn) {
      // A wrapper per subscription, so the same function subscribed twice is disposed independently.
      const entry = (): void => fn();
      listeners.add(entry);
      return { dispose: () => void listeners.delete(entry) };
    },
    set(next) {
      if (next === material) return;
      material = next;
      for (const fn of [...listeners]) fn();
    },
  };
}
