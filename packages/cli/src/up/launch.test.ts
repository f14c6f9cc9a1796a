import { describe, expect, it } from "vitest";
import {
  appCommand,
  appEnv,
  baseEnv,
  GATEWAY_DRAIN,
  gatewayArgs,
  gatewayPolicies,
  parseGatewayReady,
  sidecarArgs,
  upstreamEnvName,
  WEFT_BIN,
} from "./launch.js";
import type { GatewayPlan, WorkloadPlan } from "./plan.js";

const web: WorkloadPlan = {
  name: "web-v2",
  service: "web",
  command: ["node", "web.js", "--flag"],
  cwd: "/srv/app",
  replicas: 2,
  protocol: "http",
  port: undefined,
  health: { kind: "http", path: "/healthz", intervalMs: 2000, timeoutMs: 500 },
  upstreams: [
    { service: "api", localPort: 9101 },
    { service: "user-db", localPort: 9102 },
  ],
  env: { GREETING: "hi" },
  tags: ["canary"],
  meta: { version: "v2" },
};

describe("apps", () => {
  it("WEFT_UPSTREAM_<SERVICE>: upper case, '-' as '_'", () => {
    expect(upstreamEnvName("api")).toBe("WEFT_UPSTREAM_API");
    expect(upstreamEnvName("user-db")).toBe("WEFT_UPSTREAM_USER_DB");
  });

  it("an app gets PORT, its replica's upstream addresses and the Workload's env, never the supervisor's token", () => {
    const env = appEnv(
      web,
      2,
      { app: 40001, upstreams: { api: 40002, "user-db": 40003 } },
      { PATH: "/bin", WEFT_TOKEN: "secret", WEFT_ADDR: "x:1", WEFT_TRACE: "cli" },
    );
    expect(env).toEqual({
      PATH: "/bin",
      WEFT_TRACE: "cli",
      GREETING: "hi",
      PORT: "40001",
      WEFT_UPSTREAM_API: "http://127.0.0.1:40002",
      WEFT_UPSTREAM_USER_DB: "http://127.0.0.1:40003",
      WEFT_SERVICE: "web",
      WEFT_WORKLOAD: "web-v2",
      WEFT_REPLICA: "2",
    });
    expect(baseEnv({ WEFT_TOKEN: "t", A: "b" })).toEqual({ A: "b" });
  });

  it("`node` runs with weft's own Node; other programs as written", () => {
    expect(appCommand(web, "/opt/node/bin/node")).toEqual({
      command: "/opt/node/bin/node",
      args: ["web.js", "--flag"],
    });
    expect(appCommand({ ...web, command: ["./server", "-p"] })).toEqual({
      command: "./server",
      args: ["-p"],
    });
  });
});

describe("sidecars", () => {
  it("weft proxy flags from the Workload, with this replica's ports", () => {
    const args = sidecarArgs(
      web,
      "web-v2-2",
      { app: 40001, upstreams: { api: 40002, "user-db": 40003 }, inbound: 40010, admin: 40011 },
      "http://127.0.0.1:7400",
    );
    expect(args).toEqual([
      "proxy",
      "--service",
      "web",
      "--instance-id",
      "web-v2-2",
      "--app-port",
      "40001",
      "--inbound",
      "127.0.0.1:40010",
      "--admin",
      "127.0.0.1:40011",
      "--protocol",
      "http",
      "--health-http",
      "/healthz",
      "--health-interval",
      "2000ms",
      "--health-timeout",
      "500ms",
      "--drain-timeout",
      "5s",
      "--server",
      "http://127.0.0.1:7400",
      "--upstream",
      "api=40002",
      "--upstream",
      "user-db=40003",
      "--tag",
      "canary",
      "--meta",
      "version=v2",
    ]);
    expect(args.join(" ")).not.toMatch(/token/i);
    expect(WEFT_BIN).toMatch(/bin[/\\]weft\.js$/);
  });

  it.each([
    [{ kind: "tcp" as const }, ["--health-tcp"]],
    [{ kind: "grpc" as const }, ["--health-grpc"]],
    [{ kind: "grpc" as const, grpcService: "shop.Cart" }, ["--health-grpc", "shop.Cart"]],
  ])("health %j", (h, flags) => {
    const args = sidecarArgs(
      { ...web, health: { ...h, intervalMs: 1000, timeoutMs: 100 } },
      "x-1",
      { app: 1, upstreams: {}, inbound: 2, admin: 3 },
      "s",
    );
    const i = args.indexOf("--health-interval");
    expect(args.slice(i - flags.length, i)).toEqual(flags);
  });
});

describe("gateways", () => {
  const edge: GatewayPlan = {
    name: "edge",
    type: "ingress",
    listeners: [{ port: 9090, address: "127.0.0.1", protocol: "http" }],
    registers: ["edge"],
  };

  it("weft gateway --name NAME: its resource from the control plane, admin on the chosen port, no token in argv", () => {
    const args = gatewayArgs(edge, 41000, "http://127.0.0.1:7400");
    expect(args).toEqual([
      "gateway",
      "--name",
      "edge",
      "--admin",
      "127.0.0.1:41000",
      "--drain-timeout",
      GATEWAY_DRAIN,
      "--server",
      "http://127.0.0.1:7400",
    ]);
    expect(args).not.toContain("-f");
    expect(args.join(" ")).not.toMatch(/token/i);
  });

  it("the token may write what the gateway registers: itself (ingress) or each external service (terminating)", () => {
    expect(gatewayPolicies(edge)).toEqual(["service:edge:write"]);
    expect(
      gatewayPolicies({
        name: "egress",
        type: "terminating",
        listeners: [],
        registers: ["payments", "legacy"],
      }),
    ).toEqual(["service:payments:write", "service:legacy:write"]);
  });

  it("parses the ready line of an ingress and of a terminating gateway", () => {
    expect(
      parseGatewayReady("weft gateway ready name=edge type=ingress listeners=9090,9443 admin=41234", "edge"),
    ).toEqual({
      type: "ingress",
      listeners: [
        { name: "listener-0", port: 9090 },
        { name: "listener-1", port: 9443 },
      ],
      admin: 41234,
    });
    expect(
      parseGatewayReady(
        "weft gateway ready name=egress type=terminating services=payments:41001,legacy:41002 admin=41003\n",
        "egress",
      ),
    ).toEqual({
      type: "terminating",
      listeners: [
        { name: "payments", port: 41001 },
        { name: "legacy", port: 41002 },
      ],
      admin: 41003,
    });
  });

  it.each([
    ["a log line", '{"level":30,"msg":"gateway ready","listeners":[9090]}'],
    ["another gateway's line", "weft gateway ready name=other type=ingress listeners=9090 admin=1"],
    ["no admin port", "weft gateway ready name=edge type=ingress listeners=9090"],
    ["a bad port", "weft gateway ready name=edge type=ingress listeners=90x0 admin=1"],
  ])("%s is not the ready line", (_what, line) => {
    expect(parseGatewayReady(line, "edge")).toBeUndefined();
  });
});
