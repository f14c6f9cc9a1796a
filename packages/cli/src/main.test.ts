/**
 * The program in-process: usage errors, help, offline validate and the
 * unreachable path. Commands that need a running control plane are covered
 * end to end in e2e/cli.test.ts against the real executable.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { EXIT } from "./exit-codes.js";
import { runCaptured } from "./run-captured.suite.js";

const dir = mkdtempSync(join(tmpdir(), "weft-cli-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function weft(...args: string[]) {
  return runCaptured([...args], dir);
}

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe("weft (in-process)", () => {
  it("--help lists the commands, the environment and the exit codes", async () => {
    const r = await weft("--help");
    expect(r.code).toBe(EXIT.OK);
    for (const word of [
      "server",
      "apply",
      "get",
      "delete",
      "validate",
      "services",
      "instances",
      "acl",
      "status",
    ]) {
      expect(r.out).toContain(word);
    }
    expect(r.out).toContain("WEFT_ADDR");
    expect(r.out).toContain("WEFT_TOKEN");
    expect(r.out).toContain("Exit codes:");
    expect(r.out).toMatch(/3\s+control plane unreachable/);
  });

  it.each([
    ["get"],
    ["apply"],
    ["validate"],
    ["services"],
    ["instances"],
    ["server"],
    ["acl", "token", "create"],
  ])("%s --help has examples", async (...cmd) => {
    const r = await weft(...cmd, "--help");
    expect(r.code).toBe(EXIT.OK);
    expect(r.out).toContain("Examples:");
  });

  it("client commands document --addr/--token and their env vars and the token file", async () => {
    const r = await weft("services", "--help");
    expect(r.out).toContain("--addr");
    expect(r.out).toContain("WEFT_ADDR");
    expect(r.out).toContain("WEFT_TOKEN");
    expect(r.out).toContain(".weft/server/bootstrap-token");
  });

  it("an unknown command is a usage error (exit 2) in the house format", async () => {
    const r = await weft("frobnicate");
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toMatch(/^error: unknown command 'frobnicate'.*\(WEFT_ERR_USAGE\)$/m);
  });

  it("a bad flag or a missing required option is exit 2", async () => {
    expect((await weft("services", "--bogus")).code).toBe(EXIT.USAGE);
    expect((await weft("apply")).code).toBe(EXIT.USAGE);
    expect((await weft("get", "intention", "-o", "xml")).code).toBe(EXIT.USAGE);
  });

  it("an unknown kind is exit 2 naming the valid kinds, before any network call", async () => {
    const r = await weft("get", "widget", "--addr", "127.0.0.1:1");
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toContain('unknown kind "widget"');
    expect(r.err).toContain("Intention");
    expect(r.err).toContain("(WEFT_ERR_UNKNOWN_KIND)");
  });

  it("an unreachable control plane is exit 3 naming the address", async () => {
    const port = await closedPort();
    const r = await weft("services", "--addr", `127.0.0.1:${port}`);
    expect(r.code).toBe(EXIT.UNREACHABLE);
    expect(r.err).toContain(`127.0.0.1:${port}`);
    expect(r.err).toContain("(WEFT_ERR_UNREACHABLE)");
  });

  it("validate: a good file is exit 0 with a count", async () => {
    const f = join(dir, "good.yaml");
    writeFileSync(
      f,
      "kind: Intention\nname: api\nsources:\n  - {name: web, action: allow}\n---\nkind: ServiceDefaults\nname: api\nprotocol: http\n",
    );
    const r = await weft("validate", "-f", f);
    expect(r.err).toBe("");
    expect(r.code).toBe(EXIT.OK);
    expect(r.out).toBe("2 resources valid\n");
  });

  it("validate: a bad file is exit 2 with file:line and the field", async () => {
    const f = join(dir, "bad.yaml");
    writeFileSync(f, "kind: ServiceDefaults\nname: api\nprotocol: smtp\n");
    const r = await weft("validate", "-f", f);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toContain(`${f}:3:`);
    expect(r.err).toContain("protocol");
    expect(r.err).toContain("(WEFT_ERR_CONFIG_INVALID)");
  });

  it("validate: a missing file is exit 2", async () => {
    const r = await weft("validate", "-f", join(dir, "nope.yaml"));
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toContain("no such file");
  });

  it("validate: a directory is read in name order, *.yaml/*.yml/*.json only", async () => {
    const d = mkdtempSync(join(dir, "cfg-"));
    writeFileSync(join(d, "b.json"), JSON.stringify({ kind: "ServiceDefaults", name: "web" }));
    writeFileSync(join(d, "a.yml"), "kind: ServiceDefaults\nname: api\n");
    writeFileSync(join(d, "notes.txt"), "not a resource");
    const r = await weft("validate", "-f", d, "--json");
    expect(r.code).toBe(EXIT.OK);
    expect(JSON.parse(r.out)).toEqual({ valid: true, resources: 2, errors: [] });
  });
});
