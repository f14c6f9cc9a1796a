/**
 * What a health probe checks and what it says back. The result is what the
 * sidecar reports to its TTL check (`checkUpdateSchema` in @weft/api: status
 * plus an output of at most 4096 characters), so it is shaped to fit it as is.
 */

export type HealthStatus = "passing" | "warning" | "critical";

export type HealthCheckSpec =
  /** GET `path` on the app: 2xx/3xx passing, 429 warning, anything else critical (Consul's semantics). */
  | { kind: "http"; path: string }
  /** A TCP connect that succeeds is passing. */
  | { kind: "tcp" }
  /** grpc.health.v1 Health/Check; `service` "" (the default) asks about the server as a whole. */
  | { kind: "grpc"; service?: string };

export interface ProbeTarget {
  host: string;
  port: number;
}

export interface ProbeResult {
  status: HealthStatus;
  /** At most MAX_OUTPUT_CHARS characters, e.g. "HTTP GET http://127.0.0.1:8080/healthz: 200 OK". */
  output: string;
}

export interface ProbeOptions {
  /** Aborting ends the probe at once (sockets closed) with a critical result. */
  signal?: AbortSignal;
}

/** The control plane refuses a longer output (`checkUpdateSchema`). */
export const MAX_OUTPUT_CHARS = 4096;

const ELLIPSIS = "…";

/** Cuts `s` to MAX_OUTPUT_CHARS, never in the middle of a surrogate pair, marking the cut. */
export function limitOutput(s: string): string {
  if (s.length <= MAX_OUTPUT_CHARS) return s;
  let end = MAX_OUTPUT_CHARS - ELLIPSIS.length;
  const last = s.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return s.slice(0, end) + ELLIPSIS;
}

export function result(status: HealthStatus, output: string): ProbeResult {
  return { status, output: limitOutput(output) };
}

/** `host:port`, with IPv6 literals bracketed, for Host headers, authorities and outputs. */
export function hostPort(t: ProbeTarget): string {
  return t.host.includes(":") ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

/** A message for a thrown value or socket error, with its code when the message lacks it. */
export function errorText(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    return code && !e.message.includes(code) ? `${e.message} (${code})` : e.message;
  }
  return String(e);
}
