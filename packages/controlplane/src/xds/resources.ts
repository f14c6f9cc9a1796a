/**
 * xDS v3 resource shapes as the ADS server hands them to protobufjs:
 * plain objects with snake_case field names (proto-loader `keepCase`), and
 * every `google.protobuf.Any` written as `{ "@type": TYPE_URL, ...fields }`.
 * protobufjs's Any wrapper packs such an object by looking the type up in
 * the loaded root and encoding it (protos.ts loads every type used here), so
 * the translation stays pure JSON and golden files read like an Envoy
 * config dump.
 */

export const TYPE_PREFIX = "type.googleapis.com/";
export const LISTENER_TYPE = `${TYPE_PREFIX}envoy.config.listener.v3.Listener`;
export const ROUTE_TYPE = `${TYPE_PREFIX}envoy.config.route.v3.RouteConfiguration`;
export const CLUSTER_TYPE = `${TYPE_PREFIX}envoy.config.cluster.v3.Cluster`;
export const ENDPOINT_TYPE = `${TYPE_PREFIX}envoy.config.endpoint.v3.ClusterLoadAssignment`;
export const HCM_TYPE = `${TYPE_PREFIX}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`;
export const ROUTER_TYPE = `${TYPE_PREFIX}envoy.extensions.filters.http.router.v3.Router`;
export const FAULT_TYPE = `${TYPE_PREFIX}envoy.extensions.filters.http.fault.v3.HTTPFault`;
export const UPSTREAM_TLS_TYPE = `${TYPE_PREFIX}envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext`;

/** The four resource types of ADS, in make-before-break order (clusters and endpoints before what names them). */
export const XDS_TYPES = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE] as const;
export type XdsTypeUrl = (typeof XDS_TYPES)[number];

export const SHORT_TYPE: Record<XdsTypeUrl, string> = {
  [LISTENER_TYPE]: "LDS",
  [ROUTE_TYPE]: "RDS",
  [CLUSTER_TYPE]: "CDS",
  [ENDPOINT_TYPE]: "EDS",
};

export const FAULT_FILTER_NAME = "envoy.filters.http.fault";
export const ROUTER_FILTER_NAME = "envoy.filters.http.router";

/** One resource: its proto fields plus the `@type` that packs it into an Any. */
export type XdsResource = { "@type": string; [field: string]: unknown };

/** A resource and the name clients subscribe to it by. */
export interface NamedResource {
  name: string;
  resource: XdsResource;
}

export interface XdsResources {
  listeners: NamedResource[];
  routeConfigurations: NamedResource[];
  clusters: NamedResource[];
  clusterLoadAssignments: NamedResource[];
  /** What the translation left out, and why (tcp listeners, non-IP endpoints): for `weft explain`. */
  notes: string[];
}

/** `google.protobuf.Duration` from milliseconds (int64 seconds as a string, as protobufjs accepts). */
export function duration(ms: number): { seconds: string; nanos: number } {
  const whole = Math.floor(ms / 1000);
  return { seconds: String(whole), nanos: Math.round((ms - whole * 1000) * 1_000_000) };
}

/** `envoy.type.v3.FractionalPercent` from a percent 0..100 (fractions kept: per million). */
export function fractionalPercent(percent: number): { numerator: number; denominator: "MILLION" } {
  return { numerator: Math.round(percent * 10_000), denominator: "MILLION" };
}

export function resourcesOfType(r: XdsResources, type: XdsTypeUrl): NamedResource[] {
  switch (type) {
    case LISTENER_TYPE:
      return r.listeners;
    case ROUTE_TYPE:
      return r.routeConfigurations;
    case CLUSTER_TYPE:
      return r.clusters;
    case ENDPOINT_TYPE:
      return r.clusterLoadAssignments;
  }
}

/**
 * A TLS context whose certificate and trust roots come from the node's
 * certificate provider instance (the bootstrap's file_watcher): both sides
 * of the mesh's mTLS use it. `sans`: the identities a client accepts.
 */
export function providerTlsContext(provider: string, sans?: readonly string[]): Record<string, unknown> {
  return {
    tls_certificate_provider_instance: { instance_name: provider, certificate_name: "default" },
    validation_context: {
      ca_certificate_provider_instance: { instance_name: provider, certificate_name: "ROOTCA" },
      ...(sans ? { match_subject_alt_names: sans.map((exact) => ({ exact })) } : {}),
    },
  };
}
