/**
 * An ingress listener with protocol "tcp": every connection goes, bytes as
 * they are, to the one service its route names (the Gateway schema allows
 * exactly one route, without host or path), over mTLS under the gateway's
 * identity, so the destination's Intention decides at L4. The service's
 * split and failover apply per connection (ListenerRoutes.defaultCluster).
 */
import net, { type AddressInfo } from "node:net";
import { describeError, weftError } from "@weft/core";
import {
  type DataplaneLogger,
  type ListenerRoutes,
  type MaterialSource,
  proxyOutboundTcp,
  type TcpEvent,
} from "@weft/dataplane";
import type { ListenerConfig } from "./types.js";

export interface TcpListenerOptions {
  listener: ListenerConfig;
  upstream(service: string): ListenerRoutes | undefined;
  source: MaterialSource;
  logger: DataplaneLogger;
  onConnection?(e: TcpEvent): void;
}

function routeService(l: ListenerConfig): string {
  const service = l.routes[0]?.service;
  if (service === undefined)
    throw weftError("WEFT_ERR_USAGE", { detail: `tcp listener ${l.port}: needs one route` });
  return service;
}

export class TcpIngressListener {
  private readonly server: net.Server;
  private port = 0;
  private service: string;

  constructor(private readonly o: TcpListenerOptions) {
    this.service = routeService(o.listener);
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => {
      const service = this.service;
      const cluster = o.upstream(service)?.defaultCluster();
      if (cluster === undefined) {
        socket.resetAndDestroy();
        return;
      }
      proxyOutboundTcp(socket, cluster, o.source, {
        logger: o.logger,
        ...(o.onConnection ? { onConnection: o.onConnection } : {}),
      }).catch((e: unknown) => {
        o.logger.warn({ err: describeError(e), upstream: service }, "tcp ingress connection failed");
        socket.destroy();
      });
    });
    this.server.maxConnections = o.listener.limits.maxConnections;
  }

  /** New connections go to the service of `l`'s route; open ones stay where they are. */
  update(l: ListenerConfig): void {
    this.service = routeService(l);
  }

  get boundPort(): number {
    return this.port;
  }

  listen(portOverride?: number): Promise<number> {
    const l = this.o.listener;
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(portOverride ?? l.port, l.address, () => {
        this.server.off("error", reject);
        this.port = (this.server.address() as AddressInfo).port;
        resolve(this.port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
  }

  destroy(): void {
    this.server.close();
  }
}
