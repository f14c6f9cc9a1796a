/**
 * The terminating (egress) gateway: mesh services reach named external
 * services (`services: [{name, host, port, tls?}]`) through it, under
 * intentions.
 *
 * For each external service the gateway runs what a sidecar is for an
 * instance of that service (Consul's terminating gateway presents the
 * linked service's certificate the same way): a certificate for
 * spiffe://…/svc/<name>, an instance of <name> in the catalog (tag
 * "gateway", meta gateway=<gateway name>) whose address is an mTLS
 * listener of the gateway, and the snapshot of <name>, whose inbound
 * authorization is the Intention for <name>. So a caller's sidecar reaches
 * "payments" exactly as any mesh service, and "which services may call the
 * payments provider" is the Intention `payments`. Behind the authorization
 * the "app" is the external host:port — directly, or through a loopback
 * forwarder that originates TLS (SNI, CA, verified) when `tls` is set.
 */
import { readFileSync } from "node:fs";
import net, { type AddressInfo } from "node:net";
import tls from "node:tls";
import type { WeftClient } from "@weft/api/client";
import { type Clock, describeError } from "@weft/core";
import { type DataplaneLogger, type HostPort, Sidecar } from "@weft/dataplane";
import type { ExternalServiceConfig, GatewayConfig } from "./types.js";

export interface TerminatingGatewayOptions {
  client: WeftClient;
  config: GatewayConfig;
  logger: DataplaneLogger;
  /** Where the per-service mTLS listeners bind (port 0: any free port). Default 127.0.0.1. */
  bind?: string;
  advertise?: string;
  admin?: HostPort;
  clock?: Clock;
  certTtl?: string;
  drainTimeoutMs?: number;
  healthIntervalMs?: number;
}

/** A loopback port that opens a verified TLS connection to the external service for each connection. */
export class TlsOriginator {
  private readonly server: net.Server;
  private readonly ca: Buffer | undefined;

  constructor(
    private readonly target: ExternalServiceConfig,
    private readonly log: DataplaneLogger,
  ) {
    this.ca = target.tls?.caFile !== undefined ? readFileSync(target.tls.caFile) : undefined;
    this.server = net.createServer({ allowHalfOpen: false, noDelay: true }, (down) => this.connect(down));
  }

  private connect(down: net.Socket): void {
    down.on("error", () => {});
    down.pause();
    const t = this.target;
    const up = tls.connect({
      host: t.host,
      port: t.port,
      servername: t.tls?.sni ?? t.host,
      ...(this.ca ? { ca: this.ca } : {}),
      rejectUnauthorized: true,
      ALPNProtocols: ["http/1.1"],
    });
    const timer = setTimeout(() => up.destroy(new Error("connect timeout")), t.connectTimeout);
    up.once("secureConnect", () => {
      clearTimeout(timer);
      down.pipe(up);
      up.pipe(down);
      down.resume();
    });
    up.on("error", (e) => {
      clearTimeout(timer);
      this.log.warn(
        { external: t.name, err: describeError(e) },
        "TLS origination to the external service failed",
      );
      down.destroy();
    });
    down.on("close", () => up.destroy());
    up.on("close", () => down.destroy());
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", () => resolve((this.server.address() as AddressInfo).port));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export class TerminatingGateway {
  private readonly sidecars: Sidecar[] = [];
  private readonly originators: TlsOriginator[] = [];

  constructor(private readonly o: TerminatingGatewayOptions) {}

  /** Per external service: its instance id and the mTLS port mesh callers reach. */
  get endpoints(): { service: string; instanceId: string; port: number; admin: number }[] {
    return this.sidecars.map((s, i) => ({
      service: this.o.config.services?.[i]?.name ?? "",
      instanceId: s.instanceId,
      port: s.ports.inbound,
      admin: s.ports.admin,
    }));
  }

  async start(): Promise<void> {
    const g = this.o.config;
    for (const [i, ext] of (g.services ?? []).entries()) {
      let app: HostPort = { host: ext.host, port: ext.port };
      if (ext.tls !== undefined) {
        const originator = new TlsOriginator(ext, this.o.logger);
        this.originators.push(originator);
        app = { host: "127.0.0.1", port: await originator.listen() };
      }
      const interval = this.o.healthIntervalMs ?? 5_000;
      this.sidecars.push(
        new Sidecar({
          client: this.o.client,
          service: ext.name,
          app,
          inbound: { host: this.o.bind ?? "127.0.0.1", port: 0 },
          ...(this.o.advertise ? { advertise: this.o.advertise } : {}),
          // One admin listener: the first service's (the others' metrics are there per destination too).
          ...(i === 0 && this.o.admin ? { admin: this.o.admin } : {}),
          upstreams: [],
          // ServiceDefaults.protocol for the external service decides L4 or L7 in the snapshot.
          protocol: "tcp",
          health: { kind: "tcp" },
          healthIntervalMs: interval,
          healthTimeoutMs: Math.min(ext.connectTimeout, interval),
          tags: ["gateway"],
          meta: { gateway: g.name, "gateway-kind": "terminating", external: `${ext.host}:${ext.port}` },
          instanceId: `${ext.name}-via-${g.name}`.slice(0, 60),
          ...(this.o.certTtl ? { certTtl: this.o.certTtl } : {}),
          logger: this.o.logger,
          ...(this.o.clock ? { clock: this.o.clock } : {}),
          ...(this.o.drainTimeoutMs !== undefined ? { drainTimeoutMs: this.o.drainTimeoutMs } : {}),
        }),
      );
    }
    await Promise.all(this.sidecars.map((s) => s.start()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.sidecars.map((s) => s.stop()));
    await Promise.all(this.originators.map((o) => o.close()));
  }
}
