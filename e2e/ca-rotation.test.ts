/**
 * Certificate renewal and root rotation under continuous mTLS traffic
 * (HARDENING: "R rotations + 1 root roll at X req/s: 0 failed handshakes").
 *
 * A real control plane (a `weft server` process) signs leaves of 4 s for two
 * workload identities, `web` and `api`, held in this process by the data
 * plane's WorkloadIdentity (key pair + CSR + renewal at about half-life). `api`
 * serves an mTLS echo listener; `web` opens a new mTLS connection for every
 * request, back to back, for about 16 s, while one long-lived connection
 * pings throughout. Midway the root is rotated. Every handshake must succeed,
 * the long-lived connection must survive every renewal, and the old root
 * must leave the bundle once its leaves are replaced.
 */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { WeftClient } from "@weft/api";
import { connectMtls, createMtlsServer, WorkloadIdentity } from "@weft/dataplane";
import { afterAll, expect, test } from "vitest";
import { createToken } from "./helpers/http.js";
import { cleanup, startWeftServer, tempDir } from "./helpers/weft.js";

afterAll(cleanup);

const RUN_MS = 16_000;
const ROTATE_AT_MS = 5_000;
const MAX_REQUESTS = 200_000;

interface Issued {
  service: string;
  chainPem: string;
  rootsPem: readonly string[];
  /** When it was handed out: chains are checked as of then (4 s leaves are long expired at the end). */
  at: number;
}

/** Records every chain an identity is given, with the bundle it came with. */
function recordIssued(id: WorkloadIdentity, service: string, into: Issued[]): void {
  let last = "";
  const take = () => {
    const m = id.current();
    if (m.chainPem !== last)
      into.push({ service, chainPem: m.chainPem, rootsPem: m.bundle.rootsPem, at: Date.now() });
    last = m.chainPem;
  };
  take();
  id.onChange(take);
}

/** `openssl verify -x509_strict -purpose sslserver/sslclient` of one issued chain against its bundle. */
async function opensslVerify(dir: string, n: number, issued: Issued): Promise<string> {
  const certs =
    issued.chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
  const leaf = join(dir, `leaf-${n}.pem`);
  const roots = join(dir, `roots-${n}.pem`);
  writeFileSync(leaf, certs[0] ?? "");
  writeFileSync(roots, issued.rootsPem.join(""));
  const args = ["verify", "-x509_strict", "-attime", String(Math.floor(issued.at / 1000)), "-CAfile", roots];
  if (certs.length > 1) {
    const untrusted = join(dir, `untrusted-${n}.pem`);
    writeFileSync(untrusted, certs.slice(1).join(""));
    args.push("-untrusted", untrusted);
  }
  const run = (purpose: string) =>
    new Promise<string>((resolve) =>
      execFile("openssl", [...args, "-purpose", purpose, leaf], (err, stdout, stderr) =>
        resolve(err ? `${issued.service} chain ${n} (${purpose}): ${stderr || stdout}` : ""),
      ),
    );
  return (await run("sslserver")) + (await run("sslclient"));
}

function once(socket: TLSSocket, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    const done = (err?: Error) => {
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
      if (err) reject(err);
      else resolve(got);
    };
    const onData = (c: Buffer) => {
      got += c.toString();
      if (got.endsWith("\n")) done();
    };
    const onError = (e: Error) => done(e);
    const onClose = () => done(new Error(`closed after "${got}"`));
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
    socket.write(payload);
  });
}

test("leaves renew and the root rotates under continuous mTLS traffic with zero failed handshakes", async () => {
  const server = await startWeftServer({ store: "memory" });
  const token = server.token ?? "";
  const operator = new WeftClient({ addr: server.addr, token });
  await operator.applyConfig([
    { kind: "Mesh", name: "mesh", certificates: { leafTtl: "4s", maxLeafTtl: "10s" } },
  ]);
  const webToken = (await createToken(server.url, token, ["service:web:write"])).secretId;
  const apiToken = (await createToken(server.url, token, ["service:api:write"])).secretId;
  const before = await operator.caRoots();

  const web = await WorkloadIdentity.start({
    client: new WeftClient({ addr: server.addr, token: webToken }),
    service: "web",
    instanceId: "web-1",
  });
  const api = await WorkloadIdentity.start({
    client: new WeftClient({ addr: server.addr, token: apiToken }),
    service: "api",
    instanceId: "api-1",
  });

  const issued: Issued[] = [];
  recordIssued(web, "web", issued);
  recordIssued(api, "api", issued);

  const serverRejects: string[] = [];
  const peersSeen = new Set<string>();
  const listener = createMtlsServer({
    source: api,
    onReject: (r) => serverRejects.push(`${r.reason}: ${r.detail}`),
    onConnection: (socket, peer) => {
      peersSeen.add(peer.spiffeId);
      socket.on("data", (c) => socket.write(c));
      socket.on("error", () => {});
    },
  });
  await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
  const port = (listener.address() as AddressInfo).port;

  // One connection for the whole run: renewals must not drop it.
  const longLived = await connectMtls({ host: "127.0.0.1", port, source: web, expectService: "api" });
  let longLivedClosed = false;
  longLived.socket.once("close", () => {
    longLivedClosed = true;
  });
  let pings = 0;
  let pingFailures = 0;

  let ok = 0;
  const failures: string[] = [];
  const start = Date.now();
  let rotated: Awaited<ReturnType<WeftClient["caRotate"]>> | undefined;
  let nextPing = start;
  while (Date.now() - start < RUN_MS && ok + failures.length < MAX_REQUESTS) {
    if (!rotated && Date.now() - start >= ROTATE_AT_MS) rotated = await operator.caRotate();
    if (Date.now() >= nextPing) {
      nextPing += 200;
      try {
        const echo = await once(longLived.socket, `ping ${pings}\n`);
        if (echo === `ping ${pings}\n`) pings++;
        else pingFailures++;
      } catch {
        pingFailures++;
      }
    }
    try {
      const c = await connectMtls({
        host: "127.0.0.1",
        port,
        source: web,
        expectService: "api",
        timeoutMs: 5_000,
      });
      const echo = await once(c.socket, "x\n");
      c.socket.destroy();
      if (echo === "x\n") ok++;
      else failures.push(`bad echo ${JSON.stringify(echo)}`);
    } catch (e) {
      failures.push(String(e));
    }
  }
  const elapsed = (Date.now() - start) / 1000;
  const webStatus = web.status();
  const apiStatus = api.status();
  // The old root leaves once both holders have replaced their leaves and the grace (5 s) passed.
  const after = await operator.caRoots();
  const droppedDuringRun = longLivedClosed;

  longLived.socket.destroy();
  await new Promise<void>((r) => listener.close(() => r()));
  web.dispose();
  api.dispose();
  await server.stop();

  const renewals = webStatus.renewals + apiStatus.renewals;
  // Every chain handed out, checked by OpenSSL against the bundle it came with.
  const dir = tempDir("weft-ca-chains-");
  const opensslErrors = (await Promise.all(issued.map((c, i) => opensslVerify(dir, i, c)))).filter(
    (e) => e !== "",
  );
  const crossChains = issued.filter((c) => c.chainPem.split("BEGIN CERTIFICATE").length > 2).length;
  console.log(
    `ca rotation: ${ok + failures.length} mTLS handshakes in ${elapsed.toFixed(1)} s (${Math.round(ok / elapsed)}/s) ` +
      `across ${renewals} renewals (web ${webStatus.renewals}, api ${apiStatus.renewals}) + 1 root roll: ` +
      `${failures.length} failed, ${serverRejects.length} refused by the server; ` +
      `long-lived connection: ${pings} pings, ${pingFailures} failed, ${droppedDuringRun ? "dropped" : "kept"}; ` +
      `openssl verify: ${issued.length - opensslErrors.length}/${issued.length} chains OK (${crossChains} with the cross-signed root)`,
  );
  expect(opensslErrors).toEqual([]);
  expect(issued.length).toBeGreaterThanOrEqual(10);
  expect(crossChains).toBeGreaterThan(0);
  expect(failures.slice(0, 5)).toEqual([]);
  expect(serverRejects.slice(0, 5)).toEqual([]);
  expect(ok).toBeGreaterThan(100);
  expect(webStatus.renewals).toBeGreaterThanOrEqual(4);
  expect(apiStatus.renewals).toBeGreaterThanOrEqual(4);
  expect(webStatus.failedRenewals + apiStatus.failedRenewals).toBe(0);
  expect(pingFailures).toBe(0);
  expect(pings).toBeGreaterThan(RUN_MS / 200 / 2);
  expect(droppedDuringRun).toBe(false);
  expect(peersSeen).toEqual(new Set(["spiffe://weft.local/ns/default/svc/web"]));
  // Rotation happened, the leaves now come from the new root, and the old root is gone.
  expect(rotated?.previousRootId).toBe(before.activeRootId);
  expect(webStatus.rootId).toBe(rotated?.activeRootId);
  expect(apiStatus.rootId).toBe(rotated?.activeRootId);
  expect(after.roots.map((r) => r.id)).toEqual([rotated?.activeRootId]);
}, 60_000);
