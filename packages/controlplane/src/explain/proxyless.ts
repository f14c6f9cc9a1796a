/**
 * Explain's proxyless part: when the source or the destination service has
 * proxyless gRPC instances (`weft bootstrap grpc`: no sidecar, the client
 * library gets the same config over xDS), say so and show their xDS state
 * from the ADS listener (xds-nodes.ts): connected or not, what they last
 * ACKed, and each update they refused with the client's own message, in
 * plain words. A NACKed node keeps running on its last accepted version,
 * so what it does may differ from what this explanation computes.
 */
import {
  describeNack,
  type ExplainProxyless,
  type ExplainProxylessInstance,
  type Instance,
  isProxyless,
  type XdsNode,
} from "@weft/api";
import type { Catalog } from "../catalog/catalog.js";
import type { XdsServer } from "../xds/ads-server.js";
import { xdsNodes } from "../xds/xds-nodes.js";

export interface ProxylessSources {
  catalog: Pick<Catalog, "serviceInstances">;
  xds?: Pick<XdsServer, "streams" | "nacks"> | undefined;
}

/** NACKs shown per node in the note (the JSON has them all). */
const NOTE_NACKS_PER_NODE = 3;

export function explainProxyless(
  src: ProxylessSources,
  roles: readonly { service: string; role: "source" | "destination" }[],
  canRead: (service: string) => boolean,
): ExplainProxyless[] {
  const out: ExplainProxyless[] = [];
  const seen = new Set<string>();
  for (const { service, role } of roles) {
    if (seen.has(service)) continue;
    seen.add(service);
    const instances = src.catalog.serviceInstances(service, "any").filter(isProxyless);
    if (instances.length === 0) continue;
    const visible = canRead(service);
    const nodes = new Map<string, XdsNode>();
    if (visible) {
      // Matched by node id (= instance id): the service of a node is then not needed.
      const r = xdsNodes(
        { xds: src.xds, catalog: { getInstance: () => undefined } },
        { canRead: () => true },
      );
      const ids = new Set(instances.map((i) => i.id));
      for (const n of r.nodes) if (ids.has(n.nodeId)) nodes.set(n.nodeId, n);
    }
    out.push({
      service,
      role,
      xdsEnabled: src.xds !== undefined,
      visible,
      instances: instances.map((i: Instance): ExplainProxylessInstance => {
        const n = nodes.get(i.id);
        return {
          id: i.id,
          status: i.status,
          connected: n?.connected ?? false,
          acked: { ...(n?.acked ?? {}) },
          nacks: n?.nacks ?? [],
        };
      }),
    });
  }
  return out;
}

/** The `proxyless` note: one sentence per service, then each node's recent refusals. */
export function proxylessNote(list: readonly ExplainProxyless[]): string | undefined {
  if (list.length === 0) return undefined;
  const parts: string[] = [];
  for (const p of list) {
    const n = p.instances.length;
    const who = p.role === "source" ? `the caller "${p.service}"` : `the destination "${p.service}"`;
    const what =
      p.role === "source"
        ? "they route and balance their calls themselves, with no calling sidecar"
        : "requests reach their gRPC server directly, with no receiving sidecar";
    let s = `${who} has ${n} proxyless gRPC instance${n === 1 ? "" : "s"} (config over xDS; ${what})`;
    if (!p.xdsEnabled) {
      parts.push(`${s}; this control plane serves no xDS (--xds-listen), so they get no config from it`);
      continue;
    }
    if (!p.visible) {
      parts.push(`${s}; their xDS state needs read permission on "${p.service}"`);
      continue;
    }
    const up = p.instances.filter((i) => i.connected).map((i) => i.id);
    const down = p.instances.filter((i) => !i.connected).map((i) => i.id);
    s += `: ${up.length > 0 ? `${up.join(", ")} connected` : "none connected"}`;
    if (up.length > 0 && down.length > 0) s += `; ${down.join(", ")} not connected`;
    const nacks = p.instances.flatMap((i) =>
      i.nacks.slice(-NOTE_NACKS_PER_NODE).map((x) => describeNack(i.id, x)),
    );
    s +=
      nacks.length > 0
        ? `; ${nacks.join("; ")} (a node that refused an update runs on its last accepted config, which may differ from this explanation)`
        : "; no refused updates (NACKs)";
    parts.push(s);
  }
  return parts.join(". ");
}
