/**
 * The frame every probe runs in: one result, whichever comes first of the
 * probe's own outcome, its timeout or an abort; the probe's sockets are
 * released by its `onSettle` cleanup exactly once, before the result is
 * delivered. Probes never reject.
 */
import { errorText, type ProbeOptions, type ProbeResult, result } from "./result.js";

export interface ProbeControl {
  /** Delivers the result (the first call wins). */
  finish(r: ProbeResult): void;
  /** Delivers a critical result `<label>: <why>`. */
  fail(why: string): void;
  /** Cleanup run once when the probe settles, for any reason. */
  onSettle(fn: () => void): void;
}

export function boundedProbe(
  label: string,
  timeoutMs: number,
  opts: ProbeOptions,
  start: (p: ProbeControl) => void,
): Promise<ProbeResult> {
  return new Promise<ProbeResult>((resolve) => {
    let settled = false;
    const cleanups: (() => void)[] = [];
    const finish = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      for (const fn of cleanups) {
        try {
          fn();
        } catch {
          // A cleanup that throws must not keep the result from being delivered.
        }
      }
      resolve(r);
    };
    const fail = (why: string): void => finish(result("critical", `${label}: ${why}`));
    const onAbort = (): void => fail("cancelled");
    const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
    timer.unref();
    if (opts.signal?.aborted) {
      onAbort();
      return;
    }
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      start({ finish, fail, onSettle: (fn) => cleanups.push(fn) });
    } catch (e) {
      fail(errorText(e));
    }
  });
}
