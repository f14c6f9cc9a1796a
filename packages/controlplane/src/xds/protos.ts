/**
 * The Envoy protos the ADS server speaks, loaded once with proto-loader from
 * the copies `@grpc/grpc-js-xds` ships (deps/envoy-api, xds, googleapis,
 * protoc-gen-validate): the same definitions the gRPC client decodes with.
 * Every resource type translate.ts writes is loaded into the same root, so
 * protobufjs can pack `{ "@type": ... }` objects into `google.protobuf.Any`.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const FILES = [
  "envoy/service/discovery/v3/ads.proto",
  "envoy/service/load_stats/v3/lrs.proto",
  "envoy/config/listener/v3/listener.proto",
  "envoy/config/route/v3/route.proto",
  "envoy/config/cluster/v3/cluster.proto",
  "envoy/config/endpoint/v3/endpoint.proto",
  "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
  "envoy/extensions/filters/http/router/v3/router.proto",
  "envoy/extensions/filters/http/fault/v3/fault.proto",
  "envoy/extensions/filters/http/rbac/v3/rbac.proto",
  "envoy/extensions/transport_sockets/tls/v3/tls.proto",
];

/** Where the protos are: next to the installed `@grpc/grpc-js-xds`. */
export function xdsProtoDirs(): string[] {
  const req = createRequire(import.meta.url);
  const root = join(dirname(req.resolve("@grpc/grpc-js-xds/package.json")), "deps");
  return ["envoy-api", "xds", "googleapis", "protoc-gen-validate"].map((d) => join(root, d));
}

let cached: protoLoader.PackageDefinition | undefined;

/**
 * snake_case fields, enums as names, int64 as strings, no defaults filled in
 * (so an absent `error_detail` reads as absent, which is what tells an ACK from a NACK).
 */
export function adsPackageDefinition(): protoLoader.PackageDefinition {
  cached ??= protoLoader.loadSync(FILES, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
    includeDirs: xdsProtoDirs(),
  });
  return cached;
}

/** The `AggregatedDiscoveryService` definition (for `Server.addService`) and its client constructor (tests). */
export function adsService(): {
  service: grpc.ServiceDefinition;
  Client: grpc.ServiceClientConstructor;
} {
  const pkg = grpc.loadPackageDefinition(adsPackageDefinition()) as unknown as {
    envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: grpc.ServiceClientConstructor } } } };
  };
  const Client = pkg.envoy.service.discovery.v3.AggregatedDiscoveryService;
  return { service: Client.service, Client };
}

export const ADS_METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

/** The `LoadReportingService` definition (lrs-server.ts) and its client constructor (tests). */
export function lrsService(): {
  service: grpc.ServiceDefinition;
  Client: grpc.ServiceClientConstructor;
} {
  const pkg = grpc.loadPackageDefinition(adsPackageDefinition()) as unknown as {
    envoy: { service: { load_stats: { v3: { LoadReportingService: grpc.ServiceClientConstructor } } } };
  };
  const Client = pkg.envoy.service.load_stats.v3.LoadReportingService;
  return { service: Client.service, Client };
}
