/**
 * (A .suite.ts file: test support, left out of the build.)
 * The control plane the xDS server tests speak to (ads-server,
 * ads-server-proxyless, lrs-server): a real server (startServer, memory
 * store, xDS on 127.0.0.1:0, silent) with a few instances registered, and
 * a plain grpc-js client of AggregatedDiscoveryService on its xDS port.
 * Whatever these open is closed through the test file's `cleanups` (run in
 * reverse in its afterEach).
 */
import * as grpc from "@grpc/grpc-js";
import type { InstanceRegistration } from "@weft/api";
import { WeftClient } from "@weft/api/client";
import { pino } from "pino";
import { type RunningServer, startServer } from "../server.js";
import type { DiscoveryRequest } from "./ads-stream.js";
import { adsService } from "./protos.js";

export type Cleanups = (() => unknown)[];

/** echo-1 (service echo) and client-1 (service client, calling echo), both gRPC with sidecar-style registrations. */
export const ECHO_AND_CLIENT: readonly InstanceRegistration[] = [
  { id: "echo-1", service: "echo", address: "127.0.0.1", port: 7001, proxy: { protocol: "grpc" } },
  {
    id: "client-1",
    service: "client",
    address: "127.0.0.1",
    port: 7002,
    proxy: { protocol: "grpc", upstreams: [{ service: "echo", localPort: 1 }] },
  },
];

/** Starts the server, registers `instances`; `token` is the management (bootstrap) token `api` uses. */
export async function startXdsTestServer(
  cleanups: Cleanups,
  instances: readonly InstanceRegistration[] = ECHO_AND_CLIENT,
): Promise<{ srv: RunningServer; api: WeftClient; token: string }> {
  const srv = await startServer({
    listen: "127.0.0.1:0",
    storeSpec: "memory",
    xdsListen: "127.0.0.1:0",
    logger: pino({ level: "silent" }),
  });
  cleanups.push(() => srv.close());
  const token = srv.bootstrapToken as string;
  const api = new WeftClient({ addr: srv.url, token });
  for (const i of instances) await api.registerInstance(i);
  return { srv, api, token };
}

/** A DiscoveryResponse as the ADS client decodes it. */
export interface AdsResponse {
  version_info: string;
  nonce: string;
  type_url: string;
  resources?: { type_url: string; value: Buffer }[];
}

/** Opens an ADS stream with call metadata `md`; collects responses (`next(n)`: the n-th) and the final status. */
export function openAds(srv: RunningServer, cleanups: Cleanups, md: Record<string, string> = {}) {
  const { Client } = adsService();
  const c = new Client(
    `127.0.0.1:${srv.xds!.port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as grpc.Client & {
    StreamAggregatedResources(m: grpc.Metadata): grpc.ClientDuplexStream<DiscoveryRequest, AdsResponse>;
  };
  cleanups.push(() => c.close());
  const meta = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) meta.set(k, v);
  const call = c.StreamAggregatedResources(meta);
  const responses: AdsResponse[] = [];
  const waiters: (() => void)[] = [];
  call.on("data", (r: AdsResponse) => {
    responses.push(r);
    for (const w of waiters.splice(0)) w();
  });
  const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  call.on("error", () => {});
  cleanups.push(() => call.cancel());
  const next = (n: number) =>
    new Promise<AdsResponse>((resolve) => {
      const check = () =>
        responses.length >= n ? resolve(responses[n - 1] as AdsResponse) : waiters.push(check);
      check();
    });
  return { call, status, next, responses };
}
