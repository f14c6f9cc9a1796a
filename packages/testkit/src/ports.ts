import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/**
 * A free loopback port for a test to hand to a process that binds it later
 * (an upstream's local port, a server restarted on the same port). Racy by
 * nature; tests prefer port 0 where they can.
 *
 * The port is drawn at random below the kernel's ephemeral range: the
 * kernel's own port-0 choice comes from that range, and so does every
 * outgoing connection's local port, so under a busy suite the port the
 * kernel just freed was often taken by a connection before the process
 * bound it (EADDRINUSE). Below the range only another test's draw can
 * collide, and the bind check catches a port already in use.
 */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const [low] = ephemeralRange();
  const floor = 10_000;
  const ceiling = Math.max(floor + 1_000, low);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = floor + Math.floor(Math.random() * (ceiling - floor));
    if (await bindable(port, host)) return port;
  }
  return kernelPort(host);
}

function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/)
      .map(Number);
    if (lo && hi) return [lo, hi];
  } catch {
    // not Linux
  }
  return [32768, 60999];
}

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

function kernelPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
