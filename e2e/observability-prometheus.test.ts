/**
 * A real Prometheus (Debian's `prometheus` package) scrapes a running mesh:
 * app -> `web` sidecar -> `api` sidecar -> app, plus the control plane's own
 * `/metrics`. Every endpoint's text passes `promtool check metrics` with
 * nothing reported, and PromQL over what Prometheus scraped counts exactly
 * the requests the test sent, on both sidecars.
 *
 * Skipped (with the reason printed) when /usr/bin/prometheus or
 * /usr/bin/promtool is missing.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import {
  allowFrom,
  applyResources,
  meshCleanup,
  type SidecarProc,
  startClientMesh,
  waitFor,
} from "./helpers/mesh.js";
import { exited, killGroup, startWeftServer, tempDir, type WeftServer } from "./helpers/weft.js";

const PROMETHEUS = "/usr/bin/prometheus";
const PROMTOOL = "/usr/bin/promtool";
const missing = [PROMETHEUS, PROMTOOL].filter((p) => !existsSync(p));
if (missing.length > 0) {
  console.log(
    `observability-prometheus: skipped: ${missing.join(" and ")} not installed (Debian package "prometheus")`,
  );
}
const suite = missing.length > 0 ? describe.skip : describe;

const N = 37;

let cp: WeftServer;
let web: SidecarProc;
let api: SidecarProc;
let apiLocal: number;
let prom: ChildProcess | undefined;
let promUrl: string;
let promErr = "";

/** Runs a binary to completion with `input` on stdin. */
function run(bin: string, args: string[], input = ""): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    p.stdout.setEncoding("utf8").on("data", (c: string) => {
      out += c;
    });
    p.stderr.setEncoding("utf8").on("data", (c: string) => {
      out += c;
    });
    p.once("error", reject);
    p.once("close", (code) => resolve({ code, out }));
    p.stdin.end(input);
  });
}

// biome-ignore lint/suspicious/noExplicitAny: Prometheus API JSON
async function promQuery(q: string): Promise<any[]> {
  const r = await http(promUrl, `/api/v1/query?query=${encodeURIComponent(q)}`, { timeoutMs: 5_000 });
  if (r.status !== 200 || r.body?.status !== "success") throw new Error(`query ${q}: ${r.status} ${r.text}`);
  return r.body.data.result;
}

/** The single value of an instant vector query, or undefined while it has no sample. */
async function promValue(q: string): Promise<number | undefined> {
  const res = await promQuery(q);
  return res.length === 1 ? Number(res[0].value[1]) : undefined;
}

suite("Prometheus scrapes the mesh", () => {
  beforeAll(async () => {
    cp = await startWeftServer({ store: "memory", dev: true });
    apiLocal = await freePort();
    await applyResources(cp.addr, [allowFrom("api")]);
    const mesh = await startClientMesh(cp.addr, [{ service: "api", replica: "a", script: "http-app.mjs" }], {
      api: apiLocal,
    });
    web = mesh.web;
    api = mesh.sidecars.get("a") as SidecarProc;

    const dir = tempDir("weft-prom-");
    const config = join(dir, "prometheus.yml");
    writeFileSync(
      config,
      [
        "global:",
        "  scrape_interval: 1s",
        "  scrape_timeout: 1s",
        "scrape_configs:",
        "  - job_name: weft-sidecars",
        "    metrics_path: /metrics",
        "    static_configs:",
        `      - targets: ["127.0.0.1:${web.adminPort}", "127.0.0.1:${api.adminPort}"]`,
        "  - job_name: weft-controlplane",
        "    metrics_path: /metrics",
        "    static_configs:",
        `      - targets: ["${cp.addr}"]`,
        "",
      ].join("\n"),
    );
    const checked = await run(PROMTOOL, ["check", "config", config]);
    expect(checked.code, checked.out).toBe(0);
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prom = spawn(
      PROMETHEUS,
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ["ignore", "ignore", "pipe"], detached: true },
    );
    prom.stderr?.setEncoding("utf8").on("data", (c: string) => {
      promErr = (promErr + c).slice(-20_000);
    });
    await waitFor(
      async () => (await http(promUrl, "/-/ready", { timeoutMs: 2_000 })).status === 200,
      30_000,
      {
        what: "prometheus ready",
        intervalMs: 200,
      },
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${promErr}`);
    });
  }, 120_000);

  afterAll(async () => {
    if (prom) {
      killGroup(prom, "SIGKILL");
      await exited(prom);
    }
    await meshCleanup();
  });

  it("every target is up, and the request counters Prometheus scraped equal the requests sent", async () => {
    await waitFor(
      async () => {
        const up = await promQuery("up");
        return up.length === 3 && up.every((s) => s.value[1] === "1");
      },
      20_000,
      { what: "3 targets up in Prometheus", intervalMs: 250 },
    );
    for (let i = 0; i < N; i++) {
      const r = await http(`http://127.0.0.1:${apiLocal}`, `/whoami?i=${i}`, { timeoutMs: 5_000 });
      expect(r.status).toBe(200);
    }
    const inbound =
      'sum(weft_proxy_requests_total{direction="inbound",source_service="web",destination_service="api"})';
    const outbound =
      'sum(weft_proxy_requests_total{direction="outbound",source_service="web",destination_service="api"})';
    const seen = await waitFor(
      async () => {
        const [i, o] = [await promValue(inbound), await promValue(outbound)];
        return i === N && o === N ? { i, o } : undefined;
      },
      20_000,
      { what: `${N} requests on both sidecars in Prometheus`, intervalMs: 250 },
    );
    expect(seen).toEqual({ i: N, o: N });
    expect(await promValue('sum(weft_proxy_requests_total{response_code_class="2xx"})')).toBe(2 * N);
    expect(await promValue('sum(weft_proxy_request_duration_seconds_count{destination_service="api"})')).toBe(
      2 * N,
    );
    // The control plane's own metrics are scraped too: both sidecars hold a config stream.
    expect(await promValue("weft_controlplane_proxy_streams")).toBe(2);
    expect(await promValue('sum(weft_controlplane_instances{status="passing"})')).toBe(2);
  });

  it("promtool check metrics reports nothing on any endpoint", async () => {
    const endpoints = [
      [`web sidecar`, `http://127.0.0.1:${web.adminPort}`],
      [`api sidecar`, `http://127.0.0.1:${api.adminPort}`],
      ["control plane", cp.url],
    ] as const;
    for (const [what, base] of endpoints) {
      const r = await http(base, "/metrics", { timeoutMs: 5_000 });
      expect(r.status, what).toBe(200);
      expect(r.text, what).toContain("weft_");
      const lint = await run(PROMTOOL, ["check", "metrics"], r.text);
      expect(lint.out, `promtool on the ${what}`).toBe("");
      expect(lint.code, what).toBe(0);
    }
  });
});
