// Identity costs: what the built-in CA and the X.509-SVID checks cost.
//   npm run build && node bench/ca-identity.mjs
// Against a real `weft server` (fresh SQLite data dir), in one run:
//   - signing: CSRs per second through POST /v1/ca/sign (each one an ECDSA
//     signature and an fsynced store write), latency p50/p99;
//   - handshakes: new TLS 1.3 mutual-auth connections per second, Weft's
//     mTLS (connectMtls/createMtlsServer: our SVID verification on both sides)
//     against the same handshakes with Node's own verification only
//     (rejectUnauthorized + ca, no SPIFFE checks) — the ratio is what our checks add;
//   - verifySvid per call, first sight of a chain and cached;
//   - memory: resident size of a process holding a WorkloadIdentity, against
//     a bare Node process.
// Writes JSON to bench/results/. Every loop is bounded in count and time.
import "reflect-metadata";
import { spawnSync } from "node:child_process";
import { webcrypto } from "node:crypto";
import { cpus } from "node:os";
import tls from "node:tls";
import * as x509 from "@peculiar/x509";
import { WeftClient } from "@weft/api";
import {
  clearSvidCache,
  connectMtls,
  createMtlsServer,
  peerChainDer,
  verifySvid,
  WorkloadIdentity,
} from "@weft/dataplane";
import { ROOT, startBenchServer, writeResult } from "./lib/weft-server.mjs";

const SIGNS = 400;
const SIGN_CONCURRENCY = 8;
const HANDSHAKES = 500; // per round
const ROUNDS = 4; // Weft and Node-only rounds alternate; medians are reported
const HANDSHAKE_CONCURRENCY = 8;
const VERIFY_CACHED = 20_000;
const VERIFY_COLD = 2_000;
const { addr, token, stop } = await startBenchServer("ca-identity");
const client = new WeftClient({ addr, token });

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

// --- signing ---
const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const csrs = [];
for (let i = 0; i < SIGNS; i++) {
  const keys = await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      name: "CN=bench",
      keys,
      signingAlgorithm: alg,
      extensions: [
        new x509.SubjectAlternativeNameExtension([
          { type: "url", value: `spiffe://weft.local/ns/default/svc/svc-${i % 50}` },
        ]),
      ],
    },
    webcrypto,
  );
  csrs.push(csr.toString("pem"));
}
const signLatencies = [];
let nextSign = 0;
const tSign = performance.now();
await Promise.all(
  Array.from({ length: SIGN_CONCURRENCY }, async () => {
    while (nextSign < SIGNS) {
      const i = nextSign++;
      const t = performance.now();
      await client.caSign({ csr: csrs[i], instanceId: `i-${i}` });
      signLatencies.push(performance.now() - t);
    }
  }),
);
const signSeconds = (performance.now() - tSign) / 1000;
signLatencies.sort((a, b) => a - b);

// --- handshakes ---
const web = await WorkloadIdentity.start({ client, service: "web", instanceId: "web-1" });
const api = await WorkloadIdentity.start({ client, service: "api", instanceId: "api-1" });

async function runHandshakes(connectOnce) {
  let done = 0;
  let failed = 0;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: HANDSHAKE_CONCURRENCY }, async () => {
      while (done + failed < HANDSHAKES && performance.now() - t < 60_000) {
        try {
          await connectOnce();
          done++;
        } catch {
          failed++;
        }
      }
    }),
  );
  return { perSecond: Math.round(done / ((performance.now() - t) / 1000)), done, failed };
}

const mtlsServer = createMtlsServer({ source: api, onConnection: (s) => s.end("k") });
await new Promise((r) => mtlsServer.listen(0, "127.0.0.1", r));
const mtlsPort = mtlsServer.address().port;
const weftOnce = async () => {
  const { socket } = await connectMtls({
    host: "127.0.0.1",
    port: mtlsPort,
    source: web,
    expectService: "api",
  });
  await new Promise((r) => socket.once("close", r).resume());
};

// The same certificates with Node's verification only.
const apiM = api.current();
const webM = web.current();
const ca = apiM.bundle.rootsPem.join("");
const plainServer = tls.createServer(
  {
    key: apiM.keyPem,
    cert: apiM.chainPem,
    ca,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.3",
    ALPNProtocols: ["weft/1"],
  },
  (s) => s.end("k"),
);
await new Promise((r) => plainServer.listen(0, "127.0.0.1", r));
const plainPort = plainServer.address().port;
const plainCtx = tls.createSecureContext({
  key: webM.keyPem,
  cert: webM.chainPem,
  ca,
  minVersion: "TLSv1.3",
});
const plainOnce = () =>
  new Promise((ok, fail) => {
    const s = tls.connect({
      host: "127.0.0.1",
      port: plainPort,
      secureContext: plainCtx,
      ALPNProtocols: ["weft/1"],
      checkServerIdentity: () => undefined,
    });
    s.once("error", fail);
    s.once("close", ok);
    s.resume();
  });

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const weftRounds = [];
const plainRounds = [];
let handshakeFailures = 0;
for (let r = 0; r < ROUNDS; r++) {
  const w = await runHandshakes(weftOnce);
  const p = await runHandshakes(plainOnce);
  weftRounds.push(w.perSecond);
  plainRounds.push(p.perSecond);
  handshakeFailures += w.failed + p.failed;
}
mtlsServer.close();
const weft = { perSecond: median(weftRounds) };
const plain = { perSecond: median(plainRounds) };

// --- verifySvid ---
const chain = await new Promise((ok, fail) => {
  const s = tls.connect(
    { host: "127.0.0.1", port: plainPort, secureContext: plainCtx, checkServerIdentity: () => undefined },
    () => {
      ok(peerChainDer(s));
      s.destroy();
    },
  );
  s.once("error", fail);
});
plainServer.close();
const bundle = webM.bundle;
let t = performance.now();
for (let i = 0; i < VERIFY_COLD; i++) {
  clearSvidCache();
  if (!verifySvid(chain, bundle).ok) throw new Error("verifySvid refused a good chain");
}
const coldUs = ((performance.now() - t) * 1000) / VERIFY_COLD;
t = performance.now();
for (let i = 0; i < VERIFY_CACHED; i++) verifySvid(chain, bundle, { expectService: "api" });
const cachedUs = ((performance.now() - t) * 1000) / VERIFY_CACHED;
web.dispose();
api.dispose();

// --- memory: a process holding a WorkloadIdentity vs a bare node ---
const rssOf = (script) => {
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, BENCH_ADDR: addr, BENCH_TOKEN: token },
    timeout: 30_000,
  });
  const m = /rss=(\d+)/.exec(r.stdout);
  if (!m) throw new Error(`memory probe failed: ${r.stderr}`);
  return Number(m[1]) / 1024 / 1024;
};
const median3 = (f) => median([f(), f(), f()]);
const bareRss = median3(() =>
  rssOf(`await new Promise((r) => setTimeout(r, 300)); console.log("rss=" + process.memoryUsage().rss);`),
);
const identityRss = median3(() =>
  rssOf(`
  const { WeftClient } = await import("@weft/api/client");
  const { WorkloadIdentity } = await import("@weft/dataplane");
  const client = new WeftClient({ addr: process.env.BENCH_ADDR, token: process.env.BENCH_TOKEN });
  const id = await WorkloadIdentity.start({ client, service: "mem" });
  await new Promise((r) => setTimeout(r, 300));
  console.log("rss=" + process.memoryUsage().rss);
  id.dispose();
  process.exit(0);
`),
);

const result = {
  bench: "ca-identity",
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version },
  signing: {
    csrs: SIGNS,
    concurrency: SIGN_CONCURRENCY,
    perSecond: Math.round(SIGNS / signSeconds),
    p50Ms: Number(pct(signLatencies, 50).toFixed(1)),
    p99Ms: Number(pct(signLatencies, 99).toFixed(1)),
  },
  handshakes: {
    concurrency: HANDSHAKE_CONCURRENCY,
    weftMtlsPerSecond: weft.perSecond,
    nodeTlsOnlyPerSecond: plain.perSecond,
    ratio: Number((weft.perSecond / plain.perSecond).toFixed(2)),
    rounds: { weft: weftRounds, nodeTlsOnly: plainRounds },
    failed: handshakeFailures,
  },
  verifySvid: { coldUs: Number(coldUs.toFixed(1)), cachedUs: Number(cachedUs.toFixed(2)) },
  memory: {
    bareNodeMb: Math.round(bareRss),
    withWorkloadIdentityMb: Math.round(identityRss),
    addedMb: Math.round(identityRss - bareRss),
  },
};
stop();
const file = writeResult("ca-identity", result);
const s = result.signing;
const h = result.handshakes;
console.log(
  `signing: ${s.perSecond} CSRs/s (fsynced, ${s.concurrency} concurrent), p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms\n` +
    `mTLS handshakes: ${h.weftMtlsPerSecond}/s with SVID checks vs ${h.nodeTlsOnlyPerSecond}/s Node TLS only ` +
    `(ratio ${h.ratio}), ${h.failed} failed\n` +
    `verifySvid: ${result.verifySvid.coldUs} µs first sight, ${result.verifySvid.cachedUs} µs cached\n` +
    `memory: ${result.memory.withWorkloadIdentityMb} MB with a WorkloadIdentity vs ${result.memory.bareNodeMb} MB bare node (+${result.memory.addedMb} MB)`,
);
console.log(`written to ${file}`);
process.exit(0);
