/**
 * Which clusters a snapshot holds, and their names. Listeners, split
 * targets, route destinations, mirrors and failover targets each ask for a
 * (service, subset[, datacenter][, locality]) and get the name of the
 * cluster serving it; asking twice gives one cluster.
 *
 * Resolution, as Consul's discovery chain does it:
 * - the service's Resolver `redirect` sends the ask elsewhere (followed up
 *   to MAX_REDIRECTS hops; `weft apply` refuses cycles, this only bounds a
 *   store written around it);
 * - no subset asked → the Resolver's `defaultSubset`;
 * - failover (`expandFailover`): each cluster of a service whose Resolver
 *   lists failover targets gets them, in order, as clusters of their own.
 *   A target without service or subset keeps the cluster's; a datacenter
 *   target selects that datacenter's instances; a locality target selects
 *   instances in that region (and zone). When a Resolver has a locality
 *   target and the proxy has a locality, the primary cluster keeps only the
 *   proxy's own locality, so "fail over from my zone to the next" means
 *   what it says. Failover targets are not themselves expanded: no chains,
 *   no cycles.
 *
 * Names: `<service>[.<subset>][@<datacenter>][~<region>[/<zone>]]`.
 */
import type { Resolver, ResolverTarget } from "@weft/api";
import { type RecordingReader, sorted } from "./reader.js";

export interface Locality {
  region?: string;
  zone?: string;
}

export interface ClusterRef {
  name: string;
  service: string;
  subset?: string;
  /** Set only for a datacenter other than the proxy's. */
  datacenter?: string;
  locality?: Locality;
  /** Cluster names, in order (failover targets). */
  failover?: string[];
}

const MAX_REDIRECTS = 8;

interface Ask {
  service: string;
  subset: string | undefined;
  datacenter: string | undefined;
  locality: Locality | undefined;
}

function localityName(l: Locality | undefined): string {
  if (l === undefined || (l.region === undefined && l.zone === undefined)) return "";
  return `~${l.region ?? "*"}${l.zone !== undefined ? `/${l.zone}` : ""}`;
}

export class ClusterRefs {
  private readonly byName = new Map<string, ClusterRef>();

  constructor(
    private readonly reader: RecordingReader,
    /** The proxy's own datacenter and locality. */
    private readonly home: { datacenter: string; locality: Locality | undefined },
  ) {}

  /** Registers the cluster for `service` (and subset) and returns its name. */
  add(
    service: string,
    subset: string | undefined,
    where: Partial<Pick<Ask, "datacenter" | "locality">> = {},
  ): string {
    let ask: Ask = { service, subset, datacenter: where.datacenter, locality: where.locality };
    for (let hop = 0; hop < MAX_REDIRECTS; hop++) {
      const redirect = this.reader.resolver(ask.service)?.redirect;
      if (redirect === undefined) break;
      ask = redirected(ask, redirect);
    }
    const resolver = this.reader.resolver(ask.service);
    const chosen = ask.subset ?? resolver?.defaultSubset;
    const datacenter = ask.datacenter === this.home.datacenter ? undefined : ask.datacenter;
    const locality = ask.locality ?? this.primaryLocality(resolver, where.locality !== undefined);
    const name =
      (chosen === undefined ? ask.service : `${ask.service}.${chosen}`) +
      (datacenter !== undefined ? `@${datacenter}` : "") +
      localityName(locality);
    if (!this.byName.has(name)) {
      const ref: ClusterRef = { name, service: ask.service };
      if (chosen !== undefined) ref.subset = chosen;
      if (datacenter !== undefined) ref.datacenter = datacenter;
      if (locality !== undefined) ref.locality = locality;
      this.byName.set(name, ref);
    }
    return name;
  }

  /**
   * Gives every cluster registered so far its Resolver's failover targets.
   * Call once, after listeners, splits, routes and mirrors have added theirs.
   */
  expandFailover(): void {
    for (const ref of [...this.byName.values()]) {
      const targets = this.reader.resolver(ref.service)?.failover?.targets;
      if (!targets || ref.datacenter !== undefined || this.isFailoverLocality(ref)) continue;
      const names: string[] = [];
      for (const t of targets) {
        const sameService = t.service === undefined || t.service === ref.service;
        const n = this.add(t.service ?? ref.service, t.subset ?? (sameService ? ref.subset : undefined), {
          datacenter: t.datacenter,
          locality: t.locality,
        });
        if (n !== ref.name && !names.includes(n)) names.push(n);
      }
      if (names.length > 0) ref.failover = names;
    }
  }

  /** The service a registered cluster serves (after redirects). */
  serviceOf(name: string): string | undefined {
    return this.byName.get(name)?.service;
  }

  /** Sorted by name, so cluster order does not follow declaration order. */
  sorted(): ClusterRef[] {
    return sorted(this.byName.keys()).map((n) => this.byName.get(n) as ClusterRef);
  }

  /** The primary cluster of a Resolver with locality failover keeps the proxy's locality. */
  private primaryLocality(resolver: Resolver | undefined, explicit: boolean): Locality | undefined {
    if (explicit || this.home.locality === undefined) return undefined;
    if (!resolver?.failover?.targets.some((t) => t.locality !== undefined)) return undefined;
    const { region, zone } = this.home.locality;
    if (region === undefined && zone === undefined) return undefined;
    return { ...(region !== undefined ? { region } : {}), ...(zone !== undefined ? { zone } : {}) };
  }

  /** A locality target's cluster (not the primary's own locality): it gets no failover of its own. */
  private isFailoverLocality(ref: ClusterRef): boolean {
    if (ref.locality === undefined) return false;
    const home = this.home.locality;
    return ref.locality.region !== home?.region || ref.locality.zone !== home?.zone;
  }
}

function redirected(ask: Ask, r: ResolverTarget): Ask {
  const sameService = r.service === undefined || r.service === ask.service;
  return {
    service: r.service ?? ask.service,
    // A redirect to another service drops the subset asked for (it named the old service's subsets).
    subset: r.subset ?? (sameService ? ask.subset : undefined),
    datacenter: r.datacenter ?? ask.datacenter,
    locality: r.locality ?? ask.locality,
  };
}
