/**
 * `weft proxy` flag checking: every bad flag is refused with exit 2 and a
 * message naming it, before anything starts (no sockets, no control plane).
 * The running sidecar is covered by e2e/proxy-*.test.ts.
 */
import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";
import { EXIT } from "../exit-codes.js";
import { runCaptured } from "../run-captured.suite.js";
import { parseHostPort, parseUpstreams } from "./proxy.js";

const base = ["proxy", "--service", "web", "--app-port", "8080", "--server", "127.0.0.1:1"];

describe("weft proxy flags", () => {
  it.each([
    [["--service", "Web_1"], /--service "Web_1"/],
    [["--app-port", "0"], /--app-port "0"/],
    [["--app-port", "70000"], /--app-port "70000"/],
    [["--inbound", "nohost"], /--inbound "nohost"/],
    [["--admin", "1.2.3.4:99999"], /--admin "99999"|--admin "1.2.3.4:99999"/],
    [["--upstream", "api"], /--upstream "api": expected SERVICE=LOCALPORT/],
    [["--upstream", "API=9000"], /not a service name/],
    [["--upstream", "api=9000", "--upstream", "db=9000"], /already used by upstream "api"/],
    [["--upstream", "api=9000", "--upstream", "api=9001"], /listed twice/],
    [["--protocol", "udp"], /udp/],
    [["--health-http", "healthz"], /starting with \//],
    [["--health-http", "/h", "--health-tcp"], /choose one of/],
    [["--health-interval", "10ms"], /at least 100 ms/],
    [["--health-interval", "soon"], /--health-interval "soon"/],
    [["--meta", "novalue"], /KEY=VALUE/],
    [["--cert-ttl", "1ms"], /--cert-ttl/],
  ])("refuses %j", async (extra, message) => {
    // Later flags override earlier ones for single-valued options.
    const r = await runCaptured([...base, ...extra], tmpdir());
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toMatch(message);
    expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
  });

  it("requires --service and --app-port", async () => {
    const r = await runCaptured(["proxy", "--app-port", "1"], tmpdir());
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toMatch(/--service/);
  });

  it("parses upstreams and addresses", () => {
    expect(parseUpstreams(["api=9101", "db=9102"])).toEqual([
      { service: "api", localPort: 9101 },
      { service: "db", localPort: 9102 },
    ]);
    expect(parseHostPort("--inbound", ":0")).toEqual({ host: "127.0.0.1", port: 0 });
    expect(parseHostPort("--inbound", "[::1]:15001")).toEqual({ host: "::1", port: 15001 });
    expect(parseHostPort("--inbound", "0.0.0.0:15001")).toEqual({ host: "0.0.0.0", port: 15001 });
  });
});
