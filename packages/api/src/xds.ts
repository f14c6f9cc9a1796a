/**
 * `GET /v1/xds/nodes[?service=NAME]` (docs/api.md, `weft xds`, the UI's
 * service page): the proxyless gRPC clients (and Envoys) on the control
 * plane's xDS (ADS) listener, and what they refused.
 *
 * Data flow: the ADS server keeps one stream per connected node (its
 * counters and, per resource type, the version the node last ACKed) and a
 * bounded log of NACKs per node, kept after the node disconnects; the
 * route joins both, one entry per node, filtered by what the caller may
 * read. Empty (never 404) when the control plane runs without
 * `--xds-listen`.
 *
 * Zod-free (types, constants and two pure helpers, reaching the CLI through
 * `@weft/api/client`); the UI imports the types only.
 */

/** Short names of the xDS resource types ("Listener", "Route", "Cluster", "Endpoint"). */
export type XdsTypeName = "Listener" | "Route" | "Cluster" | "Endpoint";

/** A proxyless instance is a catalog instance with this tag (`weft bootstrap grpc` registers it). */
export const PROXYLESS_TAG = "proxyless";

/**
 * The Listener a grpc-js-xds `XdsServer` asks for: `weft bootstrap grpc`
 * writes the template as `server_listener_resource_name_template`, the
 * server puts the IP:port it binds for `%s`, and the control plane parses
 * the name back by the prefix (controlplane xds/translate-server.ts).
 */
export const SERVER_LISTENER_PREFIX = "grpc/server?xds.resource.listening_address=";
export const SERVER_LISTENER_TEMPLATE = `${SERVER_LISTENER_PREFIX}%s`;

/** The node metadata key an xDS client carries its token in (grpc-js-xds has no call credentials). */
export const NODE_TOKEN_KEY = "weft_token";
/** The node metadata key naming the node's certificate provider instance: its clusters then use mTLS. */
export const NODE_CERT_PROVIDER_KEY = "weft_cert_provider";
/** The TTL check `weft bootstrap grpc` registers and the control plane reports from the xDS stream. */
export const XDS_CHECK_ID = "xds";

/** Whether a catalog instance is a proxyless gRPC client (no sidecar: it speaks xDS itself). */
export function isProxyless(i: {
  tags?: readonly string[];
  meta?: Readonly<Record<string, string>>;
}): boolean {
  return (i.tags ?? []).includes(PROXYLESS_TAG) || i.meta?.proxyless === "true";
}

/** One update a node refused (a NACK), with its own error message. */
export interface XdsNack {
  /** The full type URL (`type.googleapis.com/envoy.config.cluster.v3.Cluster`). */
  typeUrl: string;
  /** Its short name ("Cluster"); the type URL when it is not one of the four. */
  type: string;
  /** The version the node refused (a digest of what was sent). */
  version: string;
  /** The version the node keeps using (its last ACKed one); "" when it has none. */
  acceptedVersion: string;
  /** The client's `error_detail.message`, as sent (at most 4 KiB). */
  message: string;
  /** ISO time of the latest refusal of this version. */
  at: string;
  /** How many times this version was refused. */
  count: number;
}

/** One xDS node: connected, or known only by the NACKs it left. */
export interface XdsNode {
  /** The node id: the catalog id of the proxyless instance. */
  nodeId: string;
  /** The instance's service; null when the instance is no longer in the catalog (and not connected). */
  service: string | null;
  /** Whether an ADS stream of this node is open on this control plane now. */
  connected: boolean;
  /** Counters of the open stream; null when not connected. */
  stream: {
    responses: number;
    acks: number;
    nacks: number;
    /** Answers to a response a newer one had replaced (ignored). */
    stale: number;
  } | null;
  /** The version the node last ACKed, per type it ACKed on the open stream (empty when not connected). */
  acked: Partial<Record<XdsTypeName, string>>;
  /** Refusals recorded for this node, oldest first (the latest 20 per node are kept). */
  nacks: XdsNack[];
}

export interface XdsNodesResponse {
  /** False when the control plane serves no xDS (`--xds-listen` not given): `nodes` is then empty. */
  enabled: boolean;
  /** Sorted by service, then node id. */
  nodes: XdsNode[];
}

/** "node web-proxyless-x refused Cluster version 7: <message>; it keeps version 6" (explain, CLI, UI). */
export function describeNack(nodeId: string, n: XdsNack): string {
  const keeps =
    n.acceptedVersion === ""
      ? "it has no accepted version of that type yet"
      : `it keeps version ${n.acceptedVersion}`;
  const times = n.count > 1 ? ` (${n.count} times)` : "";
  return `node ${nodeId} refused ${n.type} version ${n.version}${times}: ${n.message || "(no message)"}; ${keeps}`;
}
