/**
 * The snapshot builder's view of its inputs: each looked up once per key,
 * and every key asked for remembered, present or absent, so the build's
 * `deps` are exactly what its result depends on.
 */
import {
  type Gateway,
  type Instance,
  type Intention,
  MESH_NAME,
  type Resolver,
  type Route,
  type ServiceDefaults,
  type Split,
} from "@weft/api";
import type { SnapshotDeps, SnapshotInputs } from "./build.js";

/** Looks inputs up once per key, and remembers every key asked for. */
export class RecordingReader {
  private readonly intentions = new Map<string, Intention | undefined>();
  private readonly defaults = new Map<string, ServiceDefaults | undefined>();
  private readonly resolvers = new Map<string, Resolver | undefined>();
  private readonly splits = new Map<string, Split | undefined>();
  private readonly routes = new Map<string, Route | undefined>();
  private readonly gateways = new Map<string, Gateway | undefined>();
  private readonly instanceLists = new Map<string, readonly Instance[]>();

  constructor(private readonly inputs: SnapshotInputs) {}

  intention(service: string): Intention | undefined {
    return memo(this.intentions, service, () => this.inputs.intention(service));
  }

  serviceDefaults(service: string): ServiceDefaults | undefined {
    return memo(this.defaults, service, () => this.inputs.serviceDefaults(service));
  }

  resolver(service: string): Resolver | undefined {
    return memo(this.resolvers, service, () => this.inputs.resolver(service));
  }

  split(service: string): Split | undefined {
    return memo(this.splits, service, () => this.inputs.split(service));
  }

  route(service: string): Route | undefined {
    return memo(this.routes, service, () => this.inputs.route(service));
  }

  gateway(name: string): Gateway | undefined {
    return memo(this.gateways, name, () => this.inputs.gateway(name));
  }

  instances(service: string): readonly Instance[] {
    return memo(this.instanceLists, service, () => this.inputs.instances(service));
  }

  deps(ownService: string): SnapshotDeps {
    const config = [
      `Mesh/${MESH_NAME}`,
      ...[...this.intentions.keys()].map((s) => `Intention/${s}`),
      ...[...this.defaults.keys()].map((s) => `ServiceDefaults/${s}`),
      ...[...this.resolvers.keys()].map((s) => `Resolver/${s}`),
      ...[...this.splits.keys()].map((s) => `Split/${s}`),
      ...[...this.routes.keys()].map((s) => `Route/${s}`),
      ...[...this.gateways.keys()].map((s) => `Gateway/${s}`),
    ];
    return {
      services: sorted(new Set([ownService, ...this.instanceLists.keys()])),
      config: sorted(new Set(config)),
    };
  }
}

export function memo<V>(cache: Map<string, V>, key: string, load: () => V): V {
  if (cache.has(key)) return cache.get(key) as V;
  const v = load();
  cache.set(key, v);
  return v;
}

/** Plain code-unit order: the same on every machine, unlike localeCompare. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function sorted(values: Iterable<string>): string[] {
  return [...values].sort(compareStrings);
}
