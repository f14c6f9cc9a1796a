/**
 * `weft bootstrap grpc --service NAME`: puts a proxyless gRPC workload in
 * the mesh. Registers it in the catalog (tag `proxyless`, its upstreams
 * scope what it is sent, as a sidecar's do) unless `--no-register`, and
 * writes the grpc-js-xds bootstrap file (xds_servers, node id and locality,
 * the token in node metadata since grpc-js-xds has no call credentials).
 * The workload then joins with two environment variables:
 * `GRPC_XDS_BOOTSTRAP=FILE` and a channel target `xds:///SERVICE`.
 *
 * The file holds a token: written 0600. Give it a token scoped to the
 * service (`service:NAME:write`), not the management token.
 *
 * mTLS: `--cert-dir DIR` obtains the workload's SPIFFE certificate and the
 * mesh roots from the control plane's CA into DIR (cert.pem, key.pem 0600,
 * ca.pem, each replaced atomically) and names them in the bootstrap as a
 * `file_watcher` certificate provider; the control plane then sends this
 * node its clusters with mTLS and SAN matching. With `--watch` the command
 * keeps running and rewrites the files on every renewal (grpc-js re-reads
 * them every CERT_REFRESH).
 *
 * Servers: the bootstrap names `server_listener_resource_name_template`, so
 * a grpc-js-xds `XdsServer` (with `XdsServerCredentials`) bound to the
 * registered port gets its Listener from the control plane: mTLS with the
 * same certificate provider and the service's Intention as an RBAC filter.
 * The filter is required, not optional: grpc-js-xds 1.14 knows it only
 * with GRPC_XDS_EXPERIMENTAL_RBAC=true, and a server without it refuses
 * the Listener and does not serve (fails closed).
 *
 * Health: the instance is registered with a TTL check `xds` (critical,
 * "waiting for the xDS stream") that the control plane keeps passing while
 * the workload's xDS stream is open and turns critical when it ends, so a
 * dead proxyless server leaves the load balancing like a dead sidecar's
 * app. `--no-xds-health` leaves it out, for a server that is not an xDS
 * client (a plain grpc-js server with its own TLS).
 */
import { chmod, mkdir, rename, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import {
  NODE_CERT_PROVIDER_KEY,
  NODE_TOKEN_KEY,
  SERVER_LISTENER_TEMPLATE,
  XDS_CHECK_ID,
} from "@weft/api/client";

export { NODE_CERT_PROVIDER_KEY, NODE_TOKEN_KEY, XDS_CHECK_ID };

import { weftError } from "@weft/core";
import type { Command } from "commander";
import { type ClientFlags, clientFrom, resolveToken, withClientOptions } from "../client-options.js";
import type { Io } from "../io.js";
import { json } from "../output.js";
import { onStopSignals } from "../stop-signals.js";

export const DEFAULT_XDS_PORT = 7401;
export const CERT_PROVIDER = "weft";
/** How often grpc-js re-reads the certificate files. */
export const CERT_REFRESH = "10s";
export const XDS_CHECK_TTL = "30s";
/**
 * Longer than the server's 1m default: the workload may start a while after
 * its bootstrap was written (an image pull), and must still be registered.
 */
export const XDS_CHECK_DEREGISTER_AFTER = "10m";
export const XDS_CHECK_WAITING = "waiting for the xDS stream";

export interface CertFiles {
  cert: string;
  key: string;
  ca: string;
}

export function certFiles(dir: string): CertFiles {
  return { cert: join(dir, "cert.pem"), key: join(dir, "key.pem"), ca: join(dir, "ca.pem") };
}

interface BootstrapFlags extends ClientFlags {
  service: string;
  out?: string;
  xdsServer?: string;
  id?: string;
  address: string;
  port?: string;
  upstream: string[];
  region?: string;
  zone?: string;
  register: boolean;
  certDir?: string;
  watch?: boolean;
  xdsHealth: boolean;
}

export interface GrpcBootstrapInput {
  serverUri: string;
  nodeId: string;
  service: string;
  token?: string | undefined;
  locality?: { region?: string | undefined; zone?: string | undefined };
  /** mTLS material for the file_watcher certificate provider. */
  certs?: CertFiles | undefined;
}

/** The grpc-js-xds bootstrap document (GRPC_XDS_BOOTSTRAP): plaintext to the control plane (loopback or a trusted network). */
export function grpcBootstrap(i: GrpcBootstrapInput): Record<string, unknown> {
  const locality: Record<string, string> = {};
  if (i.locality?.region) locality.region = i.locality.region;
  if (i.locality?.zone) locality.zone = i.locality.zone;
  const metadata: Record<string, string> = { weft_service: i.service, weft_proxyless: "true" };
  if (i.token) metadata[NODE_TOKEN_KEY] = i.token;
  const doc: Record<string, unknown> = {
    xds_servers: [
      { server_uri: i.serverUri, channel_creds: [{ type: "insecure" }], server_features: ["xds_v3"] },
    ],
    node: { id: i.nodeId, cluster: i.service, locality, metadata },
    // For an XdsServer: where its Listener comes from (ignored by a client-only workload).
    server_listener_resource_name_template: SERVER_LISTENER_TEMPLATE,
  };
  if (i.certs) {
    metadata[NODE_CERT_PROVIDER_KEY] = CERT_PROVIDER;
    doc.certificate_providers = {
      [CERT_PROVIDER]: {
        plugin_name: "file_watcher",
        config: {
          certificate_file: i.certs.cert,
          private_key_file: i.certs.key,
          ca_certificate_file: i.certs.ca,
          refresh_interval: CERT_REFRESH,
        },
      },
    };
  }
  return doc;
}

/** Written beside, then renamed: a reader never sees half a file. */
async function writeAtomic(file: string, text: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode });
  await chmod(tmp, mode);
  await rename(tmp, file);
}

/** The workload's key and chain, and the mesh roots, as the file_watcher provider reads them. */
export async function writeCertFiles(
  files: CertFiles,
  m: { keyPem: string; chainPem: string; rootsPem: readonly string[] },
): Promise<void> {
  await writeAtomic(files.key, m.keyPem, 0o600);
  await writeAtomic(files.cert, m.chainPem, 0o644);
  await writeAtomic(files.ca, m.rootsPem.join(""), 0o644);
}

function usage(detail: string): never {
  throw weftError("WEFT_ERR_USAGE", { detail });
}

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function port(flag: string, v: string): number {
  const n = /^\d{1,5}$/.test(v) ? Number(v) : Number.NaN;
  if (!(n >= 1 && n <= 65535)) usage(`${flag} "${v}": expected a port number 1-65535`);
  return n;
}

/** The xDS server: the flag, else the host of --addr on DEFAULT_XDS_PORT. */
export function xdsServerUri(flag: string | undefined, addr: string): string {
  if (flag !== undefined) {
    if (!/^(\[[0-9A-Fa-f:.]+\]|[^:/\s]+):\d{1,5}$/.test(flag))
      usage(`--xds-server "${flag}": expected host:port`);
    return flag;
  }
  const host = /^(?:[a-z]+:\/\/)?(\[[^\]]+\]|[^:/]+)/i.exec(addr.trim())?.[1] ?? "127.0.0.1";
  return `${host}:${DEFAULT_XDS_PORT}`;
}

export function registerBootstrapCommand(program: Command, io: Io): void {
  const boot = program
    .command("bootstrap")
    .summary("bootstrap files for workloads that join without a sidecar");
  withClientOptions(
    boot
      .command("grpc")
      .summary("register a proxyless gRPC workload and write its xDS bootstrap file")
      .description(
        "Register a proxyless gRPC instance of --service (unless --no-register) and write the\n" +
          "grpc-js-xds bootstrap file for it. Run the workload with GRPC_XDS_BOOTSTRAP=FILE and\n" +
          "channel targets xds:///SERVICE. The control plane must serve xDS (weft server --xds-listen).\n" +
          "The file holds the token (mode 0600): use one scoped to the service (service:NAME:write).",
      )
      .requiredOption("--service <name>", "the workload's service")
      .option("--out <file>", "where to write the bootstrap (default: stdout)")
      .option(
        "--xds-server <host:port>",
        `the control plane's xDS address (default: --addr's host, port ${DEFAULT_XDS_PORT})`,
      )
      .option("--id <id>", "instance id (the xDS node id; default SERVICE-proxyless-RANDOM)")
      .option("--address <ip>", "address other workloads reach this one on", "127.0.0.1")
      .option("--port <port>", "port the workload serves gRPC on (required to register)")
      .option(
        "--upstream <service>",
        "a service the workload calls (repeatable); scopes what it is sent",
        (v: string, prev: string[]) => [...prev, v],
        [] as string[],
      )
      .option("--region <region>", "locality region")
      .option("--zone <zone>", "locality zone")
      .option("--no-register", "only write the file; print how to register")
      .option(
        "--cert-dir <dir>",
        "obtain the workload's SPIFFE certificate and the mesh roots into DIR and use mTLS",
      )
      .option("--watch", "with --cert-dir: keep running and rewrite the files on every renewal")
      .option(
        "--no-xds-health",
        `register without the "${XDS_CHECK_ID}" TTL check (for a server that is not an xDS client)`,
      ),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft bootstrap grpc --service web --port 50051 --upstream api --out web-xds.json\n" +
        "  $ GRPC_XDS_BOOTSTRAP=web-xds.json node web.js   # channel target xds:///api\n" +
        "\nServers: an XdsServer bound to the registered port (e.g. 0.0.0.0:50051) gets its Listener\n" +
        "from the control plane: mTLS (with --cert-dir and XdsServerCredentials) and the service's\n" +
        "Intention as RBAC. Run it with GRPC_XDS_EXPERIMENTAL_RBAC=true: without it grpc-js-xds\n" +
        "refuses the Listener (NACK) and the server does not serve (fails closed).\n" +
        '\nHealth: the instance gets a TTL check "xds", passing while the workload\'s xDS stream is\n' +
        "open, critical when it ends. Use --no-xds-health for a workload that is not an xDS client.\n",
    )
    .action(async (opts: BootstrapFlags) => {
      if (!NAME.test(opts.service)) usage(`--service "${opts.service}": not a service name`);
      for (const u of opts.upstream) if (!NAME.test(u)) usage(`--upstream "${u}": not a service name`);
      if (new Set(opts.upstream).size !== opts.upstream.length)
        usage("--upstream: a service is listed twice");
      if (opts.watch && !opts.certDir) usage("--watch needs --cert-dir");
      if (opts.certDir && opts.out === undefined)
        usage("--cert-dir needs --out (stdout carries the bootstrap otherwise)");
      if (opts.register && opts.port === undefined)
        usage("--port is required to register (or pass --no-register)");
      const serverUri = xdsServerUri(opts.xdsServer, opts.addr);
      const nodeId = opts.id ?? `${opts.service}-proxyless-${Math.random().toString(36).slice(2, 10)}`;
      const token = resolveToken(opts.token, io.cwd);
      const registration = {
        id: nodeId,
        service: opts.service,
        address: opts.address,
        port: opts.port !== undefined ? port("--port", opts.port) : 0,
        tags: ["proxyless"],
        meta: { proxyless: "true" },
        ...(opts.xdsHealth
          ? {
              checks: [
                {
                  id: XDS_CHECK_ID,
                  ttl: XDS_CHECK_TTL,
                  deregisterCriticalAfter: XDS_CHECK_DEREGISTER_AFTER,
                  status: "critical" as const,
                },
              ],
            }
          : {}),
        ...(opts.region || opts.zone
          ? {
              locality: {
                ...(opts.region ? { region: opts.region } : {}),
                ...(opts.zone ? { zone: opts.zone } : {}),
              },
            }
          : {}),
        // Upstream local ports mean nothing without a sidecar; they only have to be distinct.
        proxy: {
          protocol: "grpc" as const,
          upstreams: opts.upstream.map((service, i) => ({ service, localPort: i + 1 })),
        },
      };
      if (opts.register) {
        const client = clientFrom(opts, io.cwd);
        await client.registerInstance(registration);
        // Registration cannot set a check's output: say why it is critical until the stream opens.
        if (opts.xdsHealth) {
          await client.updateCheck(nodeId, XDS_CHECK_ID, { status: "critical", output: XDS_CHECK_WAITING });
        }
        io.err.write(`registered proxyless instance ${nodeId} of ${opts.service}\n`);
      } else {
        io.err.write(
          `not registered; register it with PUT /v1/catalog/instances (e.g. curl -X PUT --data @reg.json):\n${json(registration)}`,
        );
      }
      let certs: CertFiles | undefined;
      let identity:
        | {
            current(): { keyPem: string; chainPem: string; bundle: { rootsPem: readonly string[] } };
            onChange(fn: () => void): unknown;
            dispose(): void;
          }
        | undefined;
      const stop = opts.watch ? onStopSignals(io) : undefined;
      if (opts.certDir) {
        const dir = resolve(io.cwd, opts.certDir);
        await mkdir(dir, { recursive: true, mode: 0o700 });
        certs = certFiles(dir);
        // Loaded here: other commands start without the data plane's code.
        const { WorkloadIdentity } = await import("@weft/dataplane");
        identity = await WorkloadIdentity.start({
          client: clientFrom(opts, io.cwd),
          service: opts.service,
          ...(opts.register ? { instanceId: nodeId } : {}),
        });
        const write = (): Promise<void> => {
          const m = (identity as NonNullable<typeof identity>).current();
          return writeCertFiles(certs as CertFiles, {
            keyPem: m.keyPem,
            chainPem: m.chainPem,
            rootsPem: m.bundle.rootsPem,
          });
        };
        await write();
        identity.onChange(() => {
          write().then(
            () => io.err.write("certificate renewed; files rewritten\n"),
            (e: unknown) => io.err.write(`error: could not rewrite the certificate files: ${String(e)}\n`),
          );
        });
        io.err.write(`certificate for ${opts.service} written to ${dir}\n`);
      }
      const doc = `${JSON.stringify(grpcBootstrap({ serverUri, nodeId, service: opts.service, token, locality: registration.locality, certs }), null, 2)}\n`;
      if (!token) io.err.write("warning: no token: the control plane accepts this only in --dev mode\n");
      if (opts.out === undefined) {
        io.out.write(doc);
        return;
      }
      const file = resolve(io.cwd, opts.out);
      await writeFile(file, doc, { mode: 0o600 });
      await chmod(file, 0o600);
      io.err.write(`bootstrap written to ${file}\n`);
      io.out.write(`export GRPC_XDS_BOOTSTRAP=${file}\n`);
      if (identity && stop) {
        io.err.write("keeping the certificate renewed; stop with Ctrl-C\n");
        await stop.requested;
      }
      identity?.dispose();
    });
}
