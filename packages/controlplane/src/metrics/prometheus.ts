/**
 * The control plane's own Prometheus metrics (`GET /metrics`): prom-client's
 * process and Node.js defaults plus a few gauges and counters read from the
 * live objects at scrape time (no bookkeeping on the request path).
 * A registry of its own, never prom-client's global one: several control
 * planes may share a process (tests, `weft up`).
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { GoldenWindow } from "./golden.js";

/** What the metrics read; kept structural so the sources need not know about this file. */
export interface ControlPlaneMetricSources {
  catalog: {
    listServices(): readonly { instances: number; passing: number; warning: number; critical: number }[];
  };
  proxies: { readonly stats: { streams: number; pushes: number; unchanged: number; invalid: number } };
  golden: GoldenWindow;
  blockingQueries(): number;
}

/** A counter that mirrors a monotonic number kept elsewhere: increments by the difference at each scrape. */
function mirror(counter: { inc(n: number): void }, read: () => number): () => void {
  let last = 0;
  return () => {
    const v = read();
    if (v > last) counter.inc(v - last);
    last = Math.max(last, v);
  };
}

const TOTAL_GAUGES = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

export class ControlPlaneMetrics {
  readonly registry = new Registry();
  private readonly sync: () => void;

  constructor(src: ControlPlaneMetricSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // prom-client names three gauges "..._total", which `promtool check metrics` flags (a gauge
    // must not end in _total); the same figures stay available by type in nodejs_active_handles
    // and nodejs_active_requests / nodejs_active_resources.
    for (const name of TOTAL_GAUGES) this.registry.removeSingleMetric(name);
    new Gauge({
      name: "weft_controlplane_services",
      help: "Services with at least one registered instance.",
      registers,
      collect() {
        this.set(src.catalog.listServices().length);
      },
    });
    new Gauge({
      name: "weft_controlplane_instances",
      help: "Registered instances, by health status.",
      labelNames: ["status"],
      registers,
      collect() {
        const n = { passing: 0, warning: 0, critical: 0 };
        for (const s of src.catalog.listServices()) {
          n.passing += s.passing;
          n.warning += s.warning;
          n.critical += s.critical;
        }
        for (const [status, v] of Object.entries(n)) this.set({ status }, v);
      },
    });
    new Gauge({
      name: "weft_controlplane_proxy_streams",
      help: "Proxies connected to the config stream.",
      registers,
      collect() {
        this.set(src.proxies.stats.streams);
      },
    });
    new Gauge({
      name: "weft_controlplane_blocking_queries",
      help: "Blocking (long-poll) reads currently held.",
      registers,
      collect() {
        this.set(src.blockingQueries());
      },
    });
    const pushes = new Counter({
      name: "weft_controlplane_config_pushes_total",
      help: "Config snapshots pushed to proxies.",
      registers,
    });
    const syncPushes = mirror(pushes, () => src.proxies.stats.pushes);
    const invalid = new Counter({
      name: "weft_controlplane_config_snapshots_invalid_total",
      help: "Config snapshots refused before sending (build error or failed check).",
      registers,
    });
    const syncInvalid = mirror(invalid, () => src.proxies.stats.invalid);
    const reports = new Counter({
      name: "weft_controlplane_stats_reports_total",
      help: "Golden-metric reports received from sidecars, by result (accepted, duplicate).",
      labelNames: ["result"],
      registers,
    });
    const syncAccepted = mirror(reports.labels("accepted"), () => src.golden.stats.reports);
    const syncDuplicate = mirror(reports.labels("duplicate"), () => src.golden.stats.duplicates);
    // Counters have no collect hook of their own here: bring them up to date before each scrape.
    this.sync = () => {
      syncPushes();
      syncInvalid();
      syncAccepted();
      syncDuplicate();
    };
  }

  /** The exposition text and its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    this.sync();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
