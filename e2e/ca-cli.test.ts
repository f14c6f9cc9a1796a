/**
 * `weft ca` end to end: the built executable against a real `weft server`,
 * with CSRs made by the `openssl` binary and leaves checked by
 * `openssl verify` against the bundle `weft ca roots --pem` prints.
 * Covers roots (table, --json, --pem), sign (files, stdout, --json, the
 * refusals and their exit codes: 403 -> 4, 400 -> 2), `weft instances`'
 * CERT EXPIRES column, and rotate (two roots, a second rotation -> 409 -> 1,
 * the cross-signed intermediate in the chain).
 */
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken, http } from "./helpers/http.js";
import { openssl, opensslCsr } from "./helpers/openssl.js";
import { cleanup, runWeft, startWeftServer, tempDir, type WeftServer } from "./helpers/weft.js";

let server: WeftServer;
let work: string;
/** The flags every client command gets: address and the bootstrap (operator) token. */
let auth: string[];

const TD = "weft.local";
const HOUR = 3_600_000;

function spiffe(service: string): string {
  return `spiffe://${TD}/ns/default/svc/${service}`;
}

function pems(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}

function re(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function withNewline(s: string): string {
  return s.endsWith("\n") ? s : `${s}\n`;
}

async function rootsJson() {
  const r = await runWeft(["ca", "roots", "--json", ...auth]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}

beforeAll(async () => {
  server = await startWeftServer();
  auth = ["--addr", server.addr, "--token", server.token!];
  work = tempDir("weft-ca-e2e-");
  opensslCsr(work, "web", { cn: "web", san: `URI:${spiffe("web")}` });
  opensslCsr(work, "api", { cn: "api", san: `URI:${spiffe("api")}` });
  opensslCsr(work, "two", { cn: "web", san: `URI:${spiffe("web")},URI:${spiffe("api")}` });
});

afterAll(cleanup);

describe("weft ca roots", () => {
  it("a table under a trust domain line: one active root with about ten years left", async () => {
    const r = await runWeft(["ca", "roots", ...auth]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(`trust domain: ${TD}`);
    expect(lines[1]).toMatch(/^ID\s+STATE\s+SERIAL\s+NOT AFTER\s+EXPIRES IN\s+LEAVES\s+FINGERPRINT$/);
    expect(lines).toHaveLength(3);
    // Mesh certificates.rootTtl defaults to 87600h (10 x 365 days).
    expect(lines[2]).toMatch(
      /^\S+\s+active\s+\S+\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+9y 36\dd\s+\d+\s+[0-9A-F]{2}(:[0-9A-F]{2}){5}$/i,
    );
    expect(r.stdout).not.toContain("\u001b[");
  });

  it("--json is the CaRootsResponse; its fingerprint is the certificate's SHA-256", async () => {
    const j = await rootsJson();
    expect(j).toMatchObject({ trustDomain: TD, activeRootId: expect.any(String), index: expect.any(Number) });
    expect(j.roots).toHaveLength(1);
    const [root] = j.roots;
    expect(root).toMatchObject({
      id: j.activeRootId,
      state: "active",
      leavesOutstanding: expect.any(Number),
    });
    const cert = new X509Certificate(root.certificatePem);
    expect(cert.ca).toBe(true);
    expect(root.fingerprintSha256.toUpperCase()).toBe(cert.fingerprint256);
    expect(root.fingerprintSha256.replace(/:/g, "").toLowerCase()).toBe(
      createHash("sha256").update(cert.raw).digest("hex"),
    );
    // The table shows the same root, shortened.
    const t = await runWeft(["ca", "roots", ...auth]);
    expect(t.stdout).toContain(root.id);
    expect(t.stdout).toContain(root.fingerprintSha256.split(":").slice(0, 6).join(":"));
  });

  it("--pem prints every root's certificate", async () => {
    const j = await rootsJson();
    const p = await runWeft(["ca", "roots", "--pem", ...auth]);
    expect(p.code).toBe(0);
    expect(pems(p.stdout)).toHaveLength(j.roots.length);
    expect(p.stdout).toBe(
      j.roots.map((r: { certificatePem: string }) => withNewline(r.certificatePem)).join(""),
    );
  });

  it("any valid token may read the bundle; no token is exit 4", async () => {
    const { secretId } = await createToken(server.url, server.token!, ["service:web:read"]);
    const ok = await runWeft(["ca", "roots", "--addr", server.addr], { env: { WEFT_TOKEN: secretId } });
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    const none = await runWeft(["ca", "roots", "--addr", server.addr]);
    expect(none.code).toBe(4);
    expect(none.stderr).toMatch(/^error: .*\(WEFT_ERR_UNAUTHENTICATED\)\n$/);
  });
});

describe("weft ca sign", () => {
  it("a leaf from an openssl CSR that openssl verifies against `weft ca roots --pem`", async () => {
    const roots = await runWeft(["ca", "roots", "--pem", ...auth]);
    expect(roots.code).toBe(0);
    writeFileSync(join(work, "roots.pem"), roots.stdout);

    const r = await runWeft(
      ["ca", "sign", "--csr", "web.csr", "--out", "web.crt", "--chain-out", "web-chain.pem", ...auth],
      { cwd: work },
    );
    expect(r.stderr).toMatch(new RegExp(`^signed ${spiffe("web")}: serial \\S+, root \\S+, expires .*\\n$`));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");

    expect(openssl(work, "verify", "-CAfile", "roots.pem", "web.crt")).toBe("web.crt: OK\n");
    // No rotation yet: the chain is the leaf alone.
    expect(pems(readFileSync(join(work, "web-chain.pem"), "utf8"))).toEqual(
      pems(readFileSync(join(work, "web.crt"), "utf8")),
    );

    // The leaf profile.
    const text = openssl(work, "x509", "-in", "web.crt", "-noout", "-text");
    expect(text).toContain(`URI:${spiffe("web")}`);
    expect(text).toMatch(/Digital Signature/);
    expect(text).toMatch(/TLS Web Server Authentication, TLS Web Client Authentication/);
    const leaf = new X509Certificate(readFileSync(join(work, "web.crt")));
    expect(leaf.subjectAltName).toBe(`URI:${spiffe("web")}`);
    expect(leaf.ca).toBe(false);
    // Default lifetime: Mesh certificates.leafTtl, 24h.
    const left = Date.parse(leaf.validTo) - Date.now();
    expect(left).toBeGreaterThan(23 * HOUR);
    expect(left).toBeLessThanOrEqual(24 * HOUR);
  });

  it("without --out the leaf goes to stdout; --json prints the whole SignResponse", async () => {
    const plain = await runWeft(["ca", "sign", "--csr", "web.csr", ...auth], { cwd: work });
    expect(plain.code).toBe(0);
    expect(pems(plain.stdout)).toHaveLength(1);
    expect(plain.stdout).toBe(pems(plain.stdout)[0]);
    expect(plain.stderr).toContain(`signed ${spiffe("web")}`);

    const j = await runWeft(["ca", "sign", "--csr", "web.csr", "--ttl", "1h", "--json", ...auth], {
      cwd: work,
    });
    expect(j.stderr).toBe("");
    expect(j.code).toBe(0);
    const s = JSON.parse(j.stdout);
    const roots = await rootsJson();
    expect(s).toMatchObject({
      spiffeId: spiffe("web"),
      service: "web",
      trustDomain: TD,
      rootId: roots.activeRootId,
      serialNumber: expect.any(String),
      notBefore: expect.any(String),
    });
    expect(pems(s.certificatePem)).toHaveLength(1);
    expect(pems(s.chainPem)[0]).toBe(pems(s.certificatePem)[0]);
    expect(s.rootsPem).toHaveLength(1);
    const left = Date.parse(s.notAfter) - Date.now();
    expect(left).toBeGreaterThan(HOUR - 60_000);
    expect(left).toBeLessThanOrEqual(HOUR);
  });

  it("a missing CSR file is exit 2 naming the file, before any request", async () => {
    const r = await runWeft(["ca", "sign", "--csr", "nope.csr", "--addr", "127.0.0.1:1"], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      "error: cannot read CSR file nope.csr: no such file or directory (WEFT_ERR_USAGE)\n",
    );
  });

  it("a service:web:write token gets web but not api: exit 4, WEFT_ERR_IDENTITY_DENIED", async () => {
    const { secretId } = await createToken(server.url, server.token!, ["service:web:write"]);
    const env = { WEFT_TOKEN: secretId };
    const ok = await runWeft(["ca", "sign", "--csr", "web.csr", "--addr", server.addr], { cwd: work, env });
    expect(ok.stderr).toContain(`signed ${spiffe("web")}`);
    expect(ok.code).toBe(0);

    const r = await runWeft(["ca", "sign", "--csr", "api.csr", "--addr", server.addr], { cwd: work, env });
    expect(r.code).toBe(4);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^error: .*"api".*\(WEFT_ERR_IDENTITY_DENIED\)\n$/);
  });

  it("a CSR with two URI SANs is exit 2 with WEFT_ERR_CSR_INVALID", async () => {
    const r = await runWeft(["ca", "sign", "--csr", "two.csr", ...auth], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^error: CSR refused: .*\(WEFT_ERR_CSR_INVALID\)\n$/);
  });

  it("a lifetime over Mesh certificates.maxLeafTtl (72h) is exit 2 with WEFT_ERR_CERT_TTL_TOO_LONG", async () => {
    const r = await runWeft(["ca", "sign", "--csr", "web.csr", "--ttl", "100h", ...auth], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: .*72h.*\(WEFT_ERR_CERT_TTL_TOO_LONG\)\n$/);
  });
});

describe("weft instances: CERT EXPIRES", () => {
  beforeAll(async () => {
    for (const [id, port] of [
      ["web-1", 9101],
      ["web-2", 9102],
    ] as const) {
      const r = await http(server.url, "/v1/catalog/instances", {
        method: "PUT",
        token: server.token,
        body: { id, service: "web", address: "127.0.0.1", port },
      });
      expect(r.status, r.text).toBe(201);
    }
  });

  it("'-' while an instance has no certificate; time left once the CA signed one for it", async () => {
    const before = await runWeft(["instances", "web", ...auth]);
    expect(before.code).toBe(0);
    const beforeLines = before.stdout.trimEnd().split("\n");
    expect(beforeLines[0]).toMatch(/^ID\s+ADDRESS\s+STATUS\s+CHECKS\s+TAGS\s+DATACENTER\s+CERT EXPIRES$/);
    expect(beforeLines.find((l) => l.startsWith("web-1"))).toMatch(/\sdc1\s+-$/);
    const jsonBefore = JSON.parse((await runWeft(["instances", "web", "--json", ...auth])).stdout);

    const s = await runWeft(
      ["ca", "sign", "--csr", "web.csr", "--instance", "web-1", "--out", "web-1.crt", "--json", ...auth],
      { cwd: work },
    );
    expect(s.stderr).toBe("");
    expect(s.code).toBe(0);
    const signed = JSON.parse(s.stdout);
    expect(readFileSync(join(work, "web-1.crt"), "utf8")).toBe(withNewline(signed.certificatePem));

    const t = await runWeft(["instances", "web", ...auth]);
    expect(t.code).toBe(0);
    const lines = t.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+ADDRESS\s+STATUS\s+CHECKS\s+TAGS\s+DATACENTER\s+CERT EXPIRES$/);
    expect(lines.find((l) => l.startsWith("web-1"))).toMatch(
      /127\.0\.0\.1:9101\s+passing\s+-\s+-\s+dc1\s+23h 5\dm$/,
    );
    expect(lines.find((l) => l.startsWith("web-2"))).toMatch(
      /127\.0\.0\.1:9102\s+passing\s+-\s+-\s+dc1\s+-$/,
    );

    // --json: the instances as before, web-1 now with its certificate.
    const after = JSON.parse((await runWeft(["instances", "web", "--json", ...auth])).stdout);
    const byId = (list: { id: string }[], id: string) => list.find((i) => i.id === id);
    expect(byId(after, "web-1")).toMatchObject({
      certificate: { serialNumber: signed.serialNumber, rootId: signed.rootId, notAfter: signed.notAfter },
    });
    expect(byId(after, "web-2")).not.toHaveProperty("certificate");
    const { certificate: _c, modifyIndex: _m1, ...web1 } = byId(after, "web-1") as Record<string, unknown>;
    const { modifyIndex: _m2, ...web1Before } = byId(jsonBefore, "web-1") as Record<string, unknown>;
    expect(Object.keys(web1).sort()).toEqual(Object.keys(web1Before).sort());

    const one = await http(server.url, "/v1/catalog/instances/web-1", { token: server.token });
    expect(one.status).toBe(200);
    expect(one.body.certificate).toEqual({
      serialNumber: signed.serialNumber,
      rootId: signed.rootId,
      notAfter: signed.notAfter,
    });
  });
});

describe("weft ca rotate", () => {
  it("a new active root; the old one retires; a second rotation is refused (409: exit 1)", async () => {
    const before = await rootsJson();
    const oldId: string = before.activeRootId;
    const oldPem: string = before.roots[0].certificatePem;
    writeFileSync(join(work, "old-root.pem"), withNewline(oldPem));

    const r = await runWeft(["ca", "rotate", ...auth]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const newId = /^active root\s+(\S+)/m.exec(r.stdout)?.[1];
    expect(newId).toBeDefined();
    expect(newId).not.toBe(oldId);
    expect(r.stdout).toMatch(
      new RegExp(`^retiring root\\s+${re(oldId)} \\(\\d+ lea(f|ves) outstanding\\)$`, "m"),
    );
    expect(r.stdout).toContain("when its last leaf expires or is replaced");

    const after = await rootsJson();
    expect(after.activeRootId).toBe(newId);
    expect(after.roots).toHaveLength(2);
    const states = Object.fromEntries(after.roots.map((x: { id: string; state: string }) => [x.id, x.state]));
    expect(states).toEqual({ [newId as string]: "active", [oldId]: "retiring" });
    const old = after.roots.find((x: { id: string }) => x.id === oldId);
    expect(old.leavesOutstanding).toBeGreaterThan(0);
    expect(after.index).toBeGreaterThan(before.index);

    const t = await runWeft(["ca", "roots", ...auth]);
    const lines = t.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(4);
    expect(lines[2]).toMatch(new RegExp(`^${re(newId as string)}\\s+active\\s`));
    expect(lines[3]).toMatch(new RegExp(`^${re(oldId)}\\s+retiring\\s`));

    const again = await runWeft(["ca", "rotate", ...auth]);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe("");
    expect(again.stderr).toMatch(
      new RegExp(`^error: .*${re(oldId)}.*\\(WEFT_ERR_CA_ROTATION_PENDING\\)\\n$`),
    );

    // The pending rotation did not change the bundle.
    expect((await rootsJson()).roots).toHaveLength(2);
  });

  it("after the rotation: leaves from the new root with the cross-signed intermediate; old leaves still verify", async () => {
    const roots = await runWeft(["ca", "roots", "--pem", ...auth]);
    expect(pems(roots.stdout)).toHaveLength(2);
    writeFileSync(join(work, "roots2.pem"), roots.stdout);

    const s = await runWeft(
      [
        "ca",
        "sign",
        "--csr",
        "web.csr",
        "--out",
        "web2.crt",
        "--chain-out",
        "web2-chain.pem",
        "--json",
        ...auth,
      ],
      { cwd: work },
    );
    expect(s.code).toBe(0);
    const signed = JSON.parse(s.stdout);
    expect(signed.rootId).toBe((await rootsJson()).activeRootId);
    expect(signed.rootsPem).toHaveLength(2);
    const chain = pems(readFileSync(join(work, "web2-chain.pem"), "utf8"));
    expect(chain).toHaveLength(2);
    expect(chain[0]).toBe(pems(readFileSync(join(work, "web2.crt"), "utf8"))[0]);
    writeFileSync(join(work, "intermediate.pem"), chain[1]!);

    // Peers that trust the whole bundle accept new and old leaves...
    expect(openssl(work, "verify", "-CAfile", "roots2.pem", "web2.crt")).toBe("web2.crt: OK\n");
    expect(openssl(work, "verify", "-CAfile", "roots2.pem", "web.crt")).toBe("web.crt: OK\n");
    // ...and peers that still trust only the old root accept the new leaf through the intermediate.
    expect(
      openssl(work, "verify", "-CAfile", "old-root.pem", "-untrusted", "intermediate.pem", "web2.crt"),
    ).toBe("web2.crt: OK\n");
  });
});
