/**
 * `weft up -d` on the example (examples/bookstore/weft.yaml, as shipped),
 * end to end with real processes: the page requested through its mesh path
 * (loadgen-1's sidecar listener for frontend -> mTLS -> frontend's sidecar
 * -> frontend, which calls catalog over HTTP and reviews over gRPC, which
 * calls ratings) is built from every service; the same page through the
 * ingress gateway `edge` that `weft up` runs (127.0.0.1:9090 -> mTLS as
 * `edge` -> frontend's sidecar); `weft ps --json` shows every pid alive
 * (the gateway's too), every port listening and everything healthy; a
 * killed app replica and a killed gateway are started again; `weft logs` shows output; `weft
 * down` leaves no process of the mesh behind (every pid the state file ever
 * named, and no process pointing at this mesh's control plane or data dir
 * in `ps`).
 *
 * Printed for the README: time from `weft up -d` to all healthy, and the
 * resident memory of the control plane (the supervisor process, which runs
 * it in-process) and of one sidecar.
 *
 * The control plane listens on a free port (--listen 127.0.0.1:0) and the
 * data dir is a temp dir; the example's fixed loopback ports (9080, 9090,
 * 9101-9103) must be free on this machine.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import { metricSum, waitFor } from "./helpers/mesh.js";
import { processRssMb } from "./helpers/proc.js";
import { cleanup, REPO, type RunResult, runWeft, tempDir } from "./helpers/weft.js";

const EXAMPLE = join(REPO, "examples/bookstore");
const FILE = join(EXAMPLE, "weft.yaml");

// biome-ignore lint/suspicious/noExplicitAny: test code reads arbitrary JSON fields
type Ps = any;

let dataDir: string;
let ps: Ps;
/** Every pid `weft ps` ever showed for this mesh (the killed one and its successor included). */
const pids = new Set<number>();
let apiUrl = "";
/** `weft logs loadgen -f`, started before `weft down`: it must print new lines and end when the mesh stops. */
let follower: Promise<RunResult> | undefined;

async function weftPs(): Promise<Ps> {
  const r = await runWeft(["ps", "--json", "--data-dir", dataDir], { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`weft ps failed (${r.code}): ${r.stderr}`);
  const v = JSON.parse(r.stdout);
  pids.add(v.supervisor.pid);
  for (const p of v.processes) {
    if (p.app.pid) pids.add(p.app.pid);
    if (p.sidecar.pid) pids.add(p.sidecar.pid);
  }
  for (const g of v.gateways) if (g.pid) pids.add(g.pid);
  return v;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // A zombie is not alive.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\S+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = connect({ port, host: "127.0.0.1" });
    s.setTimeout(3_000, () => {
      s.destroy();
      done(false);
    });
    s.once("connect", () => {
      s.destroy();
      done(true);
    });
    s.once("error", () => done(false));
  });
}

function replica(v: Ps, instance: string): Ps {
  const r = v.processes.find((p: Ps) => p.instance === instance);
  if (!r) throw new Error(`no replica ${instance} in weft ps`);
  return r;
}

/** Processes whose command line points at this mesh (its control plane URL or its data dir). */
function meshProcesses(): string[] {
  const out = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  return out
    .split("\n")
    .filter((l) => (apiUrl !== "" && l.includes(`--server ${apiUrl}`)) || l.includes(`--data-dir ${dataDir}`))
    .filter((l) => !l.includes(" ps -eo "));
}

beforeAll(async () => {
  if (!existsSync(join(EXAMPLE, "dist/frontend.js"))) {
    throw new Error("examples/bookstore is not built: run `npx tsc -b` first (npm test does)");
  }
  dataDir = tempDir("weft-up-bookstore-");
  const started = Date.now();
  const r = await runWeft(
    ["up", "-d", "-f", FILE, "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--timeout", "100s"],
    { timeoutMs: 160_000 },
  );
  const ms = Date.now() - started;
  if (r.code !== 0) throw new Error(`weft up -d failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  expect(r.stdout).toMatch(/7 replicas of 6 workloads and 1 gateway healthy in/);
  console.log(
    `[up-bookstore] weft up -d to all healthy: ${(ms / 1000).toFixed(1)} s (7 apps, 7 sidecars, 1 gateway)`,
  );
  ps = await weftPs();
  apiUrl = ps.controlPlane.api;
}, 180_000);

afterAll(async () => {
  // If a test failed before `weft down`, stop the mesh anyway, then kill anything left.
  if (dataDir && existsSync(join(dataDir, "state.json"))) {
    await runWeft(["down", "--data-dir", dataDir], { timeoutMs: 60_000 }).catch(() => {});
  }
  for (const pid of pids) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      try {
        if (alive(pid)) process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
  await cleanup();
}, 90_000);

describe("weft up -d on examples/bookstore", () => {
  it("serves the page through the mesh path, built from every service", async () => {
    const loadgen = replica(ps, "loadgen-1");
    const via = loadgen.upstreams.frontend as number;
    expect(via).toBe(9080);
    const page = await waitFor(
      async () => {
        const r = await http(`http://127.0.0.1:${via}`, "/", {
          timeoutMs: 10_000,
          headers: { accept: "text/html" },
        });
        return r.status === 200 ? r : undefined;
      },
      30_000,
      { what: "the frontend page through loadgen's sidecar", intervalMs: 500 },
    );
    const html = page.text as string;
    // catalog (HTTP JSON): a title, and which version and replica answered
    expect(html).toContain("The Left Hand of Darkness");
    expect(html).toMatch(/data-catalog-version="v[12]"/);
    expect(html).toMatch(/served by <code>catalog-v[12]-\d<\/code>/);
    // reviews (gRPC): a review, and the replica
    expect(html).toContain("Cold planet, warm heart.");
    expect(html).toContain("reviews by <code>reviews-1</code>");
    // ratings (HTTP, called by reviews): stars and votes
    expect(html).toMatch(/4\.6 <small>\(1284 votes\)<\/small>/);
    expect(html).not.toContain("Some calls failed");
    expect(page.headers["x-catalog-version"]).toMatch(/^v[12]$/);

    // The mesh carried every hop, by identity: the inbound counters of each sidecar.
    const metrics = async (instance: string) => {
      const r = await http(`http://127.0.0.1:${replica(ps, instance).sidecar.admin}`, "/metrics", {
        timeoutMs: 5_000,
      });
      return r.text as string;
    };
    const inbound = (text: string, source: string) =>
      metricSum(text, "weft_proxy_requests_total", { direction: "inbound", source_service: source });
    expect(inbound(await metrics("frontend-1"), "loadgen")).toBeGreaterThan(0);
    expect(inbound(await metrics("reviews-1"), "frontend")).toBeGreaterThan(0);
    expect(inbound(await metrics("ratings-1"), "reviews")).toBeGreaterThan(0);
    const catalog =
      inbound(await metrics("catalog-v1-1"), "frontend") +
      inbound(await metrics("catalog-v1-2"), "frontend") +
      inbound(await metrics("catalog-v2-1"), "frontend");
    expect(catalog).toBeGreaterThan(0);
  });

  it("serves the same page through the ingress gateway edge at 127.0.0.1:9090, as identity edge", async () => {
    const edge = ps.gateways.find((g: Ps) => g.name === "edge");
    expect(edge).toMatchObject({
      kind: "gateway",
      type: "ingress",
      alive: true,
      ready: true,
      listeners: [{ name: "listener-0", port: 9090 }],
    });
    expect(alive(edge.pid)).toBe(true);
    const page = await waitFor(
      async () => {
        const r = await http("http://127.0.0.1:9090", "/", {
          timeoutMs: 10_000,
          headers: { accept: "text/html" },
        });
        return r.status === 200 ? r : undefined;
      },
      30_000,
      { what: "the frontend page through the gateway", intervalMs: 500 },
    );
    const html = page.text as string;
    expect(html).toContain("The Left Hand of Darkness");
    expect(html).toContain("Cold planet, warm heart.");
    expect(html).toMatch(/4\.6 <small>\(1284 votes\)<\/small>/);
    expect(html).not.toContain("Some calls failed");
    // The gateway counted it, and the frontend's sidecar saw it come from `edge` (the Intention allows it).
    const gwMetrics = await http(`http://127.0.0.1:${edge.admin}`, "/metrics", { timeoutMs: 5_000 });
    expect(metricSum(gwMetrics.text as string, "weft_gateway_requests_total", {})).toBeGreaterThan(0);
    const frontend = await http(`http://127.0.0.1:${replica(ps, "frontend-1").sidecar.admin}`, "/metrics", {
      timeoutMs: 5_000,
    });
    expect(
      metricSum(frontend.text as string, "weft_proxy_requests_total", {
        direction: "inbound",
        source_service: "edge",
      }),
    ).toBeGreaterThan(0);
  });

  it("weft ps --json: every pid alive, every port listening, everything healthy", async () => {
    ps = await waitFor(
      async () => {
        const v = await weftPs();
        return v.processes.every((p: Ps) => p.healthy) && v.gateways.every((g: Ps) => g.healthy)
          ? v
          : undefined;
      },
      30_000,
      { what: "all healthy in weft ps", intervalMs: 500 },
    );
    expect(ps.phase).toBe("running");
    expect(ps.supervisor.alive).toBe(true);
    expect(alive(ps.supervisor.pid)).toBe(true);
    expect(ps.controlPlane.pid).toBe(ps.supervisor.pid);
    const status = await http(ps.controlPlane.api, "/v1/status", { timeoutMs: 5_000 });
    expect(status.status).toBe(200);
    expect(ps.processes.map((p: Ps) => p.instance).sort()).toEqual([
      "catalog-v1-1",
      "catalog-v1-2",
      "catalog-v2-1",
      "frontend-1",
      "loadgen-1",
      "ratings-1",
      "reviews-1",
    ]);
    for (const p of ps.processes) {
      expect(p.health, p.instance).toBe("passing");
      expect(p.app.alive && alive(p.app.pid), `${p.instance} app pid ${p.app.pid}`).toBe(true);
      expect(p.sidecar.alive && alive(p.sidecar.pid), `${p.instance} sidecar pid ${p.sidecar.pid}`).toBe(
        true,
      );
      for (const [what, port] of [
        ["app", p.app.port],
        ["inbound", p.sidecar.inbound],
        ["admin", p.sidecar.admin],
        ...Object.entries(p.upstreams),
      ] as [string, number][]) {
        expect(await listening(port), `${p.instance} ${what} port ${port}`).toBe(true);
      }
    }
    expect(ps.gateways.map((g: Ps) => [g.kind, g.name, g.health])).toEqual([["gateway", "edge", "passing"]]);
    for (const g of ps.gateways) {
      expect(g.alive && alive(g.pid), `gateway ${g.name} pid ${g.pid}`).toBe(true);
      for (const port of [g.admin, ...g.listeners.map((l: Ps) => l.port)] as number[]) {
        expect(await listening(port), `gateway ${g.name} port ${port}`).toBe(true);
      }
    }
    // Replicas of one workload each have their own upstream ports; catalog has none, frontend one replica.
    expect(replica(ps, "frontend-1").upstreams).toEqual({ catalog: 9101, reviews: 9102 });
    expect(replica(ps, "reviews-1").upstreams).toEqual({ ratings: 9103 });

    const cpMb = processRssMb(ps.supervisor.pid);
    const sidecarMb = processRssMb(replica(ps, "frontend-1").sidecar.pid);
    const appMb = processRssMb(replica(ps, "frontend-1").app.pid);
    console.log(
      `[up-bookstore] RSS with loadgen running: control plane (in the weft up supervisor) ${cpMb.toFixed(0)} MB, ` +
        `one sidecar (frontend-1) ${sidecarMb.toFixed(0)} MB, the frontend app ${appMb.toFixed(0)} MB`,
    );
    expect(cpMb).toBeGreaterThan(0);
    expect(sidecarMb).toBeGreaterThan(0);

    // The table form names the same things.
    const table = await runWeft(["ps", "--data-dir", dataDir]);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(`control plane: ${ps.controlPlane.api}`);
    expect(table.stdout).toMatch(
      /WORKLOAD\s+REPLICA\s+SERVICE\s+APP PID\s+APP PORT\s+SIDECAR PID\s+INBOUND\s+ADMIN\s+HEALTH/,
    );
    expect(table.stdout).toMatch(/catalog-v1\s+2\s+catalog\s+\d+/);
    expect(table.stdout).toMatch(/GATEWAY\s+TYPE\s+PID\s+LISTENERS\s+ADMIN\s+HEALTH/);
    expect(table.stdout).toMatch(/edge\s+ingress\s+\d+\s+9090\s+\d+\s+passing/);
  });

  it("a killed app replica is started again, and serves", async () => {
    const before = replica(ps, "catalog-v1-2");
    const oldPid = before.app.pid as number;
    process.kill(oldPid, "SIGKILL");
    const after = await waitFor(
      async () => {
        const r = replica(await weftPs(), "catalog-v1-2");
        return r.app.pid !== oldPid && r.app.alive && r.app.restarts >= 1 ? r : undefined;
      },
      45_000,
      { what: "catalog-v1-2 started again", intervalMs: 300 },
    );
    expect(alive(oldPid)).toBe(false);
    expect(alive(after.app.pid)).toBe(true);
    expect(after.app.port).toBe(before.app.port);
    expect(after.app.lastExit.signal).toBe("SIGKILL");
    expect(after.sidecar.pid).toBe(before.sidecar.pid);
    await waitFor(() => listening(after.app.port), 30_000, { what: "the new catalog-v1-2 listening" });
    await waitFor(
      async () => {
        const r = replica(await weftPs(), "catalog-v1-2");
        return r.app.pid === after.app.pid && r.healthy;
      },
      30_000,
      { what: "catalog-v1-2 healthy again", intervalMs: 500 },
    );
    const events = await runWeft(["logs", "up", "--data-dir", dataDir]);
    expect(events.stdout).toMatch(/catalog-v1-2 app killed by SIGKILL after [\d.]+\w+; restarting in/);
    expect(events.stdout).toMatch(/catalog-v1-2 app started \(pid \d+/);
  });

  it("a killed gateway is started again, and serves", async () => {
    const before = ps.gateways[0];
    process.kill(before.pid, "SIGKILL");
    const after = await waitFor(
      async () => {
        const g = (await weftPs()).gateways[0];
        return g.pid !== before.pid && g.alive && g.healthy && g.restarts >= 1 ? g : undefined;
      },
      30_000,
      { what: "gateway edge started again and ready", intervalMs: 300 },
    );
    expect(alive(before.pid)).toBe(false);
    expect(after.lastExit.signal).toBe("SIGKILL");
    expect(after.listeners).toEqual([{ name: "listener-0", port: 9090 }]);
    const r = await http("http://127.0.0.1:9090", "/", {
      timeoutMs: 10_000,
      headers: { accept: "text/html" },
    });
    expect(r.status).toBe(200);
    expect(r.text).toContain("The Left Hand of Darkness");
    const events = await runWeft(["logs", "up", "--data-dir", dataDir]);
    expect(events.stdout).toMatch(/gateway edge killed by SIGKILL after [\d.]+\w+; restarting in/);
    ps = await weftPs();
  });

  it("weft logs shows a workload's output (loadgen's summaries) and its sidecar's", async () => {
    follower = runWeft(["logs", "loadgen", "-f", "-n", "0", "--data-dir", dataDir], { timeoutMs: 120_000 });
    const lines = await waitFor(
      async () => {
        const r = await runWeft(["logs", "loadgen", "--data-dir", dataDir, "-n", "50"]);
        return /loadgen-1 last 5s: \d+ requests \([\d.]+\/s\): 200×\d+/.test(r.stdout) ? r.stdout : undefined;
      },
      20_000,
      { what: "a loadgen summary line", intervalMs: 1_000 },
    );
    // Which catalog versions served (a page may have failed while a replica was killed: "none").
    expect(lines).toMatch(/\| catalog (none \d+% )?v[12] \d+%/);
    const multi = await runWeft(["logs", "catalog-v1", "--data-dir", dataDir]);
    expect(multi.stdout).toMatch(/^catalog-v1-1 \| /m);
    expect(multi.stdout).toMatch(/^catalog-v1-2 \| /m);
    const sidecar = await runWeft(["logs", "frontend", "--sidecar", "-n", "200", "--data-dir", dataDir]);
    expect(sidecar.stdout).toContain('"msg":"sidecar ready"');
    const unknown = await runWeft(["logs", "nope", "--data-dir", dataDir]);
    expect(unknown.code).toBe(5);
    expect(unknown.stderr).toContain('workload, replica or gateway "nope"');
  });

  it("weft down stops everything: no process of the mesh remains", async () => {
    await weftPs();
    // supervisor + 7 apps + 7 sidecars + a restarted app + the gateway and its restarted successor
    expect(pids.size).toBeGreaterThanOrEqual(18);
    // Let the follower see a summary line first (one every 5 s).
    await new Promise((r) => setTimeout(r, 6_000));
    const r = await runWeft(["down", "--data-dir", dataDir], { timeoutMs: 90_000 });
    expect(r.stderr).toContain("stopping weft up");
    expect(r.stdout).toMatch(
      /stopped in [\d.]+\w+: .*7 app processes, 7 sidecars, 1 gateway process; nothing left running/,
    );
    expect(r.code).toBe(0);
    // Gateways stop first: edge had drained and stopped before any sidecar was asked to drain.
    const lastLogTime = (file: string, msg: string): number => {
      const lines = readFileSync(file, "utf8")
        .split("\n")
        .filter((l) => l.includes(`"msg":"${msg}"`));
      return JSON.parse(lines.at(-1) ?? "{}").time as number;
    };
    const edgeStopped = lastLogTime(ps.gateways[0].log, "stopped");
    expect(edgeStopped).toBeGreaterThan(0);
    for (const p of ps.processes) {
      expect(lastLogTime(p.sidecar.log, "draining"), `${p.instance} sidecar`).toBeGreaterThanOrEqual(
        edgeStopped,
      );
    }
    // `weft logs -f` printed what came after it started, and ended with the mesh.
    const followed = await follower;
    expect(followed?.code).toBe(0);
    expect(followed?.stdout).toMatch(/loadgen-1 last 5s: \d+ requests/);
    expect(followed?.stdout).toMatch(/SIGTERM: stopping/);
    const left = [...pids].filter(alive);
    expect(left, `still alive: ${left.join(", ")}`).toEqual([]);
    expect(meshProcesses()).toEqual([]);
    expect(existsSync(join(dataDir, "state.json"))).toBe(false);
    expect(await listening(9080)).toBe(false);
    expect(await listening(9090)).toBe(false);
    const again = await runWeft(["ps", "--data-dir", dataDir]);
    expect(again.code).toBe(5);
    const downAgain = await runWeft(["down", "--data-dir", dataDir]);
    expect(downAgain.code).toBe(0);
    expect(downAgain.stderr).toContain("nothing to stop");
  }, 120_000);
});
