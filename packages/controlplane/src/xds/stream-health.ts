/**
 * A proxyless workload's health from its xDS stream: `weft bootstrap grpc`
 * registers a TTL check `xds` (critical until proven), and while a stream
 * of that node is open here the control plane reports it passing every
 * ttl/3, through `catalog.heartbeat` as `PUT /v1/catalog/instances/:id/
 * checks/xds` does; when the node's last stream ends it reports critical
 * at once ("xDS stream closed") and traffic leaves the instance at the next
 * snapshot. A control plane that dies reports nothing: the TTL lapses
 * instead, until the workload's stream reaches another replica.
 *
 * The signal is "the gRPC process is alive and talking to the mesh", the
 * same thing a sidecar's stream proves: a proxyless server that serves
 * without being an xDS client registers with `--no-xds-health`.
 *
 * A server (XdsServer) serves only once it accepted its Listener: a stream
 * whose server Listener the node refused (NACK, e.g. no RBAC support, see
 * rbac.ts) sets the check critical with the client's reason while the
 * stream stays open (`StreamLease.set`), and passing again once a Listener
 * is accepted. "Connected" alone would keep a server that does not serve
 * in the load balancing.
 *
 * Reports for one node are sent one after another (a late "passing" never
 * overtakes the "critical" of the stream's end). A node with several open
 * streams (a reconnect overlapping the old stream) counts as connected
 * until the last one ends.
 */

import { XDS_CHECK_ID } from "@weft/api/client";
import {
  type Clock,
  type Disposable,
  describeError,
  systemClock,
  type TimerHandle,
  tracer,
} from "@weft/core";
import type { Logger } from "pino";

const trace = tracer("xds");

export { XDS_CHECK_ID };
export const XDS_CHECK_OUTPUT_OPEN = "xDS stream open";
export const XDS_CHECK_OUTPUT_CLOSED = "xDS stream closed";
/** Never report more often than this, whatever the TTL. */
const MIN_REPORT_INTERVAL_MS = 250;

export interface HealthCatalog {
  getInstance(id: string): { checks?: readonly { id: string; ttlMs: number }[] } | undefined;
  heartbeat(
    id: string,
    checkId: string,
    update: { status: "passing" | "critical"; output: string },
  ): Promise<unknown>;
}

export interface StreamHealthOptions {
  catalog: HealthCatalog;
  clock?: Clock;
  logger?: Logger;
}

type Status = "passing" | "critical";

/** One open stream's hold on its node's check. */
export interface StreamLease extends Disposable {
  /** What the stream learnt (its server Listener refused or accepted): reported at once and on every tick. */
  set(status: Status, output: string): void;
}

interface NodeState {
  streams: number;
  status: Status;
  output: string;
  timer?: TimerHandle;
  /** The reports of this node, in order. */
  chain: Promise<void>;
}

/** The check's status and output for a server Listener the node accepted or refused. */
export function serverListenerVerdict(accepted: boolean, message: string): [Status, string] {
  return accepted
    ? ["passing", XDS_CHECK_OUTPUT_OPEN]
    : ["critical", `xDS stream open, but the server Listener was refused: ${message}`];
}

export class StreamHealth {
  private readonly nodes = new Map<string, NodeState>();
  private readonly clock: Clock;

  constructor(private readonly o: StreamHealthOptions) {
    this.clock = o.clock ?? systemClock;
  }

  /** A stream of `nodeId` is open; dispose when it ends. No-op for an instance without the `xds` check. */
  open(nodeId: string): StreamLease {
    const ttl = this.ttlOf(nodeId);
    if (ttl === undefined) return { dispose: () => {}, set: () => {} };
    let st = this.nodes.get(nodeId);
    if (!st) {
      st = { streams: 0, status: "passing", output: XDS_CHECK_OUTPUT_OPEN, chain: Promise.resolve() };
      this.nodes.set(nodeId, st);
    }
    st.streams += 1;
    if (st.streams === 1) {
      const node = st;
      node.status = "passing";
      node.output = XDS_CHECK_OUTPUT_OPEN;
      this.report(nodeId, node, node.status, node.output);
      node.timer = this.clock.setInterval(
        () => {
          if (this.ttlOf(nodeId) !== undefined) this.report(nodeId, node, node.status, node.output);
        },
        Math.max(MIN_REPORT_INTERVAL_MS, Math.floor(ttl / 3)),
      );
    }
    let done = false;
    return {
      set: (status, output) => {
        const node = this.nodes.get(nodeId);
        if (done || !node || node.streams <= 0) return;
        if (node.status === status && node.output === output) return;
        node.status = status;
        node.output = output;
        this.report(nodeId, node, status, output);
      },
      dispose: () => {
        if (done) return;
        done = true;
        const node = this.nodes.get(nodeId);
        if (!node) return;
        node.streams -= 1;
        if (node.streams !== 0) return; // still open elsewhere, or stopped
        node.timer?.cancel();
        this.report(nodeId, node, "critical", XDS_CHECK_OUTPUT_CLOSED);
        // Kept until sent, so a stream opening meanwhile queues its "passing" after this "critical".
        void node.chain.then(() => {
          if (this.nodes.get(nodeId) === node && node.streams === 0) this.nodes.delete(nodeId);
        });
      },
    };
  }

  /**
   * The control plane is shutting down: stop reporting, and report nothing
   * for the streams it cuts (the workloads are alive; their TTL decides if
   * no other replica hears from them).
   */
  stop(): void {
    for (const n of this.nodes.values()) {
      n.timer?.cancel();
      n.streams = -Infinity;
    }
  }

  /** Resolves once every report queued so far has been sent (tests, shutdown). */
  async settled(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((n) => n.chain));
  }

  /** Nodes with an open stream and the `xds` check. */
  connected(): string[] {
    return [...this.nodes].filter(([, n]) => n.streams > 0).map(([id]) => id);
  }

  private ttlOf(nodeId: string): number | undefined {
    return this.o.catalog.getInstance(nodeId)?.checks?.find((c) => c.id === XDS_CHECK_ID)?.ttlMs;
  }

  private report(nodeId: string, st: NodeState, status: Status, output: string): void {
    st.chain = st.chain.then(async () => {
      try {
        await this.o.catalog.heartbeat(nodeId, XDS_CHECK_ID, { status, output });
        trace("xds check reported", { node: nodeId, status });
      } catch (err) {
        // Deregistered meanwhile, or the check removed: nothing to report on.
        this.o.logger?.debug({ node: nodeId, error: describeError(err) }, "xDS health report failed");
      }
    });
  }
}
