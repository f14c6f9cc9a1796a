/**
 * Loopback ports for `weft up`: free ones for apps, sidecar listeners and
 * extra replicas' upstreams, and a wait for an app to accept connections.
 * A free port is found by binding port 0 and releasing it, which is racy by
 * nature; the allocator at least never hands out the same port twice itself.
 */
import { connect, createServer } from "node:net";

export function freePort(host = "127.0.0.1"): Promise<number> {
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

/** Hands out free ports, never one it handed out before or one reserved by the file. */
export class PortAllocator {
  private readonly taken = new Set<number>();

  constructor(reserved: Iterable<number> = []) {
    for (const p of reserved) this.taken.add(p);
  }

  reserve(port: number): void {
    this.taken.add(port);
  }

  async next(): Promise<number> {
    for (let i = 0; i < 50; i++) {
      const p = await freePort();
      if (!this.taken.has(p)) {
        this.taken.add(p);
        return p;
      }
    }
    throw new Error("no free loopback port found");
  }
}

/** Resolves true once 127.0.0.1:port accepts a connection, false when `deadline` passes or `give up` says so. */
export async function waitForListening(
  port: number,
  deadline: number,
  giveUp: () => boolean = () => false,
): Promise<boolean> {
  while (Date.now() < deadline && !giveUp()) {
    const ok = await new Promise<boolean>((done) => {
      const s = connect({ port, host: "127.0.0.1" });
      const t = setTimeout(() => {
        s.destroy();
        done(false);
      }, 1_000);
      s.once("connect", () => {
        clearTimeout(t);
        s.destroy();
        done(true);
      });
      s.once("error", () => {
        clearTimeout(t);
        done(false);
      });
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
