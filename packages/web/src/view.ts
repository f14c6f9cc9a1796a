/**
 * What every page is: an element and a dispose that stops its polling.
 * `poll` runs a refresh now and then `intervalMs` after each one finishes
 * (never two at once, so a slow control plane is not piled on), until
 * disposed; a failed refresh is shown by the view and retried next time.
 */
import type { Api } from "./api.js";

export interface ViewContext {
  api: Api;
  navigate(href: string): void;
  /** Epoch ms (injected so the pages read one clock). */
  now(): number;
}

export interface View {
  el: HTMLElement;
  /** Focus target after navigation (the page's heading). */
  title: string;
  dispose(): void;
}

export function poll(fn: (signal: AbortSignal) => Promise<void>, intervalMs: number): () => void {
  const ac = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const run = async () => {
    if (ac.signal.aborted) return;
    try {
      await fn(ac.signal);
    } catch {
      // The view has shown the error; try again at the next tick.
    }
    if (!ac.signal.aborted) timer = setTimeout(run, intervalMs);
  };
  void run();
  return () => {
    ac.abort();
    if (timer !== undefined) clearTimeout(timer);
  };
}

/** Polling interval of the live pages. */
export const POLL_MS = 2_000;
