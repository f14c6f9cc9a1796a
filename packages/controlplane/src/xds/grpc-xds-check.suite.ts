/**
 * (A .suite.ts file: test support, left out of the build.)
 * Test support (imported only by *.test.ts): a server Listener encoded the
 * way the ADS server sends it, then decoded and validated by
 * @grpc/grpc-js-xds's own ListenerResourceType, and its RBAC filter parsed
 * by grpc-js-xds's own RBAC filter into the evaluator the server runs.
 *
 * grpc-js-xds registers its RBAC filter only when GRPC_XDS_EXPERIMENTAL_RBAC
 * is "true" when it is loaded, so this module sets it before loading it
 * (lazily, on first use): a test process that loaded grpc-js-xds before
 * gets `rbacAvailable() === false`.
 */
import { createRequire } from "node:module";
import { adsPackageDefinition } from "./protos.js";
import { LISTENER_TYPE, type XdsResource } from "./resources.js";

export type Any = { type_url: string; value: Buffer };
type Method = { responseSerialize(v: unknown): Buffer; responseDeserialize(b: Buffer): unknown };

/** grpc-js-xds's RbacPolicyGroup (build/src/rbac.js). */
export interface GrpcRbacEvaluator {
  apply(info: GrpcRbacInfo): boolean;
}

/** What grpc-js-xds's RBAC filter gives its evaluator per call. */
export interface GrpcRbacInfo {
  headers: unknown;
  urlPath: string;
  tls: boolean;
  peerCertificate: { subjectaltname?: string; subject: { CN?: string } } | null;
  destinationIp?: string;
  destinationPort?: number;
  sourceIp?: string;
}

interface Loaded {
  decodeListener(ctx: unknown, any: Any): { name: string; error?: string; value?: unknown };
  decodeSingle(typeUrl: string, b: Buffer): Record<string, unknown>;
  parseFilter(any: Any, override: boolean): { config: GrpcRbacEvaluator } | null;
  Metadata: new () => { add(k: string, v: string): void; set(k: string, v: string): void };
}

let loaded: Loaded | undefined;

function load(): Loaded {
  if (loaded) return loaded;
  process.env.GRPC_XDS_EXPERIMENTAL_RBAC ??= "true";
  const req = createRequire(import.meta.url);
  (req("@grpc/grpc-js-xds") as { register(): void }).register();
  const lt = req("@grpc/grpc-js-xds/build/src/xds-resource-type/listener-resource-type.js") as {
    ListenerResourceType: { get(): { decode(ctx: unknown, any: Any): { name: string; error?: string } } };
  };
  const res = req("@grpc/grpc-js-xds/build/src/resources.js") as {
    decodeSingleResource(t: string, b: Buffer): Record<string, unknown>;
  };
  const hf = req("@grpc/grpc-js-xds/build/src/http-filter.js") as {
    parseTopLevelFilterConfig(any: Any, override: boolean): { config: GrpcRbacEvaluator } | null;
  };
  const grpc = req("@grpc/grpc-js") as { Metadata: Loaded["Metadata"] };
  loaded = {
    decodeListener: (ctx, any) => lt.ListenerResourceType.get().decode(ctx, any),
    decodeSingle: (t, b) => res.decodeSingleResource(t, b),
    parseFilter: (any, o) => hf.parseTopLevelFilterConfig(any, o),
    Metadata: grpc.Metadata,
  };
  return loaded;
}

export function rbacAvailable(): boolean {
  load();
  return process.env.GRPC_XDS_EXPERIMENTAL_RBAC === "true";
}

export function newMetadata(): InstanceType<Loaded["Metadata"]> {
  return new (load().Metadata)();
}

/** A bootstrap context for the decoder, with the certificate provider instances named. */
export function decodeContext(providers: string[] = []): unknown {
  return {
    server: { server_uri: "127.0.0.1:1", channel_creds: [{ type: "insecure" }], server_features: [] },
    bootstrap: {
      certificateProviders: Object.fromEntries(providers.map((p) => [p, { pluginName: "file_watcher" }])),
      node: { id: "test", locality: {} },
    },
  };
}

/** Through the wire and grpc-js-xds's Listener validation: the error it would NACK with, if any. */
export function decodeServerListener(
  listener: XdsResource,
  ctx: unknown = decodeContext(),
): { name?: string; error?: string; rbac?: GrpcRbacEvaluator; listener?: Record<string, unknown> } {
  const m = (
    adsPackageDefinition()["envoy.service.discovery.v3.AggregatedDiscoveryService"] as unknown as {
      StreamAggregatedResources: Method;
    }
  ).StreamAggregatedResources;
  const bytes = m.responseSerialize({ type_url: LISTENER_TYPE, version_info: "1", resources: [listener] });
  const any = ((m.responseDeserialize(bytes) as { resources: Any[] }).resources ?? [])[0] as Any;
  return decodeListenerAny(any, ctx);
}

/** A Listener as received (an Any) through grpc-js-xds's validation, and its RBAC filter parsed. */
export function decodeListenerAny(
  any: Any,
  ctx: unknown = decodeContext(),
): { name?: string; error?: string; rbac?: GrpcRbacEvaluator; listener?: Record<string, unknown> } {
  const l = load();
  const d = l.decodeListener(ctx, any);
  if (d.error) return { error: d.error };
  const value = d.value as {
    filter_chains: { filters: { typed_config: Any }[] }[];
  };
  const hcm = l.decodeSingle(
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    value.filter_chains[0]?.filters[0]?.typed_config.value as Buffer,
  ) as { http_filters: { typed_config: Any }[] };
  const parsed = l.parseFilter(hcm.http_filters[0]?.typed_config as Any, false);
  return {
    name: d.name,
    listener: d.value as Record<string, unknown>,
    ...(parsed ? { rbac: parsed.config } : {}),
  };
}
