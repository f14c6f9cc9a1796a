/**
 * `weft gateway` before anything starts: flags and the Gateway resource are
 * checked (exit 2 naming what is wrong, no stack trace); relative paths in
 * the resource are taken from its file's directory. The running gateway is
 * covered by e2e/gateway-*.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { EXIT } from "../exit-codes.js";
import { runCaptured } from "../run-captured.suite.js";
import { loadGatewayFile } from "./gateway.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function file(content: unknown): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), "weft-gw-cli-"));
  dirs.push(dir);
  const path = join(dir, "gw.yaml");
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return { dir, path };
}

const ingress = {
  kind: "Gateway",
  name: "edge",
  type: "ingress",
  listeners: [
    {
      port: 8443,
      protocol: "https",
      tls: {
        certFile: "certs/a.crt",
        keyFile: "/abs/a.key",
        sni: [{ hosts: ["b.test"], certFile: "b.crt", keyFile: "b.key" }],
      },
      routes: [{ host: "*", pathPrefix: "/", service: "web" }],
    },
  ],
  jwtProviders: [
    { name: "idp", issuer: "i", audiences: ["a"], jwks: { file: "jwks.json" }, algorithms: ["RS256"] },
  ],
};

describe("weft gateway", () => {
  it.each([
    [["--name", "Edge_1"], /--name "Edge_1"/],
    [["--name", "edge", "--admin", "nohost"], /--admin "nohost"/],
    [["--name", "edge", "--drain-timeout", "soon"], /--drain-timeout "soon"/],
  ])("refuses %j", async (args, message) => {
    const r = await runCaptured(["gateway", ...args, "--server", "127.0.0.1:1"], tmpdir());
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toMatch(message);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it("requires --name", async () => {
    const r = await runCaptured(["gateway", "--server", "127.0.0.1:1"], tmpdir());
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toMatch(/--name/);
  });

  it("refuses an invalid Gateway file with file, line and field, before contacting anything", async () => {
    const { path } = file(
      "kind: Gateway\nname: edge\ntype: ingress\nlisteners:\n  - port: 8080\n    protocol: https\n    routes: [{service: web}]\n",
    );
    const r = await runCaptured(
      ["gateway", "--name", "edge", "-f", path, "--server", "127.0.0.1:1"],
      tmpdir(),
    );
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toMatch(/gw\.yaml:\d+/);
    expect(r.err).toMatch(/tls/);
  });

  it("refuses a file without the named Gateway", async () => {
    const { path } = file(ingress);
    const r = await runCaptured(
      ["gateway", "--name", "other", "-f", path, "--server", "127.0.0.1:1"],
      tmpdir(),
    );
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toMatch(/no Gateway named "other"/);
  });

  it("resolves relative certificate and JWKS paths against the file's directory", async () => {
    const { dir, path } = file(ingress);
    const g = await loadGatewayFile(path, "edge");
    const tls = g.listeners[0]?.tls;
    expect(tls?.certFile).toBe(join(dir, "certs/a.crt"));
    expect(tls?.keyFile).toBe("/abs/a.key");
    expect(tls?.sni?.[0]?.certFile).toBe(join(dir, "b.crt"));
    expect(g.jwtProviders?.[0]?.jwks.file).toBe(join(dir, "jwks.json"));
    // Defaults filled by the schema: the gateway gets the parsed resource.
    expect(g.trustedHops).toBe(0);
    expect(g.listeners[0]?.limits.headersTimeout).toBe(10_000);
  });
});
