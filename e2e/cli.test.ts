/**
 * The `weft` executable end to end: validate (offline), apply, get, delete,
 * services, instances, and the exit codes for missing token (4),
 * unreachable control plane (3), unknown kind (2) and not found (5).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { createToken, http } from "./helpers/http.js";
import { cleanup, runWeft, startWeftServer, tempDir, type WeftServer } from "./helpers/weft.js";

let server: WeftServer;
let work: string;
/** The flags every client command gets: address and the bootstrap (operator) token. */
let auth: string[];

const MESH = `# the whole config of a small mesh
kind: Mesh
name: mesh
defaultPolicy: deny
---
kind: ServiceDefaults
name: api
protocol: http
---
kind: Resolver
name: api
subsets:
  v1: {meta: {version: v1}}
  v2: {meta: {version: v2}}
defaultSubset: v1
---
kind: Split
name: api
splits:
  - {weight: 90, subset: v1}
  - {weight: 10, subset: v2}
---
kind: Intention
name: api
sources:
  - {name: web, action: allow}
  - name: admin
    permissions:
      - {action: allow, http: {pathPrefix: /admin, methods: [GET]}}
  - {name: "*", action: deny}
`;

const BAD = `kind: ServiceDefaults
name: api
protocol: http
---
kind: Intention
name: web
sources:
  - name: api
    action: allow
    colour: blue
`;

beforeAll(async () => {
  server = await startWeftServer();
  auth = ["--addr", server.addr, "--token", server.token!];
  work = tempDir("weft-cli-e2e-");
  writeFileSync(join(work, "mesh.yaml"), MESH);
  writeFileSync(join(work, "bad.yaml"), BAD);
});

afterAll(cleanup);

describe("weft validate (offline)", () => {
  it("a good multi-document file: exit 0, count", async () => {
    const r = await runWeft(["validate", "-f", "mesh.yaml"], { cwd: work });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("5 resources valid\n");
  });

  it("a bad file: exit 2, file:line:col, resource and field named", async () => {
    const r = await runWeft(["validate", "-f", "bad.yaml"], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    // colour: blue is on line 10 of bad.yaml
    expect(r.stderr).toMatch(/^bad\.yaml:10:\d+: Intention "web": sources\[0\]\.colour: .*"colour"$/m);
    expect(r.stderr).toMatch(/^error: .*\(WEFT_ERR_CONFIG_INVALID\)$/m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("apply refuses an invalid file before contacting the server", async () => {
    // Unreachable address: if apply tried the network it would exit 3, not 2.
    const r = await runWeft(["apply", "-f", "bad.yaml", "--addr", "127.0.0.1:1"], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("bad.yaml:10:");
  });
});

describe("weft apply / get / delete", () => {
  it("applies a multi-document file of several kinds, then again unchanged", async () => {
    const r = await runWeft(["apply", "-f", "mesh.yaml", ...auth], { cwd: work });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n").sort();
    expect(lines).toEqual(
      [
        "Intention/api created",
        "Mesh/mesh created",
        "Resolver/api created",
        "ServiceDefaults/api created",
        "Split/api created",
      ].sort(),
    );
    const again = await runWeft(["apply", "-f", "mesh.yaml", ...auth], { cwd: work });
    expect(again.code).toBe(0);
    expect(again.stdout.trim().split("\n")).toHaveLength(5);
    expect(again.stdout).not.toMatch(/created|updated/);
    expect(again.stdout).toContain("Intention/api unchanged");
  });

  it("applies a directory (sorted) and reports updates", async () => {
    const dir = join(work, "cfg");
    mkdirSync(dir);
    writeFileSync(join(dir, "10-web.yaml"), "kind: ServiceDefaults\nname: web\nprotocol: http\n");
    writeFileSync(
      join(dir, "20-api.json"),
      JSON.stringify({ kind: "ServiceDefaults", name: "api", protocol: "grpc" }),
    );
    writeFileSync(join(dir, "README.md"), "# not a resource\n");
    const r = await runWeft(["apply", "-f", "cfg", ...auth], { cwd: work });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("ServiceDefaults/web created\nServiceDefaults/api updated\n");
  });

  it("get intention -o json and -o yaml return the resource as applied", async () => {
    const j = await runWeft(["get", "intention", "api", "-o", "json", ...auth]);
    expect(j.code).toBe(0);
    const one = JSON.parse(j.stdout);
    expect(one).toMatchObject({ kind: "Intention", name: "api" });
    expect(one.sources.map((s: { name: string }) => s.name)).toEqual(["web", "admin", "*"]);

    const list = await runWeft(["get", "Intention", "--json", ...auth]);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toHaveLength(1);

    const y = await runWeft(["get", "INTENTION", "api", "-o", "yaml", ...auth]);
    expect(y.code).toBe(0);
    expect(parse(y.stdout)).toEqual(one);

    const all = await runWeft(["get", "servicedefaults", "-o", "yaml", ...auth]);
    expect(all.code).toBe(0);
    const docs = parseAllDocuments(all.stdout).map((d) => d.toJS());
    expect(docs.map((d) => d.name).sort()).toEqual(["api", "web"]);
  });

  it("get prints an aligned table by default", async () => {
    const r = await runWeft(["get", "servicedefaults", ...auth]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^KIND\s+NAME\s+PROTOCOL/);
    expect(lines).toHaveLength(3);
    // Columns line up: NAME starts at the same offset on every line.
    const col = lines[0]!.indexOf("NAME");
    for (const l of lines.slice(1)) expect(l.slice(col)).toMatch(/^(api|web)\s/);
    expect(r.stdout).not.toContain("\u001b["); // no colours when not a TTY

    const split = await runWeft(["get", "split", ...auth]);
    expect(split.stdout).toContain("90% v1, 10% v2");
  });

  it("delete removes the resource; then get is exit 5", async () => {
    const d = await runWeft(["delete", "intention", "api", ...auth]);
    expect(d.stderr).toBe("");
    expect(d.code).toBe(0);
    expect(d.stdout).toBe("Intention/api deleted\n");
    const g = await runWeft(["get", "intention", "api", ...auth]);
    expect(g.code).toBe(5);
    expect(g.stderr).toMatch(/^error: .*api.*\(WEFT_ERR_NOT_FOUND\)\n$/);
    const again = await runWeft(["delete", "intention", "api", ...auth]);
    expect(again.code).toBe(5);
  });

  it("unknown kind is exit 2 naming the valid kinds", async () => {
    const r = await runWeft(["get", "widget", ...auth]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown kind "widget".*Intention.*\(WEFT_ERR_UNKNOWN_KIND\)/);
  });
});

describe("weft services / instances", () => {
  beforeAll(async () => {
    for (const [id, port, tags] of [
      ["api-1", 9001, ["v1"]],
      ["api-2", 9002, ["v2"]],
    ] as const) {
      const r = await http(server.url, "/v1/catalog/instances", {
        method: "PUT",
        token: server.token,
        body: { id, service: "api", address: "127.0.0.1", port, tags, meta: { version: tags[0] } },
      });
      expect(r.status, r.text).toBe(201);
    }
    // One instance whose check has never passed: critical.
    const r = await http(server.url, "/v1/catalog/instances", {
      method: "PUT",
      token: server.token,
      body: { id: "api-3", service: "api", address: "127.0.0.1", port: 9003, checks: [{ ttl: "1m" }] },
    });
    expect(r.status, r.text).toBe(201);
  });

  it("services: a table with health counts, and --json", async () => {
    const t = await runWeft(["services", ...auth]);
    expect(t.code).toBe(0);
    const [header, row] = t.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^NAME\s+INSTANCES\s+PASSING\s+WARNING\s+CRITICAL\s+TAGS$/);
    expect(row).toMatch(/^api\s+3\s+2\s+0\s+1\s+v1,v2$/);

    const j = await runWeft(["services", "--json", ...auth]);
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)).toEqual([
      expect.objectContaining({ name: "api", instances: 3, passing: 2, warning: 0, critical: 1 }),
    ]);
  });

  it("instances: passing only by default, --all for every one", async () => {
    const j = await runWeft(["instances", "api", "--json", ...auth]);
    expect(j.code).toBe(0);
    expect(
      JSON.parse(j.stdout)
        .map((i: { id: string }) => i.id)
        .sort(),
    ).toEqual(["api-1", "api-2"]);

    const all = await runWeft(["instances", "api", "--all", ...auth]);
    expect(all.code).toBe(0);
    const lines = all.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+ADDRESS\s+STATUS\s+CHECKS\s+TAGS\s+DATACENTER\s+CERT EXPIRES$/);
    expect(lines.find((l) => l.startsWith("api-3"))).toMatch(
      /127\.0\.0\.1:9003\s+critical\s+ttl:critical\s+-\s+dc1/,
    );
    expect(lines.find((l) => l.startsWith("api-1"))).toMatch(/127\.0\.0\.1:9001\s+passing\s+-\s+v1\s+dc1/);
  });
});

describe("weft exit codes against a real server", () => {
  it("missing token is exit 4", async () => {
    const r = await runWeft(["services", "--addr", server.addr]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/^error: .*\(WEFT_ERR_UNAUTHENTICATED\)\n$/);
  });

  it("a token without permission is exit 4", async () => {
    const { secretId } = await createToken(server.url, server.token!, ["service:web:write"]);
    const r = await runWeft(["apply", "-f", "mesh.yaml", "--addr", server.addr], {
      cwd: work,
      env: { WEFT_TOKEN: secretId },
    });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain("(WEFT_ERR_PERMISSION_DENIED)");
  });

  it("WEFT_ADDR and WEFT_TOKEN are read from the environment", async () => {
    const r = await runWeft(["status", "--json"], {
      env: { WEFT_ADDR: server.url, WEFT_TOKEN: server.token! },
    });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ backend: expect.any(String), revision: expect.any(Number) });
  });

  it("the bootstrap token file in ./.weft/server is used when no token is given", async () => {
    const cwd = tempDir("weft-cwd-token-");
    mkdirSync(join(cwd, ".weft/server"), { recursive: true });
    writeFileSync(join(cwd, ".weft/server/bootstrap-token"), `${server.token}\n`);
    const r = await runWeft(["services", "--json", "--addr", server.addr], { cwd });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  it("an unreachable control plane is exit 3 naming the address", async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as { port: number }).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const r = await runWeft(["services", "--addr", `127.0.0.1:${port}`, "--token", "x"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(
      `error: cannot reach the control plane at 127.0.0.1:${port}: connection refused (WEFT_ERR_UNREACHABLE)\n`,
    );
  });

  it("weft server stops cleanly on SIGTERM (exit 0)", async () => {
    const s = await startWeftServer({ store: "memory" });
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await s.stop()).toBe(0);
  });
});
