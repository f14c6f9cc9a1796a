/**
 * Per-request observation beyond metrics: tracing (tracing/tracer.ts) and
 * access logs (access-log.ts), fed by the engines' `onRequestStart` hooks.
 *
 * Data flow: request head parsed -> start() (span started, trace headers
 * rewritten for the next hop) -> request over -> observer.end(event) (span
 * ended, one access-log line with the trace id) -> the engine's onRequest
 * (metrics, stats, tap) as before.
 *
 * With tracing unconfigured and access logs off (or no destination), start()
 * returns undefined at once: no per-request work, no header change.
 */

import type { ProxySnapshot } from "@weft/api/snapshot";
import type { RequestHead } from "../http/headers.js";
import type { InboundPeer, InboundRequestObserver } from "../http/inbound-http.js";
import type { OutboundRequestObserver } from "../http/outbound-http.js";
import type { InboundRequestEvent, OutboundRequestEvent } from "../http/types.js";
import type { DataplaneLogger } from "../logger.js";
import type { TcpEvent } from "../tcp/tcp-proxy.js";
import { Tracing } from "../tracing/tracer.js";
import { AccessLog, type Identity } from "./access-log.js";

export interface RequestObserversOptions {
  service: string;
  instanceId: string;
  logger: DataplaneLogger;
  /** The access log's destination; undefined = no access logs on this proxy. */
  accessLog?: DataplaneLogger;
  /** Batch export delay of spans (default 1 s). */
  traceExportDelayMs?: number;
}

export class RequestObservers {
  readonly tracing: Tracing;
  readonly accessLog: AccessLog;
  private snapshot: ProxySnapshot | undefined;

  constructor(private readonly o: RequestObserversOptions) {
    this.tracing = new Tracing({
      service: o.service,
      instanceId: o.instanceId,
      logger: o.logger,
      ...(o.traceExportDelayMs !== undefined ? { scheduledDelayMs: o.traceExportDelayMs } : {}),
    });
    this.accessLog = new AccessLog(o.accessLog);
  }

  /** A new snapshot: tracing endpoint and sampling, access-log switch and sampling. Never throws. */
  apply(s: ProxySnapshot): void {
    this.snapshot = s;
    this.tracing.configure(s.tracing);
    this.accessLog.configure(s.accessLog);
  }

  private get self(): Identity {
    const id = this.snapshot?.proxy.spiffeId;
    return id !== undefined ? { service: this.o.service, spiffeId: id } : { service: this.o.service };
  }

  private upstreamIdentity(service: string, cluster: string | undefined): Identity {
    const id = cluster !== undefined ? this.snapshot?.clusters[cluster]?.spiffeId : undefined;
    return id !== undefined ? { service, spiffeId: id } : { service };
  }

  /** The app's request on the listener of `listener` (an upstream service). */
  outbound(listener: string, head: RequestHead, upgrade: boolean): OutboundRequestObserver | undefined {
    const logging = this.accessLog.active;
    if (!logging && !this.tracing.enabled) return undefined;
    // An upgrade is forwarded with its own header fields: a span could not be passed on, so none is made.
    const span = upgrade
      ? undefined
      : this.tracing.start("client", head.headers, { method: head.method, path: head.path });
    return {
      end: (e: OutboundRequestEvent) => {
        const upstream = e.upstream || listener;
        span?.end({
          status: e.status,
          flags: e.flags,
          peerService: upstream,
          ...(e.route !== undefined ? { route: e.route } : {}),
          ...(e.cluster !== undefined ? { cluster: e.cluster } : {}),
          ...(e.endpointId !== undefined ? { endpointId: e.endpointId } : {}),
        });
        if (!logging) return;
        this.accessLog.request({
          direction: "outbound",
          source: this.self,
          destination: this.upstreamIdentity(upstream, e.cluster),
          method: head.method,
          authority: head.authority,
          path: head.path,
          ...(e.route !== undefined ? { route: e.route } : {}),
          status: e.status,
          flags: e.flags,
          durationMs: e.durationMs,
          ...(e.endpointId !== undefined ? { upstream: e.endpointId } : {}),
          ...(e.cluster !== undefined ? { cluster: e.cluster } : {}),
          ...(e.retries !== undefined ? { retries: e.retries } : {}),
          ...(span !== undefined ? { traceId: span.traceId } : {}),
        });
      },
    };
  }

  /** An outbound request refused before its head parsed (no observer was made for it). */
  outboundUnparsed(listener: string, e: OutboundRequestEvent): void {
    if (!this.accessLog.active) return;
    this.accessLog.request({
      direction: "outbound",
      source: this.self,
      destination: { service: listener },
      status: e.status,
      flags: e.flags,
      durationMs: e.durationMs,
    });
  }

  /** A peer's request on the inbound listener. */
  inbound(head: RequestHead, peer: InboundPeer, upgrade: boolean): InboundRequestObserver | undefined {
    const logging = this.accessLog.active;
    if (!logging && !this.tracing.enabled) return undefined;
    const span = upgrade
      ? undefined
      : this.tracing.start("server", head.headers, { method: head.method, path: head.path });
    return {
      end: (e: InboundRequestEvent) => {
        span?.end({ status: e.status, flags: e.flags, peerService: peer.service });
        if (!logging) return;
        // head.path is the canonical target once authorized (what the app got), else the one received.
        this.accessLog.request({
          direction: "inbound",
          source: { service: peer.service, spiffeId: peer.spiffeId },
          destination: this.self,
          method: head.method,
          authority: head.authority,
          path: head.path,
          status: e.status,
          flags: e.flags,
          durationMs: e.durationMs,
          ...(span !== undefined ? { traceId: span.traceId } : {}),
        });
      },
    };
  }

  /** A TCP connection is over (either direction); `source`/`destination` are services. */
  tcp(
    e: Pick<TcpEvent, "direction" | "bytesSent" | "bytesReceived" | "endpointId"> & { result: string },
    source: string,
    destination: string,
  ): void {
    if (!this.accessLog.active) return;
    const outbound = e.direction === "outbound";
    this.accessLog.connection({
      direction: e.direction,
      source: outbound ? this.self : { service: source },
      destination: outbound ? { service: destination } : this.self,
      result: e.result,
      // Downstream's view (Envoy's BYTES_RECEIVED / BYTES_SENT): in = from the source, out = back to it.
      bytesIn: outbound ? e.bytesSent : e.bytesReceived,
      bytesOut: outbound ? e.bytesReceived : e.bytesSent,
      ...(e.endpointId !== undefined ? { upstream: e.endpointId } : {}),
    });
  }

  /** Exports the spans still queued. */
  async shutdown(): Promise<void> {
    await this.tracing.shutdown();
  }
}
