/**
 * SIGINT/SIGTERM for long-running commands (server, proxy, up): the first
 * signal asks for a graceful stop, a second one exits at once (1). Install
 * it before starting anything, so that a signal that arrives during start-up
 * still stops cleanly.
 */
import type { Io } from "./io.js";

export interface StopSignals {
  /** Resolves with the first signal. */
  readonly requested: Promise<NodeJS.Signals>;
  /** The first signal received, if any. */
  signalled(): NodeJS.Signals | undefined;
}

export function onStopSignals(io: Io, onFirst?: (sig: NodeJS.Signals) => void): StopSignals {
  let signalled: NodeJS.Signals | undefined;
  let wake: (sig: NodeJS.Signals) => void = () => {};
  const requested = new Promise<NodeJS.Signals>((r) => {
    wake = r;
  });
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      io.err.write(`received ${sig} again; exiting now\n`);
      process.exit(1);
    }
    signalled = sig;
    onFirst?.(sig);
    wake(sig);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return { requested, signalled: () => signalled };
}
