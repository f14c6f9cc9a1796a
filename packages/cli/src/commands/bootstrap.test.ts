/**
 * `weft bootstrap grpc`: the document (checked by grpc-js-xds's own
 * bootstrap validator), flag checking, and the command against a real
 * in-process control plane (registration, a 0600 file). The real client
 * reading the file is covered by e2e/xds-proxyless.test.ts.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SERVER_LISTENER_TEMPLATE, WeftClient } from "@weft/api/client";
import { type RunningServer, startServer } from "@weft/controlplane";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "../exit-codes.js";
import { runCaptured } from "../run-captured.suite.js";
import {
  CERT_PROVIDER,
  certFiles,
  grpcBootstrap,
  NODE_CERT_PROVIDER_KEY,
  NODE_TOKEN_KEY,
  XDS_CHECK_ID,
  XDS_CHECK_WAITING,
  xdsServerUri,
} from "./bootstrap.js";

const req = createRequire(import.meta.url);
const { validateBootstrapConfig } = req("@grpc/grpc-js-xds/build/src/xds-bootstrap.js") as {
  validateBootstrapConfig(o: unknown): {
    node: { id: string; locality: unknown };
    xdsServers: { server_uri: string }[];
  };
};

describe("grpcBootstrap", () => {
  it("writes what grpc-js-xds accepts: server, node id, locality and the token in node metadata", () => {
    const doc = grpcBootstrap({
      serverUri: "127.0.0.1:7401",
      nodeId: "web-1",
      service: "web",
      token: "s3cret",
      locality: { region: "eu", zone: "a" },
    });
    const info = validateBootstrapConfig(doc);
    expect(info.xdsServers[0]!.server_uri).toBe("127.0.0.1:7401");
    expect(info.node).toMatchObject({ id: "web-1", locality: { region: "eu", zone: "a" } });
    expect((doc.node as { metadata: Record<string, string> }).metadata[NODE_TOKEN_KEY]).toBe("s3cret");
    const noToken = grpcBootstrap({ serverUri: "h:1", nodeId: "n", service: "web" });
    expect(JSON.stringify(noToken)).not.toMatch(NODE_TOKEN_KEY);
    expect(validateBootstrapConfig(noToken).node.locality).toEqual({});
    // What an XdsServer needs to ask for its Listener.
    expect(validateBootstrapConfig(doc)).toMatchObject({
      serverListenerResourceNameTemplate: SERVER_LISTENER_TEMPLATE,
    });
  });

  it("defaults the xDS server to the API host on port 7401", () => {
    expect(xdsServerUri(undefined, "127.0.0.1:7400")).toBe("127.0.0.1:7401");
    expect(xdsServerUri(undefined, "http://cp.internal:7400")).toBe("cp.internal:7401");
    expect(xdsServerUri("10.0.0.1:9000", "x")).toBe("10.0.0.1:9000");
  });
});

describe("weft bootstrap grpc", () => {
  let srv: RunningServer;
  let dir: string;
  beforeAll(async () => {
    srv = await startServer({
      listen: "127.0.0.1:0",
      storeSpec: "memory",
      logger: pino({ level: "silent" }),
    });
    dir = mkdtempSync(join(tmpdir(), "weft-bootstrap-"));
  });
  afterAll(async () => {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    [["--service", "Web"], /--service "Web"/],
    [["--service", "web", "--port", "0"], /--port "0"/],
    [["--service", "web"], /--port is required/],
    [["--service", "web", "--port", "1", "--upstream", "api", "--upstream", "api"], /listed twice/],
    [["--service", "web", "--port", "1", "--xds-server", "nohost"], /--xds-server "nohost"/],
    [["--service", "web", "--port", "1", "--watch"], /--watch needs --cert-dir/],
    [["--service", "web", "--port", "1", "--cert-dir", "c"], /--cert-dir needs --out/],
  ])("refuses %j", async (args, message) => {
    const r = await runCaptured(["bootstrap", "grpc", "--addr", srv.url, ...args], dir);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toMatch(message);
  });

  it("registers a proxyless instance and writes a 0600 bootstrap for it", async () => {
    const out = join(dir, "web.json");
    const token = srv.bootstrapToken as string;
    const r = await runCaptured(
      [
        "bootstrap",
        "grpc",
        ...["--service", "web", "--id", "web-px", "--port", "50051", "--upstream", "api"],
        ...["--zone", "a", "--out", out, "--addr", srv.url, "--token", token],
      ],
      dir,
    );
    expect(r.err).toMatch(/registered proxyless instance web-px of web/);
    expect(r.code).toBe(0);
    expect(r.out).toBe(`export GRPC_XDS_BOOTSTRAP=${out}\n`);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const doc = JSON.parse(readFileSync(out, "utf8"));
    expect(doc.node).toMatchObject({ id: "web-px", locality: { zone: "a" } });
    expect(doc.node.metadata[NODE_TOKEN_KEY]).toBe(token);
    const inst = await new WeftClient({ addr: srv.url, token }).getInstance("web-px");
    expect(inst).toMatchObject({ service: "web", port: 50051, tags: ["proxyless"], locality: { zone: "a" } });
    expect(inst.proxy).toEqual({ protocol: "grpc", upstreams: [{ service: "api", localPort: 1 }] });
    // Critical until the workload's xDS stream opens (the control plane then reports it).
    expect(inst.checks).toEqual([
      expect.objectContaining({
        id: XDS_CHECK_ID,
        status: "critical",
        output: XDS_CHECK_WAITING,
        ttlMs: 30_000,
        deregisterCriticalAfterMs: 600_000,
      }),
    ]);
    expect(inst.status).toBe("critical");
    expect(doc.server_listener_resource_name_template).toBe(SERVER_LISTENER_TEMPLATE);
  });

  it("with --no-xds-health registers without the xds check", async () => {
    const token = srv.bootstrapToken as string;
    const r = await runCaptured(
      [
        "bootstrap",
        "grpc",
        ...["--service", "web", "--id", "web-plain", "--port", "50052", "--no-xds-health"],
        ...["--addr", srv.url, "--token", token],
      ],
      dir,
    );
    expect(r.code).toBe(0);
    const inst = await new WeftClient({ addr: srv.url, token }).getInstance("web-plain");
    expect(inst.checks).toEqual([]);
    expect(inst.status).toBe("passing");
  });

  it("with --cert-dir writes the workload's certificate, key (0600) and roots, named as a file_watcher provider", async () => {
    const out = join(dir, "mtls.json");
    const token = srv.bootstrapToken as string;
    const r = await runCaptured(
      [
        "bootstrap",
        "grpc",
        ...["--service", "web", "--id", "web-tls", "--port", "50053", "--cert-dir", "certs"],
        ...["--out", out, "--addr", srv.url, "--token", token],
      ],
      dir,
    );
    expect(r.err).toMatch(/certificate for web written to/);
    expect(r.code).toBe(0);
    const doc = JSON.parse(readFileSync(out, "utf8"));
    const info = validateBootstrapConfig(doc) as unknown as {
      certificateProviders: Record<string, { pluginName: string; config: Record<string, string> }>;
    };
    const provider = info.certificateProviders[CERT_PROVIDER]!;
    expect(provider.pluginName).toBe("file_watcher");
    expect(doc.node.metadata[NODE_CERT_PROVIDER_KEY]).toBe(CERT_PROVIDER);
    const files = certFiles(join(dir, "certs"));
    expect(provider.config).toMatchObject({
      certificateFile: files.cert,
      privateKeyFile: files.key,
      caCertificateFile: files.ca,
    });
    expect(statSync(files.key).mode & 0o777).toBe(0o600);
    const leaf = new X509Certificate(readFileSync(files.cert));
    expect(leaf.subjectAltName).toMatch(/URI:spiffe:\/\/[^/]+\/ns\/default\/svc\/web/);
    const root = new X509Certificate(readFileSync(files.ca));
    expect(leaf.verify(root.publicKey)).toBe(true);
    expect(createPrivateKey(readFileSync(files.key)).type).toBe("private");
  });

  it("with --no-register prints the document and the registration to do", async () => {
    const r = await runCaptured(
      [
        "bootstrap",
        "grpc",
        "--service",
        "web",
        "--id",
        "web-2",
        "--no-register",
        "--addr",
        srv.url,
        "--token",
        "t",
      ],
      dir,
    );
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/not registered; register it with PUT \/v1\/catalog\/instances/);
    expect(JSON.parse(r.out).node.id).toBe("web-2");
    await expect(
      new WeftClient({ addr: srv.url, token: srv.bootstrapToken }).getInstance("web-2"),
    ).rejects.toThrow();
  });
});
