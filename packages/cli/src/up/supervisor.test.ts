import { describe, expect, it } from "vitest";
import { inboundRequests } from "./supervisor.js";

describe("inboundRequests", () => {
  it("sums the sidecar's inbound request counters only", () => {
    const text = [
      "# HELP weft_proxy_requests_total HTTP requests",
      "# TYPE weft_proxy_requests_total counter",
      'weft_proxy_requests_total{direction="inbound",source_service="web",destination_service="api",response_code_class="2xx",response_flags="-"} 40',
      'weft_proxy_requests_total{direction="inbound",source_service="web",destination_service="api",response_code_class="4xx",response_flags="RBAC"} 2',
      'weft_proxy_requests_total{direction="outbound",source_service="api",destination_service="db",response_code_class="2xx",response_flags="-"} 99',
      'weft_proxy_request_duration_seconds_count{direction="inbound"} 42',
    ].join("\n");
    expect(inboundRequests(text)).toBe(42);
    expect(inboundRequests("")).toBe(0);
  });
});
