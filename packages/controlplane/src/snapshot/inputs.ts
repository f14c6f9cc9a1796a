/**
 * SnapshotInputs from the control plane's live sources: the stored config
 * (parsed resources) and the catalog. ProxyStreams builds with it, and so
 * does `weft explain`, so the two cannot read the mesh differently.
 */
import type { Instance, Mesh } from "@weft/api";
import type { Catalog } from "../catalog/catalog.js";
import type { ConfigService } from "../config/config.js";
import type { SnapshotInputs } from "./build.js";

export interface SnapshotSources {
  catalog: Pick<Catalog, "serviceInstances">;
  config: Pick<ConfigService, "parsed">;
}

export function snapshotInputs(src: SnapshotSources, instance: Instance, mesh: Mesh): SnapshotInputs {
  const { catalog, config } = src;
  return {
    instance,
    mesh,
    intention: (svc) => config.parsed("Intention", svc) as never,
    serviceDefaults: (svc) => config.parsed("ServiceDefaults", svc) as never,
    resolver: (svc) => config.parsed("Resolver", svc) as never,
    split: (svc) => config.parsed("Split", svc) as never,
    route: (svc) => config.parsed("Route", svc) as never,
    gateway: (name) => config.parsed("Gateway", name) as never,
    instances: (svc) => catalog.serviceInstances(svc, "any"),
  };
}
