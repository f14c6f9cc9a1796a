import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { dataDirLayout, findDataDir, gatewayLogFile, logFile, upDataDir } from "./paths.js";

const root = mkdtempSync(join(tmpdir(), "weft-paths-test-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("data dir", () => {
  it("weft up's default is .weft/ beside the file; --data-dir is relative to cwd", () => {
    expect(upDataDir("ex/weft.yaml", undefined, "/home/u")).toBe("/home/u/ex/.weft");
    expect(upDataDir("ex/weft.yaml", "state", "/home/u")).toBe("/home/u/state");
  });

  it("lays out state, server (the control plane's data dir: its token where client commands look), logs", () => {
    const d = dataDirLayout("/m/.weft");
    expect(d).toMatchObject({
      state: "/m/.weft/state.json",
      server: "/m/.weft/server",
      tokenFile: "/m/.weft/server/bootstrap-token",
      logs: "/m/.weft/logs",
    });
    expect(logFile(d, "web-1")).toBe("/m/.weft/logs/web-1.log");
    expect(logFile(d, "web-1", true)).toBe("/m/.weft/logs/web-1.sidecar.log");
    expect(gatewayLogFile(d, "edge")).toBe("/m/.weft/logs/edge.gateway.log");
  });

  it("ps/down/logs find the nearest .weft/state.json upwards, or say where they looked", () => {
    const mesh = join(root, "shop");
    mkdirSync(join(mesh, ".weft"), { recursive: true });
    mkdirSync(join(mesh, "src", "deep"), { recursive: true });
    expect(() => findDataDir(join(mesh, "src"), undefined)).toThrow(
      /\.weft\/state\.json in .*src or a parent/,
    );
    writeFileSync(join(mesh, ".weft", "state.json"), "{}");
    expect(findDataDir(join(mesh, "src", "deep"), undefined)).toBe(join(mesh, ".weft"));
    expect(findDataDir(root, "shop/.weft")).toBe(join(mesh, ".weft"));
    expect(() => findDataDir(root, "elsewhere")).toThrow(
      expect.objectContaining({ code: "WEFT_ERR_NOT_FOUND" }),
    );
  });
});
