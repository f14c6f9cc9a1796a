/**
 * A counter and a histogram for the per-request path, exported through the
 * sidecar's prom-client registry in prom-client's own format (same text).
 *
 * Why not prom-client's: its `inc()` and `observe()` hash the label object
 * on every call, and `inc()` also returns a fresh array of every child of
 * the counter (Object.values of its map). With the sampling heap profiler
 * that came to about 1.4 KB of garbage per proxied request. Here the caller
 * keeps a cell per label set and adds to numbers; the exposition is built
 * when Prometheus scrapes.
 *
 * Cells live as long as the metric, as prom-client's children did: label
 * values are bounded by design (service names, classes, flags).
 */
import type { Registry } from "prom-client";

type Labels = Record<string, string | number>;

interface ExportedValue {
  labels: Labels;
  value: number;
  metricName?: string;
}

interface Exported {
  name: string;
  help: string;
  type: "counter" | "histogram";
  values: ExportedValue[];
  aggregator: "sum";
}

/** What both metrics share: registration, one cell per label set, reset. */
abstract class HotMetric<C> {
  abstract readonly type: "counter" | "histogram";
  readonly aggregator = "sum";
  protected readonly cells = new Map<string, { labels: Labels; cell: C }>();

  constructor(
    readonly name: string,
    readonly help: string,
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }

  protected abstract newCell(): C;

  /** The cell of one label set; `key` must identify it (the caller builds it once). */
  cell(key: string, labels: Labels): C {
    let c = this.cells.get(key);
    if (c === undefined) {
      c = { labels, cell: this.newCell() };
      this.cells.set(key, c);
    }
    return c.cell;
  }

  /** Read by prom-client's Registry when it renders the exposition. */
  abstract get(): Promise<Exported>;

  /** Called by the Registry's resetMetrics. */
  reset(): void {
    this.cells.clear();
  }
}

export interface CounterCell {
  value: number;
}

export class HotCounter extends HotMetric<CounterCell> {
  readonly type = "counter";

  protected newCell(): CounterCell {
    return { value: 0 };
  }

  async get(): Promise<Exported> {
    const values: ExportedValue[] = [];
    for (const c of this.cells.values()) values.push({ labels: c.labels, value: c.cell.value });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}

export interface HistogramCell {
  /** counts[i]: observations ≤ bounds[i] and > bounds[i-1]; the last slot is above every bound. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

export class HotHistogram extends HotMetric<HistogramCell> {
  readonly type = "histogram";

  constructor(
    name: string,
    help: string,
    /** Ascending upper bounds (prom-client's `buckets`), without +Inf. */
    readonly bounds: readonly number[],
    registry: Registry,
  ) {
    super(name, help, registry);
  }

  protected newCell(): HistogramCell {
    return { counts: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 };
  }

  observe(cell: HistogramCell, v: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && v > (bounds[i] as number)) i++;
    cell.counts[i] = (cell.counts[i] ?? 0) + 1;
    cell.sum += v;
    cell.count += 1;
  }

  async get(): Promise<Exported> {
    const values: ExportedValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const { labels, cell } of this.cells.values()) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += cell.counts[i] ?? 0;
        values.push({ labels: { le, ...labels }, value: acc, metricName: bucket });
      });
      values.push({ labels: { le: "+Inf", ...labels }, value: cell.count, metricName: bucket });
      values.push({ labels, value: cell.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: cell.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}
