/**
 * Golden metrics: a sliding window of the per-edge deltas sidecars push.
 *
 * Data flow: `POST /v1/proxy/stats/:id` (validated by report-schema.ts) ->
 * `accept()` (drops a resent report by session + seq) -> the deltas are
 * added to the slot of the arrival time -> reads sum the slots still in the
 * window and derive rate, success rate and p50/p95/p99.
 *
 * Memory is bounded: a ring of `windowMs / slotMs` slots (default 12 x 5 s),
 * each with at most `maxEdges` cells per direction (a cell is 2 counters and
 * a 16-count histogram); the seq memory holds at most `maxReporters`.
 * Deltas land in the slot of their arrival, so the window's edge is as
 * coarse as a slot plus one push interval; counts inside it are exact.
 *
 * Proxyless gRPC clients report through LRS (xds/lrs-server.ts ->
 * load-report.ts) with no latency: their deltas are caller-side (outbound)
 * counts kept in cells of their own, which count as the caller's view of an
 * edge and carry `proxylessRequests`; the percentiles come from the sidecar
 * histograms only (null when no sidecar saw the edge). A service no sidecar
 * reports for (a proxyless server) takes its figures from those reports.
 */
import {
  type EdgeGolden,
  type EdgeStatsDelta,
  GOLDEN_BUCKET_COUNT,
  type GoldenStats,
  type MetricsWindowInfo,
  quantileFromBuckets,
  type ServiceGolden,
} from "@weft/api/client";
import type { Clock } from "@weft/core";

export interface GoldenWindowOptions {
  clock: Clock;
  /** Default 60 s. */
  windowMs?: number;
  /** Default 5 s; windowMs must be a multiple. */
  slotMs?: number;
  /** Cells per direction per slot; edges beyond are counted in `stats.droppedEdges`. Default 10,000. */
  maxEdges?: number;
  /** Reporters whose last seq is remembered. Default 50,000. */
  maxReporters?: number;
}

interface Cell {
  source: string;
  destination: string;
  requests: number;
  success: number;
  buckets: Float64Array;
  /** Requests (of `requests`) that proxyless clients reported: none of them is in `buckets`. */
  proxyless: number;
}

/** Who sent a report: a sidecar (stats report, with latency) or a proxyless client (LRS, no latency). */
export type GoldenReporter = "sidecar" | "proxyless";

interface Slot {
  /** floor(time / slotMs) of the slot's period; -1 when unused. */
  epoch: number;
  inbound: Map<string, Cell>;
  outbound: Map<string, Cell>;
  /** Caller-side counts from proxyless clients' load reports. */
  proxyless: Map<string, Cell>;
}

type CellMap = "inbound" | "outbound" | "proxyless";

export interface GoldenStatsCounters {
  reports: number;
  duplicates: number;
  droppedEdges: number;
}

const edgeKey = (source: string, destination: string): string => `${source}\u0000${destination}`;

function emptyCell(source: string, destination: string): Cell {
  return {
    source,
    destination,
    requests: 0,
    success: 0,
    buckets: new Float64Array(GOLDEN_BUCKET_COUNT),
    proxyless: 0,
  };
}

function addInto(
  into: Cell,
  from: { requests: number; success: number; buckets: ArrayLike<number>; proxyless?: number },
): void {
  into.requests += from.requests;
  into.success += from.success;
  into.proxyless += from.proxyless ?? 0;
  for (let i = 0; i < GOLDEN_BUCKET_COUNT; i++)
    into.buckets[i] = (into.buckets[i] ?? 0) + (from.buckets[i] ?? 0);
}

function golden(c: Cell | undefined, seconds: number): GoldenStats {
  if (!c || c.requests === 0) {
    return {
      requests: 0,
      success: 0,
      successRate: null,
      rps: 0,
      latencyMs: { p50: null, p95: null, p99: null },
    };
  }
  const round = (v: number | null) => (v === null ? null : Math.round(v * 1000) / 1000);
  return {
    requests: c.requests,
    success: c.success,
    successRate: c.success / c.requests,
    rps: Math.round((c.requests / seconds) * 1000) / 1000,
    latencyMs: {
      p50: round(quantileFromBuckets(c.buckets, 0.5)),
      p95: round(quantileFromBuckets(c.buckets, 0.95)),
      p99: round(quantileFromBuckets(c.buckets, 0.99)),
    },
    ...(c.proxyless > 0 ? { proxylessRequests: c.proxyless } : {}),
  };
}

const byEdge = (a: EdgeGolden, b: EdgeGolden) =>
  a.source === b.source ? (a.destination < b.destination ? -1 : 1) : a.source < b.source ? -1 : 1;

export class GoldenWindow {
  private readonly clock: Clock;
  private readonly windowMs: number;
  private readonly slotMs: number;
  private readonly maxEdges: number;
  private readonly maxReporters: number;
  private readonly slots: Slot[];
  private readonly startedAt: number;
  /** instanceId -> last accepted session and seq. Insertion-ordered: the oldest is evicted first. */
  private readonly lastSeq = new Map<string, { session: string; seq: number }>();
  readonly stats: GoldenStatsCounters = { reports: 0, duplicates: 0, droppedEdges: 0 };

  constructor(o: GoldenWindowOptions) {
    this.clock = o.clock;
    this.slotMs = o.slotMs ?? 5_000;
    this.windowMs = o.windowMs ?? 60_000;
    if (!(this.slotMs > 0) || this.windowMs % this.slotMs !== 0 || this.windowMs < this.slotMs) {
      throw new RangeError(
        `windowMs (${this.windowMs}) must be a positive multiple of slotMs (${this.slotMs})`,
      );
    }
    this.maxEdges = o.maxEdges ?? 10_000;
    this.maxReporters = o.maxReporters ?? 50_000;
    this.slots = Array.from({ length: this.windowMs / this.slotMs }, () => ({
      epoch: -1,
      inbound: new Map(),
      outbound: new Map(),
      proxyless: new Map(),
    }));
    this.startedAt = this.clock.now();
  }

  /**
   * Adds one report's deltas unless it repeats the reporter's last accepted
   * (session, seq): a sidecar resends a report whose answer it did not get.
   * Edges must already be validated (and belong to the reporter's service).
   * A `proxyless` reporter's edges are caller-side counts without latency
   * (their `buckets` are ignored); give it a key of its own (a sidecar and
   * an LRS stream of one instance id must not share a seq).
   */
  accept(
    instanceId: string,
    session: string,
    seq: number,
    edges: readonly EdgeStatsDelta[],
    reporter: GoldenReporter = "sidecar",
  ): boolean {
    const last = this.lastSeq.get(instanceId);
    if (last && last.session === session && seq <= last.seq) {
      this.stats.duplicates += 1;
      return false;
    }
    this.lastSeq.delete(instanceId);
    this.lastSeq.set(instanceId, { session, seq });
    if (this.lastSeq.size > this.maxReporters) {
      const oldest = this.lastSeq.keys().next().value;
      if (oldest !== undefined) this.lastSeq.delete(oldest);
    }
    this.stats.reports += 1;
    const slot = this.current();
    for (const e of edges) {
      if (e.requests === 0) continue;
      const map =
        reporter === "proxyless" ? slot.proxyless : e.direction === "inbound" ? slot.inbound : slot.outbound;
      const key = edgeKey(e.source, e.destination);
      let cell = map.get(key);
      if (!cell) {
        if (map.size >= this.maxEdges) {
          this.stats.droppedEdges += 1;
          continue;
        }
        cell = emptyCell(e.source, e.destination);
        map.set(key, cell);
      }
      if (reporter === "proxyless") {
        cell.requests += e.requests;
        cell.success += e.success;
        cell.proxyless += e.requests;
      } else addInto(cell, e);
    }
    return true;
  }

  /** Forgets a reporter's seq (its instance is gone). */
  forget(instanceId: string): void {
    this.lastSeq.delete(instanceId);
  }

  private current(): Slot {
    const epoch = Math.floor(this.clock.now() / this.slotMs);
    const slot = this.slots[epoch % this.slots.length] as Slot;
    if (slot.epoch !== epoch) {
      slot.epoch = epoch;
      slot.inbound.clear();
      slot.outbound.clear();
      slot.proxyless.clear();
    }
    return slot;
  }

  /** The slots still inside the window. */
  private live(): Slot[] {
    const epoch = Math.floor(this.clock.now() / this.slotMs);
    return this.slots.filter((s) => s.epoch >= 0 && s.epoch > epoch - this.slots.length && s.epoch <= epoch);
  }

  /** Sums the cells of `maps` over the window by `group` (a key from the cell). */
  private sum(maps: readonly CellMap[], group: (c: Cell) => string): Map<string, Cell> {
    const out = new Map<string, Cell>();
    for (const slot of this.live()) {
      for (const c of maps.flatMap((m) => [...slot[m].values()])) {
        const k = group(c);
        let acc = out.get(k);
        if (!acc) {
          acc = emptyCell(c.source, c.destination);
          out.set(k, acc);
        }
        addInto(acc, c);
      }
    }
    return out;
  }

  window(): MetricsWindowInfo {
    const now = this.clock.now();
    const full = this.windowMs - this.slotMs + (now % this.slotMs);
    // Right after start the window is as long as the control plane has listened (at least a slot: no huge rates).
    const ms = Math.max(this.slotMs, Math.min(full, now - this.startedAt));
    return { seconds: ms / 1000, slotSeconds: this.slotMs / 1000, at: new Date(now).toISOString() };
  }

  /**
   * Per service as destination: the inbound view (what the service's own
   * sidecars served); a service no sidecar reported for in the window is
   * served from its proxyless callers' load reports (a proxyless server).
   */
  private byDestination(): Map<string, Cell> {
    const cells = this.sum(["inbound"], (c) => c.destination);
    for (const [k, c] of this.sum(["proxyless"], (c) => c.destination)) if (!cells.has(k)) cells.set(k, c);
    return cells;
  }

  /** Per service, as destination (see `byDestination`). */
  services(known: Iterable<string> = []): ServiceGolden[] {
    const seconds = this.window().seconds;
    const cells = this.byDestination();
    const names = new Set<string>(known);
    for (const k of cells.keys()) names.add(k);
    return [...names].sort().map((service) => ({ service, ...golden(cells.get(service), seconds) }));
  }

  service(name: string): ServiceGolden {
    const seconds = this.window().seconds;
    return { service: name, ...golden(this.byDestination().get(name), seconds) };
  }

  /**
   * Every edge with traffic in the window. The caller's sidecar (outbound
   * view) is preferred: it also counts requests that never reached the
   * destination. An edge only a destination reported (a caller without a
   * reporting sidecar) is served from the inbound view. Proxyless clients'
   * load reports are a caller's view too, added to its sidecars' (distinct
   * requests: a proxyless instance has no sidecar).
   */
  edges(filter?: (source: string, destination: string) => boolean): EdgeGolden[] {
    const seconds = this.window().seconds;
    const key = (c: Cell) => edgeKey(c.source, c.destination);
    const out = this.sum(["outbound", "proxyless"], key);
    const inb = this.sum(["inbound"], key);
    for (const [k, c] of inb) if (!out.has(k)) out.set(k, c);
    const edges: EdgeGolden[] = [];
    for (const c of out.values()) {
      if (filter && !filter(c.source, c.destination)) continue;
      edges.push({ source: c.source, destination: c.destination, ...golden(c, seconds) });
    }
    return edges.sort(byEdge);
  }
}
