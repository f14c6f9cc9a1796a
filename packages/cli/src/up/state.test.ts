import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  processAlive,
  processStartTime,
  readState,
  recordedProcesses,
  removeState,
  writeState,
} from "./state.js";
import { sampleGateway, sampleState } from "./state-sample.suite.js";

const dir = mkdtempSync(join(tmpdir(), "weft-state-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("state file", () => {
  it("round-trips, and anything else reads as no state", () => {
    const p = join(dir, "state.json");
    writeState(p, sampleState());
    expect(readState(p)).toEqual(sampleState());
    writeFileSync(p, "{not json");
    expect(readState(p)).toBeUndefined();
    writeFileSync(p, JSON.stringify({ format: 2 }));
    expect(readState(p)).toBeUndefined();
    removeState(p);
    expect(readState(p)).toBeUndefined();
  });

  it("lists the processes it names: supervisor, then each replica's sidecar and app", () => {
    expect(recordedProcesses(sampleState()).map((p) => [p.kind, p.pid, p.group])).toEqual([
      ["supervisor", 100, true],
      ["sidecar", 102, true],
      ["app", 101, true],
    ]);
  });

  it("round-trips gateways, and lists them before the sidecars they send to (stopping order)", () => {
    const p = join(dir, "state-gw.json");
    const s = {
      ...sampleState(),
      gateways: [sampleGateway(), { ...sampleGateway(), name: "idle", pid: null }],
    };
    writeState(p, s);
    expect(readState(p)).toEqual(s);
    expect(recordedProcesses(s).map((x) => [x.kind, x.pid, x.what])).toEqual([
      ["supervisor", 100, "weft up supervisor"],
      ["gateway", 110, "gateway edge"],
      ["sidecar", 102, "web-1 sidecar"],
      ["app", 101, "web-1 app"],
    ]);
  });

  it("reads a state file written before gateways ran (gateways as names)", () => {
    const p = join(dir, "state-old.json");
    writeFileSync(p, JSON.stringify({ ...sampleState(), gateways: ["edge"] }));
    const s = readState(p);
    expect(s?.replicas).toEqual(sampleState().replicas);
    expect(s?.gateways).toEqual([
      expect.objectContaining({
        name: "edge",
        type: null,
        pid: null,
        status: "stopped",
        listeners: [],
        admin: null,
        log: "/m/.weft/logs/edge.gateway.log",
      }),
    ]);
    expect(recordedProcesses(s as NonNullable<typeof s>).map((x) => x.kind)).toEqual([
      "supervisor",
      "sidecar",
      "app",
    ]);
    writeFileSync(p, JSON.stringify({ ...sampleState(), gateways: undefined }));
    expect(readState(p)?.gateways).toEqual([]);
  });
});

describe("process liveness", () => {
  it("a live pid with its start time is alive; another start time or a gone pid is not", async () => {
    const st = processStartTime(process.pid);
    expect(processAlive(process.pid, st)).toBe(true);
    if (st !== null) expect(processAlive(process.pid, st + 1)).toBe(false);
    const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
    const pid = child.pid as number;
    await new Promise((r) => child.once("exit", r));
    expect(processAlive(pid)).toBe(false);
    expect(processAlive(null)).toBe(false);
    expect(processAlive(-1)).toBe(false);
  });
});
