/**
 * Snapshot -> the server-side Listener of a proxyless gRPC server
 * (grpc-js-xds `XdsServer`). Pure, like translate.ts; golden files in
 * translate-server.test.ts.
 *
 * An `XdsServer` bound to IP:PORT asks for the Listener named by its
 * bootstrap's `server_listener_resource_name_template` with `%s` = IP:PORT
 * (`weft bootstrap grpc` writes SERVER_LISTENER_TEMPLATE, @weft/api
 * xds.ts). It accepts the answer only when its `socket_address` is exactly
 * that IP and port, and serves only once it has one; a name it is not
 * sent it treats as not existing and does not serve that port. The control
 * plane answers only for the node's own registered port (ads-stream.ts
 * asks `serverListenerFor`).
 *
 * The Listener: one filter chain with
 *  - with a certificate provider on the node (`weft_cert_provider`), a
 *    DownstreamTlsContext: the node's certificate, the mesh roots from the
 *    same provider, a client certificate required (mTLS as the sidecars'
 *    inbound listeners);
 *  - an HttpConnectionManager with an inline route configuration (one
 *    catch-all `non_forwarding_action` route: a server routes to itself)
 *    and the filters [RBAC from the service's Intention (rbac.ts), router].
 */
import { type ProxySnapshot, SERVER_LISTENER_PREFIX } from "@weft/api";
import { rbacHttpFilter } from "./rbac.js";
import {
  HCM_TYPE,
  LISTENER_TYPE,
  type NamedResource,
  providerTlsContext,
  ROUTER_FILTER_NAME,
  ROUTER_TYPE,
  TYPE_PREFIX,
  type XdsResource,
} from "./resources.js";

export const DOWNSTREAM_TLS_TYPE = `${TYPE_PREFIX}envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext`;

export interface ServerListenerAddress {
  /** An IP literal as the server bound it (no brackets). */
  host: string;
  port: number;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6 = /^[0-9A-Fa-f:.]{2,45}$/;

/** The address in a server Listener name, or undefined when the name is not one (a client Listener). */
export function parseServerListenerName(name: string): ServerListenerAddress | undefined {
  if (!name.startsWith(SERVER_LISTENER_PREFIX)) return undefined;
  const hp = name.slice(SERVER_LISTENER_PREFIX.length);
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(hp);
  if (!m) return undefined;
  const host = (m[1] ?? m[2]) as string;
  const port = Number(m[3]);
  if (!(port >= 1 && port <= 65535)) return undefined;
  if (m[1] !== undefined ? !(IPV6.test(host) && host.includes(":")) : !IPV4.test(host)) return undefined;
  return { host, port };
}

export interface ServerListenerOptions {
  /** The node's certificate provider instance: the Listener then requires mTLS. */
  certificateProvider?: string | undefined;
}

function downstreamTls(provider: string): Record<string, unknown> {
  return {
    name: "envoy.transport_sockets.tls",
    typed_config: {
      "@type": DOWNSTREAM_TLS_TYPE,
      common_tls_context: providerTlsContext(provider),
      require_client_certificate: { value: true },
    },
  };
}

/** The Listener for `name` (a server Listener name naming `addr`). */
export function serverListener(
  name: string,
  addr: ServerListenerAddress,
  snapshot: ProxySnapshot,
  opts: ServerListenerOptions = {},
): XdsResource {
  const service = snapshot.proxy.service;
  const mtls = opts.certificateProvider !== undefined && opts.certificateProvider !== "";
  const hcm = {
    "@type": HCM_TYPE,
    stat_prefix: `inbound_${service}`,
    route_config: {
      name: `inbound_${service}`,
      virtual_hosts: [
        {
          name: `inbound_${service}`,
          domains: ["*"],
          routes: [{ match: { prefix: "" }, non_forwarding_action: {} }],
        },
      ],
    },
    http_filters: [
      rbacHttpFilter(snapshot.inbound.authz, { trustDomain: snapshot.mesh.trustDomain, mtls }),
      { name: ROUTER_FILTER_NAME, typed_config: { "@type": ROUTER_TYPE } },
    ],
  };
  const chain: Record<string, unknown> = {
    name: `inbound_${service}`,
    filters: [{ name: "envoy.filters.network.http_connection_manager", typed_config: hcm }],
  };
  if (mtls) chain.transport_socket = downstreamTls(opts.certificateProvider as string);
  return {
    "@type": LISTENER_TYPE,
    name,
    address: { socket_address: { address: addr.host, port_value: addr.port } },
    filter_chains: [chain],
  };
}

export interface ServerNode {
  /** The node instance's registered port: the only one it is sent a server Listener for. */
  port: number;
  certificateProvider?: string | undefined;
}

/**
 * The server Listeners among `names` that this node may have: names of its
 * own registered port only (another port's name gets nothing, which the
 * server reads as "does not exist": it does not serve there).
 */
export function serverListenersFor(
  names: Iterable<string>,
  snapshot: ProxySnapshot,
  node: ServerNode,
): NamedResource[] {
  const out: NamedResource[] = [];
  for (const name of names) {
    const addr = parseServerListenerName(name);
    if (!addr || addr.port !== node.port) continue;
    out.push({
      name,
      resource: serverListener(name, addr, snapshot, { certificateProvider: node.certificateProvider }),
    });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
