/**
 * `weft up` when things go wrong, with real processes:
 *  - `-d` with an app that keeps crashing: exit 1 naming the replica, its
 *    exit code and its last output lines, and everything it started is
 *    stopped again;
 *  - a killed sidecar is started again and registers under the same
 *    instance id;
 *  - the supervisor itself killed (SIGKILL): its apps and sidecars live on,
 *    `weft ps` says the supervisor is gone, `weft down` stops what is left,
 *    and a new `weft up` on the same data dir starts cleanly.
 * "Nothing left" is checked through /proc: no process has the mesh's
 * directory as its working directory (every app and sidecar runs there).
 */
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import { waitFor } from "./helpers/mesh.js";
import { cleanup, runWeft, tempDir } from "./helpers/weft.js";

const dirs: string[] = [];

/** Pids of processes whose working directory is `dir`. */
function processesIn(dir: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readlinkSync(`/proc/${name}/cwd`) === dir) out.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

afterAll(async () => {
  for (const d of dirs) {
    await runWeft(["down", "--data-dir", join(d, ".weft")], { timeoutMs: 60_000 }).catch(() => {});
    for (const pid of processesIn(d)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
  await cleanup();
}, 90_000);

const SERVE = `["node", "-e", "require('http').createServer((q, s) => s.end('ok ' + process.env.WEFT_REPLICA)).listen(+process.env.PORT, '127.0.0.1')"]`;

function meshDir(text: string): string {
  const d = tempDir("weft-up-failures-");
  dirs.push(d);
  writeFileSync(join(d, "weft.yaml"), text);
  return d;
}

// biome-ignore lint/suspicious/noExplicitAny: test code reads arbitrary JSON fields
async function psJson(dir: string): Promise<any> {
  const r = await runWeft(["ps", "--json"], { cwd: dir });
  if (r.code !== 0) throw new Error(`weft ps: ${r.code} ${r.stderr}`);
  return JSON.parse(r.stdout);
}

describe("weft up when things fail", () => {
  it("-d with an app that keeps crashing: exit 1 with the exit and its last output; nothing left", async () => {
    const dir = meshDir(`kind: Workload
name: crashy
command: ["node", "-e", "console.log('starting'); console.error('Error: the database is on fire'); process.exit(3)"]
---
kind: Workload
name: fine
command: ${SERVE}
`);
    const r = await runWeft(["up", "-d", "--listen", "127.0.0.1:0", "--timeout", "8s"], {
      cwd: dir,
      timeoutMs: 90_000,
    });
    expect(r.stderr).toMatch(/weft up failed: not healthy within 8\.0s:/);
    expect(r.stderr).toMatch(/crashy-1 app exited with code 3 \(\d+ restarts?\); last output:/);
    expect(r.stderr).toContain("Error: the database is on fire");
    expect(r.stderr).not.toMatch(/fine-1/);
    expect(r.code).toBe(1);
    expect(processesIn(dir)).toEqual([]);
    const ps = await runWeft(["ps"], { cwd: dir });
    expect(ps.code).toBe(5);
  }, 120_000);

  it("a killed sidecar comes back under the same instance id; a killed supervisor leaves work for weft down", async () => {
    const dir = meshDir(`kind: Workload
name: web
replicas: 2
protocol: http
health: {http: /, interval: 500ms, timeout: 400ms}
command: ${SERVE}
`);
    const up = await runWeft(["up", "-d", "--listen", "127.0.0.1:0", "--timeout", "60s"], {
      cwd: dir,
      timeoutMs: 90_000,
    });
    expect(up.stderr).toBe("");
    expect(up.code).toBe(0);
    let ps = await psJson(dir);
    const old = ps.processes[0].sidecar;
    process.kill(old.pid, "SIGKILL");
    ps = await waitFor(
      async () => {
        const v = await psJson(dir);
        const s = v.processes[0].sidecar;
        return s.pid !== old.pid && s.alive && s.ready && v.processes[0].healthy ? v : undefined;
      },
      45_000,
      { what: "web-1's sidecar back and healthy", intervalMs: 300 },
    );
    expect(ps.processes[0].sidecar.restarts).toBe(1);
    const token = readFileSync(join(dir, ".weft/server/bootstrap-token"), "utf8").trim();
    const instances = await waitFor(
      async () => {
        const res = await http(ps.controlPlane.api, "/v1/health/service/web", { token, timeoutMs: 5_000 });
        // biome-ignore lint/suspicious/noExplicitAny: test code reads arbitrary JSON fields
        const list = (res.body?.instances ?? []) as any[];
        const web1 = list.find((i) => i.id === "web-1");
        return list.length === 2 && web1?.port === ps.processes[0].sidecar.inbound ? list : undefined;
      },
      20_000,
      { what: "web-1 registered again at its new inbound port", intervalMs: 300 },
    );
    expect(instances.map((i) => i.id).sort()).toEqual(["web-1", "web-2"]);

    // The supervisor (and the control plane in it) dies without a chance to clean up.
    const children = ps.processes.flatMap((p: { app: { pid: number }; sidecar: { pid: number } }) => [
      p.app.pid,
      p.sidecar.pid,
    ]);
    process.kill(ps.supervisor.pid, "SIGKILL");
    await waitFor(() => !processesIn(dir).includes(ps.supervisor.pid), 10_000);
    const table = await runWeft(["ps"], { cwd: dir });
    expect(table.stderr).toContain("the supervisor is not running");
    expect(processesIn(dir).sort()).toEqual([...children].sort());

    const down = await runWeft(["down"], { cwd: dir, timeoutMs: 90_000 });
    expect(down.stderr).toContain("the supervisor is gone; stopping the 4 process(es) it left");
    expect(down.code).toBe(0);
    expect(processesIn(dir)).toEqual([]);

    // And the data dir is fine for the next run.
    const again = await runWeft(["up", "-d", "--listen", "127.0.0.1:0", "--timeout", "60s"], {
      cwd: dir,
      timeoutMs: 90_000,
    });
    expect(again.code).toBe(0);
    expect((await runWeft(["down"], { cwd: dir, timeoutMs: 90_000 })).code).toBe(0);
    expect(processesIn(dir)).toEqual([]);
  }, 240_000);
});
