// The HAProxy pair that mirrors Weft's topology, one process per side:
//   loadgen -> client-side HAProxy (plain in; TLS 1.3 out with a client
//   certificate from Weft's CA, the server's certificate verified against the
//   Weft root) -> server-side HAProxy (TLS 1.3 in, client certificate
//   required and verified) -> app.
// L7 routes are `mode http` with HTTP/2 between the two sides (as Weft's
// sidecars) and `http-reuse always` (pooled, multiplexed upstream
// connections); L4 routes are `mode tcp`. One thread each (`nbthread 1`),
// as a Node sidecar has one JavaScript thread.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnReady, waitForPort } from "./tools.mjs";

const TLS = "ssl-min-ver TLSv1.3 verify required";

const header = `global
  nbthread 1
  maxconn 4000
  ssl-server-verify required

defaults
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 120s
  timeout http-request 120s
`;

/**
 * route: {name, mode: "http" | "h2" | "tcp", clientPort, peerPort, appPort}
 *   http: HTTP/1.1 from the loadgen and to the app; h2: h2c (prior knowledge) both ends.
 * -> {client, server} config texts.
 */
export function haproxyConfigs(routes, certs) {
  let client = header;
  let server = header;
  for (const r of routes) {
    const mode = r.mode === "tcp" ? "tcp" : "http";
    const reuse = mode === "http" ? "  http-reuse always\n" : "";
    client += `
frontend c_${r.name}
  mode ${mode}
  bind 127.0.0.1:${r.clientPort}${r.mode === "h2" ? " proto h2" : ""}
  default_backend c_${r.name}_peer

backend c_${r.name}_peer
  mode ${mode}
${reuse}  server peer 127.0.0.1:${r.peerPort} ssl crt ${certs.client.crt} ca-file ${certs.client.ca} ${TLS}${mode === "http" ? " alpn h2" : ""}
`;
    server += `
frontend s_${r.name}
  mode ${mode}
  bind 127.0.0.1:${r.peerPort} ssl crt ${certs.server.crt} ca-file ${certs.server.ca} ${TLS}${mode === "http" ? " alpn h2,http/1.1" : ""}
  default_backend s_${r.name}_app

backend s_${r.name}_app
  mode ${mode}
${reuse}  server app 127.0.0.1:${r.appPort}${r.mode === "h2" ? " proto h2" : ""}
`;
  }
  return { client, server };
}

/** Writes, checks (`haproxy -c`) and starts both sides; resolves once every frontend accepts. */
export async function startHaproxyPair(bin, dir, routes, certs) {
  const cfg = haproxyConfigs(routes, certs);
  const procs = {};
  for (const side of ["server", "client"]) {
    const file = join(dir, `haproxy-${side}.cfg`);
    writeFileSync(file, cfg[side]);
    const check = spawnSync(bin, ["-c", "-q", "-f", file], { encoding: "utf8", timeout: 30_000 });
    if (check.status !== 0) throw new Error(`haproxy -c ${file}: ${check.stderr || check.stdout}`);
    // -db: foreground, no daemon, so the PID is the process doing the work.
    procs[side] = await spawnReady(bin, ["-db", "-f", file], {
      ready: null,
      what: `haproxy ${side}`,
      timeoutMs: 15_000,
    }).catch(async (e) => {
      for (const p of Object.values(procs)) await p.stop();
      throw e;
    });
  }
  const died = (side) =>
    procs[side].exited.then(() => {
      throw new Error(`haproxy ${side} exited: ${procs[side].stderrTail().slice(-2000)}`);
    });
  const listening = (async () => {
    for (const r of routes) {
      await waitForPort(r.peerPort);
      await waitForPort(r.clientPort);
    }
  })();
  try {
    await Promise.race([listening, died("client"), died("server")]);
  } catch (e) {
    for (const p of Object.values(procs)) await p.stop();
    throw e;
  }
  return { client: procs.client, server: procs.server, configs: cfg };
}

export function haproxyVersion(bin) {
  const r = spawnSync(bin, ["-v"], { encoding: "utf8" });
  return /HAProxy version (\S+)/.exec(r.stdout)?.[1] ?? "unknown";
}
