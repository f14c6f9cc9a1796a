/**
 * The etcd:// options for a locked-down etcd: TLS with client certificates
 * (--client-cert-auth) and user authentication, against a REAL etcd
 * started here with certificates made by the openssl binary.
 */

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isWeftError } from "@weft/core";
import { type EtcdTestServer, type EtcdTestTls, etcdBinary, startEtcd } from "@weft/testkit";
import { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore } from "./open-store.js";

const hasOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
const suite = etcdBinary() && hasOpenssl ? describe : describe.skip;
if (!etcdBinary() || !hasOpenssl)
  console.warn("etcd-tls.test.ts: SKIPPED - needs the etcd and openssl binaries");

/** A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`. */
function makeCerts(dir: string): EtcdTestTls & { caFile: string } {
  const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  run(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "1",
    "-subj",
    "/CN=weft-test-etcd-ca",
  );
  const leaf = (name: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    run("req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
    run(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "1",
      "-out",
      `${name}.pem`,
      "-extfile",
      `${name}.ext`,
    );
  };
  leaf("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
  leaf("client", "extendedKeyUsage=clientAuth\n");
  return {
    certFile: join(dir, "server.pem"),
    keyFile: join(dir, "server.key"),
    caFile: join(dir, "ca.pem"),
    clientCertFile: join(dir, "client.pem"),
    clientKeyFile: join(dir, "client.key"),
  };
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return isWeftError(e) ? e.code : String(e);
  }
}

suite("etcd store over TLS with client certificates and user auth", () => {
  let dir: string;
  let tls: EtcdTestTls;
  let etcd: EtcdTestServer;
  let tlsParams: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "weft-etcd-tls-"));
    tls = makeCerts(dir);
    etcd = await startEtcd({ tls });
    const admin = new Etcd3({
      hosts: etcd.url,
      credentials: {
        rootCertificate: readFileSync(tls.caFile),
        certChain: readFileSync(tls.clientCertFile),
        privateKey: readFileSync(tls.clientKeyFile),
      },
    });
    try {
      await admin.user("root").create("root-pw");
      await admin.user("root").addRole("root");
      await admin.role("weft").create();
      await admin
        .role("weft")
        .grant({ permission: "Readwrite", range: admin.range({ prefix: "/weft-tls/" }) });
      await admin.user("weft").create("s3cret pw");
      await admin.user("weft").addRole("weft");
      await admin.auth.authEnable({});
    } finally {
      admin.close();
    }
    writeFileSync(join(dir, "pw"), "s3cret pw\n", { mode: 0o600 });
    tlsParams = `ca=${tls.caFile}&cert=${tls.clientCertFile}&key=${tls.clientKeyFile}`;
  });
  afterAll(async () => {
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("works with ca/cert/key and a password file: writes, reads and watches", async () => {
    const s = await openStore(
      `etcd://${etcd.hostPort}/?prefix=/weft-tls/a/&${tlsParams}&username=weft&passwordFile=${join(dir, "pw")}`,
    );
    try {
      const seen: number[] = [];
      await s.watch("", (b) => seen.push(b.revision));
      expect((await s.put("/k", "v")).revision).toBe(1);
      expect((await s.get("/k"))?.value).toBe("v");
      for (let i = 0; i < 200 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(seen).toEqual([1]);
    } finally {
      await s.close();
    }
  });

  it("takes the user and password from the userinfo", async () => {
    const s = await openStore(`etcd://weft:s3cret%20pw@${etcd.hostPort}/?prefix=/weft-tls/b/&${tlsParams}`);
    try {
      expect((await s.put("/k", "v")).revision).toBe(1);
    } finally {
      await s.close();
    }
  });

  it("refuses to open with WEFT_ERR_STORE_FAILED: wrong password, no TLS, a prefix the user may not touch", async () => {
    const base = `etcd://${etcd.hostPort}/?timeout=1500`;
    expect(
      await codeOf(openStore(`${base}&prefix=/weft-tls/c/&${tlsParams}&username=weft&password=wrong`)),
    ).toBe("WEFT_ERR_STORE_FAILED");
    expect(await codeOf(openStore(`${base}&prefix=/weft-tls/c/&username=weft&password=s3cret%20pw`))).toBe(
      "WEFT_ERR_STORE_FAILED",
    );
    expect(
      await codeOf(openStore(`${base}&prefix=/elsewhere/&${tlsParams}&username=weft&password=s3cret%20pw`)),
    ).toBe("WEFT_ERR_STORE_FAILED");
  });
});
