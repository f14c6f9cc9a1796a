import { describe, expect, it } from "vitest";
import type { DataplaneLogger } from "../logger.js";
import { ACCESS_LOG_MSG, AccessLog, logAuthority, logPath } from "./access-log.js";

function sink(): DataplaneLogger & { lines: { obj: object; msg: string }[] } {
  const lines: { obj: object; msg: string }[] = [];
  return {
    lines,
    info: (obj: object, msg: string) => {
      lines.push({ obj, msg });
    },
    warn: () => {},
  };
}

const web = { service: "web", spiffeId: "spiffe://weft.local/ns/default/svc/web" };
const api = { service: "api", spiffeId: "spiffe://weft.local/ns/default/svc/api" };

describe("AccessLog", () => {
  it("writes one line with the listed fields only: path without its query, durations rounded", () => {
    const s = sink();
    const log = new AccessLog(s);
    log.request({
      direction: "outbound",
      source: web,
      destination: api,
      method: "GET",
      authority: "user:pw@api.internal:8080",
      path: "/orders/7?token=SECRET#frag",
      route: 'route[0] "orders"',
      status: 503,
      flags: "UF,URX",
      durationMs: 12.3456789,
      upstream: "api-1",
      cluster: "api.v2",
      retries: 2,
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    });
    expect(s.lines).toEqual([
      {
        msg: ACCESS_LOG_MSG,
        obj: {
          type: "http",
          direction: "outbound",
          source: web,
          destination: api,
          route: 'route[0] "orders"',
          method: "GET",
          authority: "api.internal:8080",
          path: "/orders/7",
          status: 503,
          flags: "UF,URX",
          durationMs: 12.346,
          upstream: "api-1",
          cluster: "api.v2",
          retries: 2,
          traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
        },
      },
    ]);
    expect(JSON.stringify(s.lines)).not.toContain("SECRET");
  });

  it("logs TCP connections with bytes", () => {
    const s = sink();
    new AccessLog(s).connection({
      direction: "inbound",
      source: { service: "web" },
      destination: api,
      result: "ok",
      bytesIn: 10,
      bytesOut: 20,
    });
    expect(s.lines[0]?.obj).toEqual({
      type: "tcp",
      direction: "inbound",
      source: { service: "web" },
      destination: api,
      result: "ok",
      bytesIn: 10,
      bytesOut: 20,
    });
  });

  it("writes nothing without a destination, when disabled, or at sampling 0", () => {
    const req = {
      direction: "inbound" as const,
      source: web,
      destination: api,
      status: 200,
      flags: "-",
      durationMs: 1,
    };
    const none = new AccessLog(undefined);
    expect(none.active).toBe(false);
    none.request(req);
    const s = sink();
    const log = new AccessLog(s);
    expect(log.active).toBe(true); // the defaults: on, every request
    log.configure({ enabled: false, sampling: 1 });
    expect(log.active).toBe(false);
    log.request(req);
    log.configure({ enabled: true, sampling: 0 });
    log.request(req);
    expect(s.lines).toHaveLength(0);
    log.configure(undefined);
    log.request(req);
    expect(s.lines).toHaveLength(1);
  });

  it("samples by the configured share", () => {
    const s = sink();
    let r = 0;
    const log = new AccessLog(s, () => r);
    log.configure({ enabled: true, sampling: 0.25 });
    const req = {
      direction: "inbound" as const,
      source: web,
      destination: api,
      status: 200,
      flags: "-",
      durationMs: 1,
    };
    for (const x of [0.1, 0.3, 0.2, 0.9]) {
      r = x;
      log.request(req);
    }
    expect(s.lines).toHaveLength(2);
  });

  it("never lets a failing destination reach the request", () => {
    const log = new AccessLog({
      info: () => {
        throw new Error("disk full");
      },
      warn: () => {},
    });
    expect(() =>
      log.request({
        direction: "inbound",
        source: web,
        destination: api,
        status: 200,
        flags: "-",
        durationMs: 1,
      }),
    ).not.toThrow();
  });

  it("strips queries, fragments and userinfo", () => {
    expect(logPath("/a?b=c")).toBe("/a");
    expect(logPath("/a#x?y")).toBe("/a");
    expect(logPath("*")).toBe("*");
    expect(logAuthority("a:b@host:1")).toBe("host:1");
    expect(logAuthority("host")).toBe("host");
  });
});
