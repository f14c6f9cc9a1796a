/**
 * The control plane's logger: pino, JSON lines on stderr (fd 2) so that
 * stdout stays free for what the CLI prints. Level from WEFT_LOG_LEVEL
 * (default "info"; "silent" turns it off, as tests do).
 */
import { pino } from "pino";

export type Logger = pino.Logger;

export function createLogger(opts: { level?: string; name?: string } = {}): Logger {
  const level = opts.level ?? process.env.WEFT_LOG_LEVEL ?? "info";
  return pino(
    { level, name: opts.name ?? "weft-controlplane", base: { pid: process.pid } },
    pino.destination({ dest: 2, sync: true }),
  );
}
