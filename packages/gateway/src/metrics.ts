/**
 * The gateway's golden counters in Prometheus text, served on its admin
 * listener: requests by listener port, destination service and status
 * class, and local refusals by flag. Label values are bounded: ports and
 * service names from config, status classes, flag codes.
 */

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

export class GatewayMetrics {
  private readonly requests = new Map<string, number>();
  private isConnected = 0;

  constructor(private readonly gateway: string) {}

  request(listener: number, upstream: string, status: number, flags: string): void {
    const cls = status === 0 ? "none" : `${Math.floor(status / 100)}xx`;
    const key = `${listener}\u0000${upstream || "-"}\u0000${cls}\u0000${flags}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  connected(up: boolean): void {
    this.isConnected = up ? 1 : 0;
  }

  /** Requests counted for a status class (tests). */
  count(cls: string): number {
    let n = 0;
    for (const [k, v] of this.requests) if (k.split("\u0000")[2] === cls) n += v;
    return n;
  }

  render(): string {
    const g = escapeLabel(this.gateway);
    const lines = [
      "# HELP weft_gateway_requests_total Requests handled by the gateway's listeners.",
      "# TYPE weft_gateway_requests_total counter",
    ];
    for (const [k, v] of this.requests) {
      const [listener, upstream, cls, flags] = k.split("\u0000") as [string, string, string, string];
      lines.push(
        `weft_gateway_requests_total{gateway="${g}",listener="${listener}",destination_service="${escapeLabel(upstream)}",response_class="${cls}",flags="${escapeLabel(flags)}"} ${v}`,
      );
    }
    lines.push(
      "# HELP weft_gateway_config_connected Whether the config stream to the control plane is up.",
      "# TYPE weft_gateway_config_connected gauge",
      `weft_gateway_config_connected{gateway="${g}"} ${this.isConnected}`,
    );
    return `${lines.join("\n")}\n`;
  }
}
