/**
 * Access logs: one JSON line per request (and per TCP connection), written
 * through a pino logger the CLI points at a dedicated destination
 * (`weft proxy --access-log`), asynchronously so a slow disk or pipe never
 * blocks a request.
 *
 * What a line holds is a fixed list of fields (below), never a header:
 * requests carry credentials (authorization, cookie, api keys) and a query
 * string may too, so the path is logged without its query and no header
 * value is copied. On/off and sampling come from the snapshot (the proxy
 * service's ServiceDefaults.accessLogs, else the Mesh's); without a
 * destination nothing is written whatever the snapshot says.
 */

import { ACCESS_LOG_DEFAULTS, type AccessLogConfig } from "@weft/api/snapshot";
import type { DataplaneLogger } from "../logger.js";

export interface Identity {
  service: string;
  /** The SPIFFE ID when known (verified peer, or the cluster's expected identity). */
  spiffeId?: string;
}

/** One finished request as the sidecar saw it. */
export interface AccessLogRequest {
  direction: "inbound" | "outbound";
  source: Identity;
  destination: Identity;
  method?: string;
  authority?: string;
  /** Path and query as received; logged without the query and fragment. */
  path?: string;
  route?: string;
  status: number;
  flags: string;
  durationMs: number;
  /** The upstream instance (endpoint id) that served, and its cluster. */
  upstream?: string;
  cluster?: string;
  retries?: number;
  traceId?: string;
}

export interface AccessLogConnection {
  direction: "inbound" | "outbound";
  source: Identity;
  destination: Identity;
  result: string;
  bytesIn: number;
  bytesOut: number;
  durationMs?: number;
  upstream?: string;
  cluster?: string;
}

/** The access log's pino message: lines are found by `"msg":"access"`. */
export const ACCESS_LOG_MSG = "access";

/** Strips the query and fragment: a token in a query string must not reach a log. */
export function logPath(target: string): string {
  const q = target.search(/[?#]/);
  return q === -1 ? target : target.slice(0, q);
}

/** An authority without userinfo (never expected, never logged if present). */
export function logAuthority(authority: string): string {
  const at = authority.lastIndexOf("@");
  return at === -1 ? authority : authority.slice(at + 1);
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

function identity(i: Identity): Record<string, string> {
  return i.spiffeId !== undefined ? { service: i.service, spiffeId: i.spiffeId } : { service: i.service };
}

export class AccessLog {
  private config: AccessLogConfig = ACCESS_LOG_DEFAULTS;

  constructor(
    /** The dedicated destination; undefined = access logs off on this proxy. */
    private readonly sink: DataplaneLogger | undefined,
    private readonly random: () => number = Math.random,
  ) {}

  /** A snapshot's accessLog section (absent = the defaults: on, every request). */
  configure(cfg: AccessLogConfig | undefined): void {
    this.config = cfg ?? ACCESS_LOG_DEFAULTS;
  }

  /** Whether anything may be written: a request need not gather its fields otherwise. */
  get active(): boolean {
    return this.sink !== undefined && this.config.enabled && this.config.sampling > 0;
  }

  /** One sampling draw: true = log this request. */
  private take(): boolean {
    if (!this.active) return false;
    const s = this.config.sampling;
    return s >= 1 || this.random() < s;
  }

  request(r: AccessLogRequest): void {
    if (!this.take()) return;
    const line: Record<string, unknown> = {
      type: "http",
      direction: r.direction,
      source: identity(r.source),
      destination: identity(r.destination),
    };
    if (r.route !== undefined) line.route = r.route;
    if (r.method !== undefined) line.method = r.method;
    if (r.authority !== undefined) line.authority = logAuthority(r.authority);
    if (r.path !== undefined) line.path = logPath(r.path);
    line.status = r.status;
    line.flags = r.flags;
    line.durationMs = round(r.durationMs);
    if (r.upstream !== undefined) line.upstream = r.upstream;
    if (r.cluster !== undefined) line.cluster = r.cluster;
    if (r.retries !== undefined) line.retries = r.retries;
    if (r.traceId !== undefined) line.traceId = r.traceId;
    this.write(line);
  }

  connection(c: AccessLogConnection): void {
    if (!this.take()) return;
    const line: Record<string, unknown> = {
      type: "tcp",
      direction: c.direction,
      source: identity(c.source),
      destination: identity(c.destination),
      result: c.result,
      bytesIn: c.bytesIn,
      bytesOut: c.bytesOut,
    };
    if (c.durationMs !== undefined) line.durationMs = round(c.durationMs);
    if (c.upstream !== undefined) line.upstream = c.upstream;
    if (c.cluster !== undefined) line.cluster = c.cluster;
    this.write(line);
  }

  private write(line: Record<string, unknown>): void {
    try {
      this.sink?.info(line, ACCESS_LOG_MSG);
    } catch {
      // Logging must never break traffic.
    }
  }
}
