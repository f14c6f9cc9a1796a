/**
 * Outlier detection per cluster (Envoy's consecutive-5xx and
 * consecutive-gateway-failure detectors): each endpoint's tries are
 * reported as they end; after N consecutive 5xx (or N consecutive gateway
 * errors: 502/503/504, a connect failure, a reset, a timeout) the endpoint
 * is ejected, i.e. the cluster's balancer does not pick it until its
 * ejection time has passed. Then it returns on its own and is tried again.
 *
 * Ejection time = baseEjectionTime × the endpoint's ejection count, capped
 * by maxEjectionTime; the count goes down by one for each `interval` the
 * endpoint spends back in service, so a long-fixed endpoint starts afresh.
 *
 * The cap on the share of ejected endpoints follows Envoy: an endpoint is
 * ejected when the share ejected *before* it is below maxEjectionPercent.
 * So with 10% and 3 endpoints one endpoint may be ejected (0% < 10%), a
 * second may not (33% ≥ 10%); 0% ejects nothing. Envoy's choice keeps the
 * detector useful for small clusters, which a sidecar mostly sees.
 *
 * Time is read from the injected clock, lazily: no timers to own, and an
 * ejection ends exactly when a pick or report first looks after it.
 */
import type { OutlierDetectionConfig } from "@weft/api/snapshot";
import type { Clock } from "@weft/core";

/** How one try at an endpoint ended. */
export type TryResult =
  /** A response head arrived (from the peer proxy, which relays the app's status). */
  | { kind: "status"; status: number }
  /** No response: connect failure, reset, timeout — Envoy's locally originated gateway errors. */
  | { kind: "gateway-error" };

interface EndpointState {
  consecutive5xx: number;
  consecutiveGateway: number;
  /** Ejections so far, less one per interval spent back in service. */
  ejections: number;
  /** When the current ejection ends; undefined = in service. */
  ejectedUntil: number | undefined;
  /** When the endpoint last came back (for the decay of `ejections`). */
  returnedAt: number;
}

export interface OutlierEjection {
  endpointId: string;
  /** The ejection count of the endpoint, this one included. */
  ejections: number;
  durationMs: number;
  reason: "consecutive_5xx" | "consecutive_gateway_errors";
}

const isGatewayStatus = (s: number): boolean => s === 502 || s === 503 || s === 504;

export class OutlierDetector {
  private readonly states = new Map<string, EndpointState>();

  constructor(
    private config: OutlierDetectionConfig,
    private readonly clock: Clock,
    /** Told of every ejection (metrics, logs). Must not throw. */
    private readonly onEject?: (e: OutlierEjection) => void,
  ) {}

  configure(config: OutlierDetectionConfig): void {
    this.config = config;
  }

  /** The cluster's current endpoints: state of the others is dropped, new ones start clean. */
  setEndpoints(ids: Iterable<string>): void {
    const keep = new Set(ids);
    for (const id of [...this.states.keys()]) if (!keep.has(id)) this.states.delete(id);
    for (const id of keep) if (!this.states.has(id)) this.states.set(id, this.fresh());
  }

  private fresh(): EndpointState {
    return {
      consecutive5xx: 0,
      consecutiveGateway: 0,
      ejections: 0,
      ejectedUntil: undefined,
      returnedAt: this.clock.now(),
    };
  }

  /** Ends an ejection whose time has passed; true while still ejected. */
  private stillEjected(s: EndpointState, now: number): boolean {
    if (s.ejectedUntil === undefined) return false;
    if (now < s.ejectedUntil) return true;
    // Back since the ejection ended, not since someone looked.
    s.returnedAt = s.ejectedUntil;
    s.ejectedUntil = undefined;
    s.consecutive5xx = 0;
    s.consecutiveGateway = 0;
    return false;
  }

  isEjected(id: string): boolean {
    const s = this.states.get(id);
    return s !== undefined && this.stillEjected(s, this.clock.now());
  }

  /** The endpoints ejected right now (a fresh set; empty most of the time). */
  ejected(): Set<string> {
    const now = this.clock.now();
    const out = new Set<string>();
    for (const [id, s] of this.states) if (this.stillEjected(s, now)) out.add(id);
    return out;
  }

  /** Reports one try's outcome; may eject the endpoint. Unknown ids are ignored. */
  report(id: string, r: TryResult): void {
    const s = this.states.get(id);
    if (s === undefined) return;
    const now = this.clock.now();
    // Tries that started before an ejection may end during it: they do not count twice.
    if (this.stillEjected(s, now)) return;
    const is5xx = r.kind === "gateway-error" || r.status >= 500;
    const isGateway = r.kind === "gateway-error" || isGatewayStatus(r.status);
    s.consecutive5xx = is5xx ? s.consecutive5xx + 1 : 0;
    s.consecutiveGateway = isGateway ? s.consecutiveGateway + 1 : 0;
    if (s.consecutive5xx >= this.config.consecutive5xx) this.eject(id, s, now, "consecutive_5xx");
    else if (s.consecutiveGateway >= this.config.consecutiveGatewayErrors) {
      this.eject(id, s, now, "consecutive_gateway_errors");
    }
  }

  private eject(id: string, s: EndpointState, now: number, reason: OutlierEjection["reason"]): void {
    // Counters restart either way: a refused ejection is tried again after N more failures.
    s.consecutive5xx = 0;
    s.consecutiveGateway = 0;
    let active = 0;
    for (const o of this.states.values()) if (this.stillEjected(o, now)) active++;
    if ((100 * active) / this.states.size >= this.config.maxEjectionPercent) return;
    const decay = this.config.intervalMs > 0 ? Math.floor((now - s.returnedAt) / this.config.intervalMs) : 0;
    s.ejections = Math.max(0, s.ejections - decay) + 1;
    const durationMs = Math.min(
      this.config.baseEjectionTimeMs * s.ejections,
      Math.max(this.config.baseEjectionTimeMs, this.config.maxEjectionTimeMs),
    );
    s.ejectedUntil = now + durationMs;
    try {
      this.onEject?.({ endpointId: id, ejections: s.ejections, durationMs, reason });
    } catch {
      // Metrics must never break traffic.
    }
  }
}
