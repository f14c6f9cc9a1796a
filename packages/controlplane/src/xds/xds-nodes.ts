/**
 * The operator's view of the xDS listener (`GET /v1/xds/nodes`, explain,
 * the UI): one entry per node, joining the open ADS streams (counters, last
 * ACKed version per type) with the NACK log, which outlives the streams, so
 * a node that refused an update and went away is still shown.
 *
 * Pure over its inputs (the XdsServer's `streams()` and `nacks`, the
 * catalog): tested through the real API in explain-xds.test.ts.
 */
import type { XdsNack, XdsNode, XdsNodesResponse, XdsTypeName } from "@weft/api";
import type { XdsServer } from "./ads-server.js";
import type { NackRecord } from "./nack-log.js";
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from "./resources.js";

export interface XdsNodesSources {
  /** Absent when the control plane serves no xDS. */
  xds?: Pick<XdsServer, "streams" | "nacks"> | undefined;
  catalog: { getInstance(id: string): { service: string } | undefined };
}

export interface XdsNodesQuery {
  /** Only the nodes of this service. */
  service?: string | undefined;
  /**
   * Whether the caller may see a node of `service` (null: a node whose
   * instance is gone, so its service is unknown). Nodes it may not see are
   * left out, not refused: a listing shows what the caller may read.
   */
  canRead(service: string | null): boolean;
}

/** The names operators know from Envoy's config dump (not the LDS/CDS protocol names). */
const TYPE_NAME: Readonly<Record<string, XdsTypeName>> = {
  [LISTENER_TYPE]: "Listener",
  [ROUTE_TYPE]: "Route",
  [CLUSTER_TYPE]: "Cluster",
  [ENDPOINT_TYPE]: "Endpoint",
};

function shortType(typeUrl: string): string {
  return TYPE_NAME[typeUrl] ?? typeUrl;
}

function nackOf(r: NackRecord): XdsNack {
  return {
    typeUrl: r.typeUrl,
    type: shortType(r.typeUrl),
    version: r.version,
    acceptedVersion: r.acceptedVersion,
    message: r.message,
    at: new Date(r.at).toISOString(),
    count: r.count,
  };
}

/** Every node the xDS listener knows, as the caller may see them. */
export function xdsNodes(src: XdsNodesSources, q: XdsNodesQuery): XdsNodesResponse {
  const x = src.xds;
  if (!x) return { enabled: false, nodes: [] };
  const byId = new Map<string, XdsNode>();
  // streams() lists the oldest stream first: a node's newest stream (a reconnect) wins.
  for (const s of x.streams()) {
    const acked: Partial<Record<XdsTypeName, string>> = {};
    for (const [typeUrl, version] of Object.entries(s.acked ?? {})) {
      acked[shortType(typeUrl) as XdsTypeName] = version;
    }
    byId.set(s.nodeId, {
      nodeId: s.nodeId,
      service: s.service,
      connected: true,
      stream: { responses: s.responses, acks: s.acks, nacks: s.nacks, stale: s.stale },
      acked,
      nacks: [],
    });
  }
  for (const r of x.nacks.list()) {
    let n = byId.get(r.nodeId);
    if (!n) {
      n = {
        nodeId: r.nodeId,
        service: src.catalog.getInstance(r.nodeId)?.service ?? null,
        connected: false,
        stream: null,
        acked: {},
        nacks: [],
      };
      byId.set(r.nodeId, n);
    }
    n.nacks.push(nackOf(r));
  }
  const nodes = [...byId.values()]
    .filter((n) => (q.service === undefined || n.service === q.service) && q.canRead(n.service))
    .sort((a, b) => (a.service ?? "").localeCompare(b.service ?? "") || a.nodeId.localeCompare(b.nodeId));
  for (const n of nodes) n.nacks.sort((a, b) => a.at.localeCompare(b.at));
  return { enabled: true, nodes };
}
