/**
 * A TCP proxy that can black-hole its connections (no reset): a replica's
 * etcd connection through it is "partitioned" while etcd and the other
 * replicas carry on. Tests only (like store/etcd-test-server.ts).
 */
import { createServer, type Server, Socket } from "node:net";

export interface PartitionProxy {
  readonly port: number;
  /** Stop forwarding bytes either way (connections stay open, silent). */
  cut(): void;
  /** Forward again; connections that lost bytes are reset, new ones flow. */
  heal(): void;
  close(): void;
}

export async function partitionProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<PartitionProxy> {
  let cut = false;
  const pairs = new Set<[Socket, Socket]>();
  const server: Server = createServer((down) => {
    const up = new Socket();
    up.connect(targetPort, targetHost);
    const pair: [Socket, Socket] = [down, up];
    pairs.add(pair);
    down.on("data", (d) => {
      if (!cut) up.write(d);
    });
    up.on("data", (d) => {
      if (!cut) down.write(d);
    });
    const end = () => {
      pairs.delete(pair);
      down.destroy();
      up.destroy();
    };
    for (const s of pair) {
      s.on("close", end);
      s.on("error", end);
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const resetAll = () => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
  };
  return {
    port,
    cut: () => {
      cut = true;
    },
    heal: () => {
      cut = false;
      resetAll();
    },
    close: () => {
      resetAll();
      server.close();
    },
  };
}
