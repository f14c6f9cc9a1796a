import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { checkPorts, planFile, portClaims, portInUse } from "./plan.js";

const dir = mkdtempSync(join(tmpdir(), "weft-plan-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const MESH = `kind: Mesh
name: mesh
defaultPolicy: deny
---
kind: Workload
name: api-v1
service: api
command: [node, api.js]
replicas: 2
protocol: http
health: {http: /healthz, interval: 2s, timeout: 1s}
meta: {version: v1}
---
kind: Workload
name: web
command: [node, web.js]
cwd: apps/web
upstreams:
  - {service: api, localPort: 19101}
env: {GREETING: hi}
---
kind: Intention
name: api
sources:
  - {name: web, action: allow}
`;

describe("planFile", () => {
  it("turns Workloads into a plan with defaults, and keeps the other resources as written", () => {
    const r = planFile(file("ok.yaml", MESH), "ok.yaml");
    if (!r.ok) throw new Error(r.errors.join("\n"));
    const [api, web] = r.plan.workloads;
    expect(api).toMatchObject({
      name: "api-v1",
      service: "api",
      replicas: 2,
      protocol: "http",
      cwd: dir,
      health: { kind: "http", path: "/healthz", intervalMs: 2000, timeoutMs: 1000 },
      meta: { version: "v1" },
    });
    expect(web).toMatchObject({
      service: "web",
      replicas: 1,
      protocol: "tcp",
      cwd: join(dir, "apps/web"),
      health: { kind: "tcp", intervalMs: 10_000, timeoutMs: 2_000 },
      upstreams: [{ service: "api", localPort: 19101 }],
      env: { GREETING: "hi" },
    });
    expect(r.plan.resources).toEqual([
      { kind: "Mesh", name: "mesh", defaultPolicy: "deny" },
      { kind: "Intention", name: "api", sources: [{ name: "web", action: "allow" }] },
    ]);
    expect(r.plan.file).toBe(join(dir, "ok.yaml"));
    expect(r.plan.gateways).toEqual([]);
  });

  it.each([
    ["bad YAML", MESH.replace("replicas: 2", "replicas: [2"), /^bad\.yaml:\d+:\d+: document 2: /],
    [
      "unknown field",
      MESH.replace("replicas: 2", "replica: 2"),
      /bad\.yaml:9:1: Workload "api-v1": replica: unknown field/,
    ],
    [
      "upstream naming no service",
      MESH.replace("service: api, localPort", "service: nope, localPort"),
      /bad\.yaml:19:6: Workload "web": upstreams\[0\]\.service: no Workload in this file provides service "nope"/,
    ],
    [
      "a health interval the sidecar refuses",
      MESH.replace("interval: 2s, timeout: 1s", "interval: 50ms, timeout: 5ms"),
      /bad\.yaml:11:\d+: Workload "api-v1": health\.interval: must be at least 100ms/,
    ],
    ["no Workload at all", "kind: Mesh\nname: mesh\n", /bad\.yaml:1:1: file: no Workload to run/],
  ])("%s is an error at file:line:col", (_what, text, message) => {
    const r = planFile(file("bad.yaml", text), "bad.yaml");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.join("\n")).toMatch(message);
  });

  it("a missing file is a usage error (exit 2)", () => {
    expect(() => planFile(join(dir, "nope.yaml"), "nope.yaml")).toThrow(
      /cannot read nope\.yaml: no such file/,
    );
  });
});

const GATEWAYS = `---
kind: Gateway
name: edge
type: ingress
listeners:
  - port: 19090
    address: 127.0.0.1
    routes: [{host: "*", pathPrefix: /, service: web}]
  - port: 19091
    routes: [{service: api}]
---
kind: Gateway
name: egress
type: terminating
services:
  - {name: payments, host: api.payments.example, port: 443}
`;

describe("gateways", () => {
  it("each ingress and terminating Gateway is planned as a process, and applied as written", () => {
    const r = planFile(file("gw.yaml", MESH + GATEWAYS), "gw.yaml");
    if (!r.ok) throw new Error(r.errors.join("\n"));
    expect(r.plan.gateways).toEqual([
      {
        name: "edge",
        type: "ingress",
        listeners: [
          { port: 19090, address: "127.0.0.1", protocol: "http" },
          { port: 19091, address: "0.0.0.0", protocol: "http" },
        ],
        registers: ["edge"],
      },
      { name: "egress", type: "terminating", listeners: [], registers: ["payments"] },
    ]);
    expect(r.plan.resources.map((x) => (x as { kind: string; name: string }).name)).toEqual([
      "mesh",
      "api",
      "edge",
      "egress",
    ]);
  });

  it("a mesh Gateway is refused at its type (weft gateway cannot run it)", () => {
    const text = `${MESH}---\nkind: Gateway\nname: dc2\ntype: mesh\nlisteners: [{port: 18443, protocol: tcp}]\n`;
    const r = planFile(file("meshgw.yaml", text), "meshgw.yaml");
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]).toMatch(
        /^meshgw\.yaml:29:1: Gateway "dc2": type: mesh gateways are not supported by weft gateway yet/,
      );
    }
  });

  it("portClaims names each gateway listener port at its field, with its bind address", () => {
    const r = planFile(file("gwports.yaml", MESH + GATEWAYS), "gwports.yaml");
    if (!r.ok) throw new Error(r.errors.join("\n"));
    expect(portClaims(r.plan, r.documents, "gwports.yaml").slice(1)).toEqual([
      { port: 19090, host: "127.0.0.1", where: 'gwports.yaml:31:5: Gateway "edge": listeners[0].port' },
      { port: 19091, host: "0.0.0.0", where: 'gwports.yaml:34:5: Gateway "edge": listeners[1].port' },
    ]);
  });
});

describe("host ports", () => {
  it("portClaims names each fixed port at its field", () => {
    const r = planFile(file("ports.yaml", MESH.replace("replicas: 2\n", "port: 19200\n")), "ports.yaml");
    if (!r.ok) throw new Error(r.errors.join("\n"));
    expect(portClaims(r.plan, r.documents, "ports.yaml")).toEqual([
      { port: 19200, where: 'ports.yaml:9:1: Workload "api-v1": port' },
      { port: 19101, where: 'ports.yaml:19:20: Workload "web": upstreams[0].localPort' },
    ]);
  });

  it("checkPorts reports a port something listens on, and passes a free one", async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    servers.push(s);
    const busy = (s.address() as { port: number }).port;
    const errors = await checkPorts([
      { port: busy, where: 'f.yaml:3:5: Workload "a": port' },
      { port: 0, where: "free" },
    ]);
    expect(errors).toEqual([
      `f.yaml:3:5: Workload "a": port: port ${busy} is already in use on 127.0.0.1 (another process listens there)`,
    ]);
    expect(await portInUse(0)).toBeUndefined();
  });
});
