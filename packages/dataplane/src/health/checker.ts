/**
 * The sidecar's periodic check of its app. Probes on an interval (fixed
 * delay after each probe ends, as Consul does, so probes never overlap even
 * when one is slower than the interval), applies Consul's thresholds, and
 * hands the resulting status to `report`, which the sidecar wires to its TTL
 * check in the control plane.
 *
 *   probe -> thresholds (success_before_passing / failures_before_critical)
 *         -> current -> report on change, and a heartbeat every reportEveryMs
 *
 * Reports are serialized: one at a time, the newest result wins while one is
 * in flight, and a failed report is retried at the next probe or heartbeat.
 */
import { type Clock, type Disposable, systemClock, type TimerHandle, tracer, weftError } from "@weft/core";
import type { DataplaneLogger } from "../logger.js";
import { probe as defaultProbe, type ProbeFn, specProblem, targetProblem, timeoutProblem } from "./probe.js";
import { errorText, type HealthCheckSpec, type ProbeResult, type ProbeTarget, result } from "./result.js";

const trace = tracer("health");

export interface HealthCheckerOptions {
  spec: HealthCheckSpec;
  /** The app, normally on loopback: { host: "127.0.0.1", port: appPort }. */
  target: ProbeTarget;
  /** Pause between the end of one probe and the start of the next. */
  intervalMs: number;
  /** Bound of one probe (real time: it covers sockets). */
  timeoutMs: number;
  /** Schedules probes and heartbeats. Default: systemClock. */
  clock?: Clock;
  /**
   * Consecutive results needed to flip status (Consul's success_before_passing
   * / failures_before_critical; warning counts as a success). Defaults 1 / 1.
   * As in Consul, the very first result is reported at once, whatever the thresholds.
   */
  successBeforePassing?: number;
  failuresBeforeCritical?: number;
  /**
   * Called when the reported status or output changes, and at least every
   * `reportEveryMs` (heartbeat, to keep a TTL check alive). Must not throw;
   * may be async (awaited before the next report is sent, reports never
   * overlap; if a report fails, the next one retries).
   */
  report: (r: ProbeResult) => void | Promise<void>;
  reportEveryMs: number;
  /** Replaces the built-in `probe` (tests, custom checks). A rejection counts as critical. */
  probe?: ProbeFn;
  /** Told about status flips (info) and failed reports (warn). */
  logger?: DataplaneLogger;
}

function positive(name: string, v: number): void {
  if (!Number.isFinite(v) || v <= 0 || v > 2 ** 31 - 1) {
    throw weftError("WEFT_ERR_CONFIG_INVALID", {
      detail: `health check ${name} ${v} is not in 1-${2 ** 31 - 1} ms`,
    });
  }
}

function threshold(name: string, v: number | undefined): number {
  if (v === undefined) return 1;
  if (!Number.isInteger(v) || v < 1 || v > 1_000) {
    throw weftError("WEFT_ERR_CONFIG_INVALID", {
      detail: `health check ${name} ${v} is not an integer in 1-1000`,
    });
  }
  return v;
}

function same(a: ProbeResult | undefined, b: ProbeResult | undefined): boolean {
  return a !== undefined && b !== undefined && a.status === b.status && a.output === b.output;
}

export class HealthChecker implements Disposable {
  private readonly clock: Clock;
  private readonly probeFn: ProbeFn;
  private readonly successBeforePassing: number;
  private readonly failuresBeforeCritical: number;
  private started = false;
  private disposed = false;
  private probeTimer: TimerHandle | undefined;
  private heartbeatTimer: TimerHandle | undefined;
  private inFlight: AbortController | undefined;
  // Counters start at the thresholds so the first result is applied at once (Consul's NewStatusHandler).
  private successes: number;
  private failures: number;
  private reported: ProbeResult | undefined;
  /** The last result handed to `report` (delivered or on its way); cleared when a report fails. */
  private lastQueued: ProbeResult | undefined;
  private pending: ProbeResult | undefined;
  private reporting = false;

  constructor(private readonly opts: HealthCheckerOptions) {
    const problem = specProblem(opts.spec) ?? targetProblem(opts.target) ?? timeoutProblem(opts.timeoutMs);
    if (problem) throw weftError("WEFT_ERR_CONFIG_INVALID", { detail: problem });
    positive("intervalMs", opts.intervalMs);
    positive("reportEveryMs", opts.reportEveryMs);
    this.successBeforePassing = threshold("successBeforePassing", opts.successBeforePassing);
    this.failuresBeforeCritical = threshold("failuresBeforeCritical", opts.failuresBeforeCritical);
    this.successes = this.successBeforePassing;
    this.failures = this.failuresBeforeCritical;
    this.clock = opts.clock ?? systemClock;
    this.probeFn = opts.probe ?? defaultProbe;
  }

  /** Probes at once, then every intervalMs after each probe ends. A second call, or a call after dispose, does nothing. */
  start(): void {
    if (this.started || this.disposed) return;
    this.started = true;
    this.runProbe();
  }

  /** The status as reported (after thresholds); undefined until the first probe ends. */
  get current(): ProbeResult | undefined {
    return this.reported;
  }

  /** Stops probing and reporting; an in-flight probe is aborted and its result dropped. A report already in flight finishes, nothing follows it. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.probeTimer?.cancel();
    this.heartbeatTimer?.cancel();
    this.probeTimer = this.heartbeatTimer = undefined;
    this.inFlight?.abort();
    this.inFlight = undefined;
    this.pending = undefined;
  }

  private runProbe(): void {
    this.probeTimer = undefined;
    if (this.disposed) return;
    const ac = new AbortController();
    this.inFlight = ac;
    let p: Promise<ProbeResult>;
    try {
      p = Promise.resolve(
        this.probeFn(this.opts.spec, this.opts.target, this.opts.timeoutMs, { signal: ac.signal }),
      );
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (r) => this.probeDone(ac, r),
      (e: unknown) => this.probeDone(ac, result("critical", `health probe failed: ${errorText(e)}`)),
    );
  }

  private probeDone(ac: AbortController, r: ProbeResult): void {
    if (this.disposed || this.inFlight !== ac) return;
    this.inFlight = undefined;
    this.observe(result(r.status, String(r.output ?? "")));
    this.probeTimer = this.clock.setTimeout(() => this.runProbe(), this.opts.intervalMs);
  }

  private observe(r: ProbeResult): void {
    trace("probe", { status: r.status, output: r.output });
    if (r.status === "critical") {
      this.failures++;
      this.successes = 0;
    } else {
      this.successes++;
      this.failures = 0;
    }
    const flips =
      r.status === "critical"
        ? this.failures >= this.failuresBeforeCritical
        : this.successes >= this.successBeforePassing;
    if (flips) {
      const before = this.reported?.status;
      this.reported = Object.freeze({ status: r.status, output: r.output });
      if (before !== r.status)
        this.opts.logger?.info({ from: before, to: r.status, output: r.output }, "app health changed");
    } else {
      trace("below threshold", { status: r.status, successes: this.successes, failures: this.failures });
    }
    // Also retries a failed report when the status itself did not move.
    if (this.reported && !same(this.reported, this.lastQueued)) this.enqueue(this.reported);
  }

  private enqueue(r: ProbeResult): void {
    this.lastQueued = r;
    this.pending = r;
    if (!this.reporting) void this.drain();
  }

  private async drain(): Promise<void> {
    this.reporting = true;
    while (this.pending && !this.disposed) {
      const r = this.pending;
      this.pending = undefined;
      this.armHeartbeat();
      try {
        await this.opts.report(r);
      } catch (e) {
        this.opts.logger?.warn({ err: errorText(e) }, "health report failed; retrying at the next probe");
        // Unless something newer is already waiting, make the next probe send this again.
        if (!this.pending) this.lastQueued = undefined;
      }
    }
    this.reporting = false;
  }

  /** Counted from the start of the last report: a TTL check hears from us at least every reportEveryMs. */
  private armHeartbeat(): void {
    this.heartbeatTimer?.cancel();
    if (this.disposed) return;
    this.heartbeatTimer = this.clock.setTimeout(() => {
      this.heartbeatTimer = undefined;
      if (this.disposed || !this.reported) return;
      this.enqueue(this.reported);
    }, this.opts.reportEveryMs);
  }
}
