// A `weft server` that also serves xDS (--xds-listen) for a benchmark with
// proxyless clients: memory store (nothing to fsync, nothing left behind),
// API and xDS on free loopback ports, and a deadline that kills it (and
// exits) if the benchmark hangs, as startBenchServer does.
import { join } from "node:path";
import { spawnReady } from "./tools.mjs";
import { ROOT } from "./weft-server.mjs";

/** -> {url, addr, xdsPort, token, pid, stop()} */
export async function startXdsBenchServer(name, deadlineMs = 300_000) {
  const srv = await spawnReady(
    process.execPath,
    [
      join(ROOT, "packages/cli/dist/bin/weft.js"),
      "server",
      "--listen",
      "127.0.0.1:0",
      "--store",
      "memory",
      "--xds-listen",
      "127.0.0.1:0",
    ],
    {
      ready:
        /weft server listening on (\S+)\nweft xds listening on port (\d+)\nbootstrap management token: (\S+)/,
      what: "weft server --xds-listen",
      timeoutMs: 60_000,
    },
  );
  const deadline = setTimeout(() => {
    console.error(`${name} bench: timed out after ${deadlineMs / 1000} s`);
    srv.proc.kill("SIGTERM");
    process.exit(1);
  }, deadlineMs);
  deadline.unref();
  const url = srv.match[1];
  return {
    url,
    addr: new URL(url).host,
    xdsPort: Number(srv.match[2]),
    token: srv.match[3],
    pid: srv.pid,
    /** The control plane's stderr (NACKs, refusals), for a line that never became ready. */
    stderrTail: () => srv.stderrTail(),
    stop: () => {
      clearTimeout(deadline);
      return srv.stop();
    },
  };
}
