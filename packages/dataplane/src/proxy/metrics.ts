/**
 * The sidecar's first set of Prometheus metrics (prom-client, a registry of
 * its own, not the global one). Labels are bounded: service names come from
 * the snapshot or verified peer identities, codes are classes, never paths
 * or ids. The full telemetry (routes, histograms per edge, tracing) is its
 * own issue; the names here follow Prometheus conventions so it can extend
 * them without renaming.
 */
import { Counter, Gauge, Registry } from "prom-client";
import { type CounterCell, type HistogramCell, HotCounter, HotHistogram } from "./hot-metrics.js";

export type Direction = "inbound" | "outbound";

export class ProxyMetrics {
  readonly registry = new Registry();
  /** Per request: kept out of prom-client's inc()/observe() (see hot-metrics.ts). */
  readonly requests: HotCounter;
  readonly duration: HotHistogram;
  readonly tcpConnections: Counter<"direction" | "source_service" | "destination_service" | "result">;
  readonly tcpBytes: Counter<"direction" | "source_service" | "destination_service" | "flow">;
  readonly denials: Counter<"source_service" | "reason">;
  readonly retries: Counter<"destination_service">;
  readonly breakerOverflows: Counter<"destination_service" | "limit">;
  readonly outlierEjections: Counter<"destination_service">;
  readonly rateLimited: Counter<"source_service" | "route">;
  readonly connectionsDropped: Counter<"listener">;
  readonly mirrors: Counter<"destination_cluster" | "result">;
  readonly timeouts: Counter<"direction" | "destination_service">;
  readonly inFlight: Gauge<"direction">;
  readonly configConnected: Gauge;
  readonly configUpdates: Counter<"result">;
  readonly certExpiry: Gauge;
  readonly ready: Gauge;

  constructor(
    readonly service: string,
    /** Requests in progress now, read at scrape time. */
    inFlight?: () => { inbound: number; outbound: number },
  ) {
    const registers = [this.registry];
    this.requests = new HotCounter(
      "weft_proxy_requests_total",
      'HTTP requests handled by the sidecar, by direction, source and destination service, route (the Route entry that matched, "-" for none), method class (safe: GET HEAD OPTIONS TRACE; unsafe: the rest), response code class and response flags.',
      this.registry,
    );
    this.duration = new HotHistogram(
      "weft_proxy_request_duration_seconds",
      "Time from request received to response complete, as seen by the sidecar.",
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      this.registry,
    );
    this.tcpConnections = new Counter({
      name: "weft_proxy_tcp_connections_total",
      help: "TCP (L4) connections proxied, by direction, source and destination service and result.",
      labelNames: ["direction", "source_service", "destination_service", "result"],
      registers,
    });
    this.tcpBytes = new Counter({
      name: "weft_proxy_tcp_bytes_total",
      help: "Bytes proxied over TCP (L4) connections; flow is sent (towards the destination) or received.",
      labelNames: ["direction", "source_service", "destination_service", "flow"],
      registers,
    });
    this.denials = new Counter({
      name: "weft_proxy_authz_denied_total",
      help: "Requests and connections refused by intentions at the inbound listener, by source and reason code.",
      labelNames: ["source_service", "reason"],
      registers,
    });
    this.retries = new Counter({
      name: "weft_proxy_retries_total",
      help: "Retries of outbound requests (tries after the first), by destination service.",
      labelNames: ["destination_service"],
      registers,
    });
    this.breakerOverflows = new Counter({
      name: "weft_proxy_circuit_breaker_overflows_total",
      help: "Outbound requests, connections and retries refused by a circuit breaker, by destination service and limit (connections, pending_requests, requests, retries).",
      labelNames: ["destination_service", "limit"],
      registers,
    });
    this.outlierEjections = new Counter({
      name: "weft_proxy_outlier_ejections_total",
      help: "Endpoints ejected by outlier detection, by destination service.",
      labelNames: ["destination_service"],
      registers,
    });
    this.rateLimited = new Counter({
      name: "weft_proxy_rate_limited_total",
      help: 'Requests and TCP connections refused by a local rate limit at the inbound listener, by source service and the limit that refused them ("route[i]" in config order, or "service").',
      labelNames: ["source_service", "route"],
      registers,
    });
    this.connectionsDropped = new Counter({
      name: "weft_proxy_connections_dropped_total",
      help: "Connections closed on arrival because the listener already held its cap of open connections (WEFT_MAX_CONNECTIONS, default 10000), by listener (inbound, outbound).",
      labelNames: ["listener"],
      registers,
    });
    this.timeouts = new Counter({
      name: "weft_proxy_timeouts_total",
      help: "Requests that ended in a timeout (response flag UT: the request, per-try or idle timeout of the cluster or route), by direction and destination service.",
      labelNames: ["direction", "destination_service"],
      registers,
    });
    this.inFlight = new Gauge({
      name: "weft_proxy_requests_in_flight",
      help: "HTTP requests in progress at the sidecar, by direction.",
      labelNames: ["direction"],
      registers,
      collect: () => {
        const now = inFlight?.();
        if (now === undefined) return;
        this.inFlight.set({ direction: "inbound" }, now.inbound);
        this.inFlight.set({ direction: "outbound" }, now.outbound);
      },
    });
    this.mirrors = new Counter({
      name: "weft_proxy_mirrored_requests_total",
      help: "Copies of outbound requests sent by a route's mirror, by destination cluster and result (sent, skipped: over limits or body not kept, failed).",
      labelNames: ["destination_cluster", "result"],
      registers,
    });
    this.configConnected = new Gauge({
      name: "weft_proxy_control_plane_connected",
      help: "1 while the config stream to the control plane is up.",
      registers,
    });
    this.configUpdates = new Counter({
      name: "weft_proxy_config_updates_total",
      help: "Config snapshots received, by result (applied or rejected).",
      labelNames: ["result"],
      registers,
    });
    this.certExpiry = new Gauge({
      name: "weft_proxy_certificate_expiry_timestamp_seconds",
      help: "When the sidecar's current workload certificate expires (Unix time).",
      registers,
    });
    this.ready = new Gauge({
      name: "weft_proxy_ready",
      help: "1 when the sidecar is ready to serve.",
      registers,
    });
  }

  /** The cells of one label set, found with one lookup (and no second key string for the histogram). */
  private readonly children = new Map<
    string,
    { count: CounterCell; time: HistogramCell; timeouts: { inc(): void } | undefined }
  >();

  request(direction: Direction, source: string, destination: string, e: RequestFacts): void {
    const status = e.status;
    const cls = CODE_CLASS[Math.floor(status / 100)] ?? "other";
    const flag = e.flags === "" ? "-" : e.flags;
    const route = e.route ?? "-";
    const methodClass = e.method === undefined ? "-" : SAFE_METHODS.has(e.method) ? "safe" : "unsafe";
    const key = `${direction}\u0000${source}\u0000${destination}\u0000${route}\u0000${methodClass}\u0000${cls}\u0000${flag}`;
    let child = this.children.get(key);
    if (child === undefined) {
      // Bounded like the labels themselves; a burst of new peers only costs a rebuild.
      if (this.children.size >= 10_000) this.children.clear();
      child = {
        count: this.requests.cell(key, {
          direction,
          source_service: source,
          destination_service: destination,
          route,
          method_class: methodClass,
          response_code_class: cls,
          response_flags: flag,
        }),
        time: this.duration.cell(`${direction}\u0000${source}\u0000${destination}`, {
          direction,
          source_service: source,
          destination_service: destination,
        }),
        timeouts: flag.includes("UT") ? this.timeouts.labels(direction, destination) : undefined,
      };
      this.children.set(key, child);
    }
    child.count.value += 1;
    this.duration.observe(child.time, e.durationMs / 1000);
    child.timeouts?.inc();
  }
}

/** What a request event gives the request counters. */
export interface RequestFacts {
  status: number;
  flags: string;
  durationMs: number;
  method?: string;
  route?: string;
}

/** Status code classes by hundreds (1xx-5xx); anything else is "other". */
const CODE_CLASS: readonly (string | undefined)[] = [undefined, "1xx", "2xx", "3xx", "4xx", "5xx"];

/** RFC 9110 safe methods: the "safe" method class. */
const SAFE_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);
