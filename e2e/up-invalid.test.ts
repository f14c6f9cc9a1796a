/**
 * `weft up` refuses an invalid file before anything starts: bad YAML, an
 * unknown kind, an unknown field, an upstream naming a service no Workload
 * provides, two upstreams on one local port, a local port already in use,
 * and the control plane's --listen address in use. Each: exit 2, the
 * message names file:line:col and the field, and nothing was started (no
 * data dir was created, and the app, which would leave a marker file, never
 * ran). `-d` is used so that a wrong acceptance returns instead of hanging.
 */
import { existsSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { freePort } from "@weft/testkit";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { cleanup, runWeft, tempDir } from "./helpers/weft.js";

afterAll(cleanup);

const held: Server[] = [];
afterEach(async () => {
  await Promise.all(held.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A port some other process (here: this test) listens on. */
async function holdPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  held.push(s);
  const a = s.address();
  return typeof a === "object" && a ? a.port : 0;
}

/** An app that proves it ran by writing `started` in its working directory, and serves on PORT. */
const APP = `["node", "-e", "require('fs').writeFileSync('started', 'x'); require('http').createServer((q, s) => s.end('ok')).listen(+process.env.PORT, '127.0.0.1')"]`;

function workloads(apiPort: number, extra = ""): string {
  return `kind: Workload
name: api
command: ${APP}
protocol: http
---
kind: Workload
name: web
command: ${APP}
protocol: http
upstreams:
  - {service: api, localPort: ${apiPort}}
${extra}`;
}

interface Case {
  name: string;
  file: (port: number) => Promise<string> | string;
  /** Fragments the error output must contain (file:line:col and field included). */
  expect: (port: number) => (string | RegExp)[];
  args?: (port: number) => Promise<string[]> | string[];
}

const CASES: Case[] = [
  {
    name: "bad YAML",
    file: (p) => workloads(p).replace("protocol: http\n---", "protocol: [http\n---"),
    expect: () => [/weft\.yaml:\d+:\d+: document 1: .*(flow|Flow|sequence|end with)/],
  },
  {
    name: "unknown kind",
    file: (p) => `${workloads(p)}---\nkind: Workloadz\nname: x\n`,
    expect: () => [
      /weft\.yaml:13:1: Workloadz "x": kind: unknown kind "Workloadz"; expected one of Mesh, Workload/,
    ],
  },
  {
    name: "unknown field",
    file: (p) => workloads(p).replace("name: api\n", "name: api\nreplica: 2\n"),
    expect: () => ['weft.yaml:3:1: Workload "api": replica: unknown field "replica"'],
  },
  {
    name: "an upstream naming no service",
    file: (p) => workloads(p).replace("service: api,", "service: payments,"),
    expect: () => [
      'weft.yaml:11:6: Workload "web": upstreams[0].service: no Workload in this file provides service "payments"',
    ],
  },
  {
    name: "duplicate local ports",
    file: (p) =>
      `${workloads(p)}---\nkind: Workload\nname: admin\ncommand: ${APP}\nupstreams:\n  - {service: api, localPort: ${p}}\n`,
    expect: (p) => [
      `weft.yaml:17:20: Workload "admin": upstreams[0].localPort: port ${p} is already used by Workload "web" upstreams[0].localPort`,
    ],
  },
  {
    name: "a local port already in use",
    file: async () => workloads(await holdPort()),
    expect: () => [
      /weft\.yaml:11:20: Workload "web": upstreams\[0\]\.localPort: port \d+ is already in use on 127\.0\.0\.1/,
    ],
  },
  {
    name: "the control plane's --listen address in use",
    file: (p) => workloads(p),
    args: async () => ["--listen", `127.0.0.1:${await holdPort()}`],
    expect: () => [/--listen 127\.0\.0\.1:\d+: port \d+ is already in use on 127\.0\.0\.1/],
  },
];

describe("weft up refuses an invalid file before anything starts (exit 2)", () => {
  it.each(CASES.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    const dir = tempDir("weft-up-invalid-");
    const port = await freePort();
    const file = join(dir, "weft.yaml");
    writeFileSync(file, await c.file(port));
    const extra = c.args ? await c.args(port) : ["--listen", "127.0.0.1:0"];
    const r = await runWeft(["up", "-d", "-f", "weft.yaml", "--timeout", "20s", ...extra], {
      cwd: dir,
      timeoutMs: 30_000,
    });
    for (const e of c.expect(port)) {
      if (typeof e === "string") expect(r.stderr).toContain(e);
      else expect(r.stderr).toMatch(e);
    }
    expect(r.stderr).toMatch(/nothing was started \(WEFT_ERR_CONFIG_INVALID\)/);
    expect(r.code).toBe(2);
    // Nothing started: no data dir, and no app ran (it would have written `started`).
    await new Promise((res) => setTimeout(res, 300));
    expect(existsSync(join(dir, ".weft"))).toBe(false);
    expect(existsSync(join(dir, "started"))).toBe(false);
  });

  it("a valid variant of the same file does start (so the cases above can fail)", async () => {
    const dir = tempDir("weft-up-valid-");
    writeFileSync(join(dir, "weft.yaml"), workloads(await freePort()));
    const r = await runWeft(["up", "-d", "-f", "weft.yaml", "--listen", "127.0.0.1:0", "--timeout", "60s"], {
      cwd: dir,
      timeoutMs: 90_000,
    });
    try {
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(existsSync(join(dir, "started"))).toBe(true);
      expect(existsSync(join(dir, ".weft", "state.json"))).toBe(true);
    } finally {
      const down = await runWeft(["down"], { cwd: dir, timeoutMs: 60_000 });
      expect(down.code).toBe(0);
    }
    expect(existsSync(join(dir, ".weft", "state.json"))).toBe(false);
  }, 120_000);
});
