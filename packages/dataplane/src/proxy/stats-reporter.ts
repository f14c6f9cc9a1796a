/**
 * Golden-metric reporting: the sidecar's request events, folded per edge
 * (direction, source service, destination service) into a request count, a
 * success count and a latency histogram with the mesh's fixed buckets, and
 * pushed as deltas to the control plane every `intervalMs`
 * (`POST /v1/proxy/stats/:id`). The control plane keeps the window and
 * computes rates and percentiles (controlplane/src/metrics/golden.ts).
 *
 * Delivery: one report in flight at a time. A report whose answer was not
 * received is resent as is (same session and seq), so the control plane
 * counts it once even if the first copy did arrive; meanwhile new events
 * fold into the next report. A report the control plane refuses (400/403)
 * or that failed `maxAttempts` times is dropped and its requests counted in
 * `stats.droppedRequests`. Idle intervals send nothing.
 *
 * Bounded: at most STATS_REPORT_LIMITS.maxEdges edges are kept between
 * pushes; events of further edges are dropped and counted. `record` never
 * throws and never blocks (it runs on the request path).
 */
import { randomBytes } from "node:crypto";
import {
  bucketIndex,
  type EdgeDirection,
  type EdgeStatsDelta,
  GOLDEN_BUCKET_COUNT,
  type ProxyStatsAck,
  type ProxyStatsReport,
  STATS_REPORT_LIMITS,
} from "@weft/api/client";
import { type Clock, describeError, type TimerHandle } from "@weft/core";
import type { DataplaneLogger } from "../logger.js";

export const DEFAULT_STATS_INTERVAL_MS = 2_000;

/** Flags of requests that failed in the proxy or the upstream (not policy outcomes like RBAC or RL). */
const FAILURE_FLAGS = new Set(["NR", "UH", "UF", "UT", "UR", "UC", "UPE", "URX", "UO"]);

/** Success: answered below 500 and no failure flag set by a proxy. */
export function isSuccess(status: number, flags: string): boolean {
  if (!(status >= 100 && status < 500)) return false;
  if (flags === "-" || flags === "") return true;
  for (const f of flags.split(",")) if (FAILURE_FLAGS.has(f)) return false;
  return true;
}

/** `WEFT_STATS_INTERVAL_MS` (100..600000) when set and valid, else the default. */
export function statsIntervalFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.WEFT_STATS_INTERVAL_MS?.trim();
  const n = raw && /^\d{3,6}$/.test(raw) ? Number(raw) : Number.NaN;
  return n >= 100 && n <= 600_000 ? n : DEFAULT_STATS_INTERVAL_MS;
}

export interface StatsReporterOptions {
  client: { pushProxyStats(instanceId: string, report: ProxyStatsReport): Promise<ProxyStatsAck> };
  instanceId: string;
  clock: Clock;
  /** Default: WEFT_STATS_INTERVAL_MS, else 2 s. */
  intervalMs?: number;
  logger?: DataplaneLogger;
  /** Tries of one report before it is dropped. Default 5. */
  maxAttempts?: number;
}

export interface StatsReporterCounters {
  pushes: number;
  failures: number;
  droppedRequests: number;
}

/** The fields of a request event the reporter reads (both event types have them). */
export interface ObservedRequest {
  status: number;
  flags: string;
  durationMs: number;
}

interface InFlight {
  report: ProxyStatsReport;
  attempts: number;
  requests: number;
}

export class StatsReporter {
  private readonly session = randomBytes(9).toString("base64url");
  private seq = 0;
  private pending = new Map<string, EdgeStatsDelta>();
  private inflight: InFlight | undefined;
  private busy: Promise<void> | undefined;
  private timer: TimerHandle | undefined;
  private readonly intervalMs: number;
  private readonly maxAttempts: number;
  readonly stats: StatsReporterCounters = { pushes: 0, failures: 0, droppedRequests: 0 };

  constructor(private readonly o: StatsReporterOptions) {
    this.intervalMs = o.intervalMs ?? statsIntervalFromEnv();
    this.maxAttempts = o.maxAttempts ?? 5;
  }

  /** Counts one request. Never throws (metrics must not break traffic). */
  record(direction: EdgeDirection, source: string, destination: string, e: ObservedRequest): void {
    if (source === "" || destination === "") return;
    const key = `${direction}\u0000${source}\u0000${destination}`;
    let d = this.pending.get(key);
    if (d === undefined) {
      if (this.pending.size >= STATS_REPORT_LIMITS.maxEdges) {
        this.stats.droppedRequests += 1;
        return;
      }
      d = {
        direction,
        source,
        destination,
        requests: 0,
        success: 0,
        buckets: new Array<number>(GOLDEN_BUCKET_COUNT).fill(0),
      };
      this.pending.set(key, d);
    }
    d.requests += 1;
    if (isSuccess(e.status, e.flags)) d.success += 1;
    const i = bucketIndex(e.durationMs);
    d.buckets[i] = (d.buckets[i] ?? 0) + 1;
  }

  start(): void {
    this.timer ??= this.o.clock.setInterval(() => void this.flush(), this.intervalMs);
  }

  /** Pushes what is pending now (or resends the report in flight). Resolves when that push ended. */
  flush(): Promise<void> {
    this.busy ??= this.push().finally(() => {
      this.busy = undefined;
    });
    return this.busy;
  }

  /** Stops the timer and makes one last push of what is pending, bounded by `timeoutMs`. */
  async stop(timeoutMs = 2_000): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([
      (async () => {
        await this.busy;
        await this.flush();
        if (this.pending.size > 0) await this.flush();
      })(),
      new Promise<void>((r) => {
        t = setTimeout(r, timeoutMs);
        t.unref();
      }),
    ]);
    clearTimeout(t);
  }

  private take(): InFlight | undefined {
    if (this.inflight) return this.inflight;
    if (this.pending.size === 0) return undefined;
    const edges = [...this.pending.values()];
    this.pending = new Map();
    this.seq += 1;
    let requests = 0;
    for (const e of edges) requests += e.requests;
    this.inflight = { report: { session: this.session, seq: this.seq, edges }, attempts: 0, requests };
    return this.inflight;
  }

  private async push(): Promise<void> {
    const f = this.take();
    if (!f) return;
    f.attempts += 1;
    try {
      await this.o.client.pushProxyStats(this.o.instanceId, f.report);
      this.stats.pushes += 1;
      this.inflight = undefined;
    } catch (e) {
      this.stats.failures += 1;
      const status = (e as { status?: unknown }).status;
      const refused = status === 400 || status === 403 || status === 413;
      if (refused || f.attempts >= this.maxAttempts) {
        this.inflight = undefined;
        this.stats.droppedRequests += f.requests;
        this.o.logger?.warn(
          { err: describeError(e), requests: f.requests, attempts: f.attempts },
          "golden-metric report dropped",
        );
      }
    }
  }
}
