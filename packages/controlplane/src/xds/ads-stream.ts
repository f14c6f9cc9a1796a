/**
 * One ADS stream, state of the world: the protocol state machine between a
 * client's DiscoveryRequests and the resources translated from its
 * snapshot. No sockets here (ads-server.ts wires it to grpc-js), so the
 * rules are tested directly (ads-stream.test.ts).
 *
 * Rules (xDS protocol, "ACK and NACK semantics"):
 *  - Per type URL: a version (digest of exactly what was sent) and a fresh
 *    nonce on every response. A request whose `response_nonce` is not the
 *    last one sent for its type is stale and ignored.
 *  - ACK or NACK is told by `error_detail`, never by version: a NACK keeps
 *    the client on its previous version; it is logged with the client's
 *    message, counted, and kept per node (`NackLog`), and the refused
 *    version is not sent again; the next change sends a new one.
 *  - Every response carries every subscribed resource of its type (all of
 *    them for a wildcard Listener/Cluster subscription).
 *  - The first request of each type on a stream is always answered, so a
 *    reconnecting client gets the current state whatever it had.
 *  - Make-before-break: types are sent Cluster, Endpoint, Listener, Route;
 *    clusters the new routes no longer name stay in Cluster responses until
 *    the client has answered the Route update that stopped naming them.
 *  - Bounded: at most one pending response per type, computed from the
 *    latest snapshot when the transport can take it (latest wins).
 */
import { createHash } from "node:crypto";
import type { ProxySnapshot } from "@weft/api";
import { tracer } from "@weft/core";
import type { NackLog } from "./nack-log.js";
import {
  CLUSTER_TYPE,
  LISTENER_TYPE,
  type NamedResource,
  ROUTE_TYPE,
  resourcesOfType,
  SHORT_TYPE,
  XDS_TYPES,
  type XdsResource,
  type XdsResources,
  type XdsTypeUrl,
} from "./resources.js";
import { type TranslateOptions, translateSnapshot } from "./translate.js";
import { parseServerListenerName, serverListenersFor } from "./translate-server.js";

const trace = tracer("xds");

/** A DiscoveryRequest as proto-loader decodes it (keepCase, no defaults). */
export interface DiscoveryRequest {
  version_info?: string;
  node?: { id?: string; metadata?: unknown };
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string } | null;
}

export interface DiscoveryResponse {
  version_info: string;
  resources: XdsResource[];
  type_url: string;
  nonce: string;
}

export interface AdsStreamOptions {
  nodeId: string;
  /** Writes a response; false when the transport is backed up (`drained()` is then called once it is not). */
  send(r: DiscoveryResponse): boolean;
  nacks: NackLog;
  now?: () => number;
  /** Per-node translation choices (its certificate provider, for mTLS). */
  translate?: TranslateOptions;
  /** The node's registered port: server Listeners (XdsServer) are answered for it only (translate-server.ts). */
  serverPort?: number;
  /** The node answered a Listener response that carried its server Listener: accepted, or refused with its message. */
  onServerListener?(accepted: boolean, message: string): void;
}

export interface AdsStreamStats {
  responses: number;
  acks: number;
  nacks: number;
  stale: number;
}

interface TypeState {
  subscribed: boolean;
  /** Requested names; "*" for a wildcard Listener/Cluster subscription. */
  names: ReadonlySet<string> | "*";
  nonce?: string;
  sentVersion?: string;
  sentNamesKey?: string;
  /** Answer the next flush even when the version did not change (first request, new names). */
  force: boolean;
  /** The version the client refused last (not re-sent). */
  nackedVersion?: string;
}

const WILDCARD_TYPES: ReadonlySet<string> = new Set([LISTENER_TYPE, CLUSTER_TYPE]);

export class AdsStream {
  private readonly types = new Map<XdsTypeUrl, TypeState>();
  private resources: XdsResources | undefined;
  /** The latest snapshot: server Listeners are translated per requested name (translate-server.ts). */
  private snapshot: ProxySnapshot | undefined;
  /** The nonce of the last Listener response that carried a server Listener. */
  private serverListenerNonce: string | undefined;
  /** Clusters dropped by the latest snapshot, kept until the client answers the Route update (make-before-break). */
  private retained = new Map<string, NamedResource>();
  private pruneAfterRouteNonce: string | undefined;
  private blocked = false;
  private nonceCounter = 0;
  private readonly now: () => number;
  readonly stats: AdsStreamStats = { responses: 0, acks: 0, nacks: 0, stale: 0 };
  /** The version the client last ACKed, per type URL (for `GET /v1/xds/nodes`). */
  private readonly ackedVersions = new Map<XdsTypeUrl, string>();

  constructor(private readonly o: AdsStreamOptions) {
    this.now = o.now ?? Date.now;
    for (const t of XDS_TYPES) this.types.set(t, { subscribed: false, names: new Set(), force: false });
  }

  /** The latest translated resources (for explain and tests). */
  current(): XdsResources | undefined {
    return this.resources;
  }

  /** The version the client last ACKed on this stream, per type URL it ACKed. A copy. */
  acked(): Record<string, string> {
    return Object.fromEntries(this.ackedVersions);
  }

  /** A new snapshot for this node: translate, then send every subscribed type whose content changed. */
  onSnapshot(snapshot: ProxySnapshot): void {
    const next = translateSnapshot(snapshot, this.o.translate);
    const prev = this.resources;
    this.resources = next;
    this.snapshot = snapshot;
    const routes = this.types.get(ROUTE_TYPE) as TypeState;
    // Only when the routes change too: otherwise nothing sent still names a dropped cluster.
    if (prev && routes.subscribed && versionOf(this.select(ROUTE_TYPE, routes)) !== routes.sentVersion) {
      const keep = new Set(next.clusters.map((c) => c.name));
      for (const c of prev.clusters) if (!keep.has(c.name)) this.retained.set(c.name, c);
    }
    this.flush();
  }

  onRequest(req: DiscoveryRequest): void {
    const type = req.type_url as XdsTypeUrl;
    const st = this.types.get(type);
    if (!st) {
      trace("request for an unknown type ignored", { node: this.o.nodeId, type: req.type_url });
      return;
    }
    const nonce = req.response_nonce ?? "";
    if (nonce !== "") {
      if (nonce !== st.nonce) {
        // An answer to a response that a newer one replaced: the client will answer that one too.
        this.stats.stale += 1;
        trace("stale nonce ignored", {
          node: this.o.nodeId,
          type: SHORT_TYPE[type],
          nonce,
          current: st.nonce,
        });
        return;
      }
      if (type === LISTENER_TYPE && nonce === this.serverListenerNonce) {
        this.o.onServerListener?.(!req.error_detail, String(req.error_detail?.message ?? "").slice(0, 1024));
      }
      if (req.error_detail) this.nack(type, st, req);
      else {
        this.stats.acks += 1;
        this.ackedVersions.set(type, req.version_info ?? "");
        trace("ack", { node: this.o.nodeId, type: SHORT_TYPE[type], version: req.version_info });
      }
      if (type === ROUTE_TYPE && nonce === this.pruneAfterRouteNonce && !req.error_detail) {
        // The client has the routes that stopped naming the retained clusters: drop them now.
        // (After a NACK it still routes by the old ones: they stay until a Route update is ACKed.)
        this.pruneAfterRouteNonce = undefined;
        if (this.retained.size > 0) {
          this.retained.clear();
          (this.types.get(CLUSTER_TYPE) as TypeState).force = true;
        }
      }
    } else {
      st.force = true; // first request of this type on the stream: always answered
    }
    const names = req.resource_names ?? [];
    st.subscribed = names.length > 0 || WILDCARD_TYPES.has(type);
    const nextNames: ReadonlySet<string> | "*" =
      names.length === 0 && WILDCARD_TYPES.has(type) ? "*" : new Set(names);
    if (namesKey(nextNames) !== namesKey(st.names)) st.force = true;
    st.names = nextNames;
    this.flush();
  }

  private nack(type: XdsTypeUrl, st: TypeState, req: DiscoveryRequest): void {
    this.stats.nacks += 1;
    st.nackedVersion = st.sentVersion;
    const message = String(req.error_detail?.message ?? "").slice(0, 4096);
    this.o.nacks.record({
      nodeId: this.o.nodeId,
      typeUrl: type,
      version: st.sentVersion ?? "",
      nonce: st.nonce ?? "",
      acceptedVersion: req.version_info ?? "",
      message,
      at: this.now(),
    });
  }

  /** The transport can take more: send what is pending. */
  drained(): void {
    this.blocked = false;
    this.flush();
  }

  private select(type: XdsTypeUrl, st: TypeState): NamedResource[] {
    const r = this.resources as XdsResources;
    let all = resourcesOfType(r, type);
    if (type === CLUSTER_TYPE && this.retained.size > 0) {
      const have = new Set(all.map((c) => c.name));
      all = [...all, ...[...this.retained.values()].filter((c) => !have.has(c.name))];
    }
    if (st.names === "*") return all;
    const names = st.names;
    const picked = all.filter((x) => names.has(x.name));
    if (type === LISTENER_TYPE && this.o.serverPort !== undefined && this.snapshot) {
      const port = this.o.serverPort;
      const cert = this.o.translate?.certificateProvider;
      picked.push(...serverListenersFor(names, this.snapshot, { port, certificateProvider: cert }));
    }
    return picked;
  }

  private flush(): void {
    if (!this.resources) return;
    for (const type of XDS_TYPES) {
      if (this.blocked) return;
      const st = this.types.get(type) as TypeState;
      if (!st.subscribed) {
        st.force = false;
        continue;
      }
      const selected = this.select(type, st);
      const version = versionOf(selected);
      const key = namesKey(st.names);
      const changed = version !== st.sentVersion || key !== st.sentNamesKey;
      // A refused version is not offered again until the content changes.
      if (!st.force && (!changed || version === st.nackedVersion)) continue;
      st.force = false;
      this.nonceCounter += 1;
      const nonce = String(this.nonceCounter);
      st.nonce = nonce;
      if (type === LISTENER_TYPE) {
        this.serverListenerNonce = selected.some((x) => parseServerListenerName(x.name)) ? nonce : undefined;
      }
      st.sentVersion = version;
      st.sentNamesKey = key;
      if (type === ROUTE_TYPE && this.retained.size > 0) this.pruneAfterRouteNonce = nonce;
      this.stats.responses += 1;
      trace("send", { node: this.o.nodeId, type: SHORT_TYPE[type], version, nonce, n: selected.length });
      const ok = this.o.send({
        version_info: version,
        resources: selected.map((x) => x.resource),
        type_url: type,
        nonce,
      });
      if (!ok) this.blocked = true;
    }
  }
}

function namesKey(n: ReadonlySet<string> | "*"): string {
  return n === "*" ? "*" : [...n].sort().join("\n");
}

/** A digest of what is sent: equal content, equal version, across streams and restarts. */
export function versionOf(resources: readonly NamedResource[]): string {
  const h = createHash("sha256");
  for (const r of resources) h.update(JSON.stringify(r.resource)).update("\n");
  return h.digest("hex").slice(0, 16);
}
