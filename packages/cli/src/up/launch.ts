/**
 * What each process of a replica is started with: the app's command and
 * environment (PORT, WEFT_UPSTREAM_<SERVICE> for each upstream, the
 * Workload's env) and the sidecar's `weft proxy` flags; and each gateway's
 * `weft gateway` flags and the line it prints once it serves. Pure
 * functions, so the exact contract between `weft up`, apps, sidecars and
 * gateways is unit tested.
 */
import { fileURLToPath } from "node:url";
import type { GatewayPlan, HealthPlan, WorkloadPlan } from "./plan.js";

/** The `weft` executable that starts sidecars (this package's own bin). */
export const WEFT_BIN = fileURLToPath(new URL("../bin/weft.js", import.meta.url));

/** How long a sidecar may drain on SIGTERM before it cuts requests. */
export const SIDECAR_DRAIN = "5s";

/** How long a gateway may drain on SIGTERM (it stops before the sidecars it sends to). */
export const GATEWAY_DRAIN = "5s";

export interface ReplicaPorts {
  app: number;
  /** Upstream service -> this replica's local port. */
  upstreams: Record<string, number>;
}

/** `WEFT_UPSTREAM_REVIEWS_V2` for `reviews-v2`. */
export function upstreamEnvName(service: string): string {
  return `WEFT_UPSTREAM_${service.toUpperCase().replace(/-/g, "_")}`;
}

/** The supervisor's environment without what must not leak into apps and sidecars (its own address and token). */
export function baseEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) {
    if (k !== "WEFT_TOKEN" && k !== "WEFT_ADDR") out[k] = v;
  }
  return out;
}

export function appEnv(
  w: WorkloadPlan,
  replica: number,
  ports: ReplicaPorts,
  env: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...baseEnv(env), ...w.env };
  for (const [service, port] of Object.entries(ports.upstreams)) {
    out[upstreamEnvName(service)] = `http://127.0.0.1:${port}`;
  }
  out.PORT = String(ports.app);
  out.WEFT_SERVICE = w.service;
  out.WEFT_WORKLOAD = w.name;
  out.WEFT_REPLICA = String(replica);
  return out;
}

/** argv[0] `node` runs with the same Node as weft itself (nvm and friends may put another one on PATH). */
export function appCommand(
  w: WorkloadPlan,
  execPath = process.execPath,
): { command: string; args: string[] } {
  const [first, ...args] = w.command as [string, ...string[]];
  return { command: first === "node" ? execPath : first, args };
}

function healthFlags(h: HealthPlan): string[] {
  const out =
    h.kind === "http"
      ? ["--health-http", h.path ?? "/"]
      : h.kind === "grpc"
        ? h.grpcService
          ? ["--health-grpc", h.grpcService]
          : ["--health-grpc"]
        : ["--health-tcp"];
  out.push("--health-interval", `${h.intervalMs}ms`, "--health-timeout", `${h.timeoutMs}ms`);
  return out;
}

/** `weft proxy ...` for one replica. The token goes in the environment (WEFT_TOKEN), never in argv. */
export function sidecarArgs(
  w: WorkloadPlan,
  instanceId: string,
  ports: ReplicaPorts & { inbound: number; admin: number },
  server: string,
): string[] {
  const args = [
    "proxy",
    "--service",
    w.service,
    "--instance-id",
    instanceId,
    "--app-port",
    String(ports.app),
    "--inbound",
    `127.0.0.1:${ports.inbound}`,
    "--admin",
    `127.0.0.1:${ports.admin}`,
    "--protocol",
    w.protocol,
    ...healthFlags(w.health),
    "--drain-timeout",
    SIDECAR_DRAIN,
    "--server",
    server,
  ];
  for (const u of w.upstreams) {
    args.push("--upstream", `${u.service}=${ports.upstreams[u.service] ?? u.localPort}`);
  }
  for (const t of w.tags) args.push("--tag", t);
  for (const [k, v] of Object.entries(w.meta)) args.push("--meta", `${k}=${v}`);
  return args;
}

/**
 * `weft gateway ...` for one Gateway. Without -f: the gateway reads its
 * resource from the control plane (which `weft up` has just applied it to),
 * so a later `weft apply` of its routes reaches the running gateway. It
 * runs in the file's directory, so relative certificate and JWKS paths mean
 * what they mean to `weft gateway -f`. The token goes in WEFT_TOKEN.
 */
export function gatewayArgs(g: GatewayPlan, admin: number, server: string): string[] {
  return [
    "gateway",
    "--name",
    g.name,
    "--admin",
    `127.0.0.1:${admin}`,
    "--drain-timeout",
    GATEWAY_DRAIN,
    "--server",
    server,
  ];
}

/** The ACL policies of a gateway's token: write on each service it registers instances of. */
export function gatewayPolicies(g: GatewayPlan): string[] {
  return g.registers.map((s) => `service:${s}:write`);
}

export interface GatewayReady {
  type: string;
  /** Ingress: each listener's bound port; terminating: each external service's mTLS port. */
  listeners: { name: string; port: number }[];
  admin: number;
}

/**
 * Parses the line `weft gateway` prints on stdout once it serves:
 * `weft gateway ready name=edge type=ingress listeners=9090,9443 admin=41234`
 * or `... type=terminating services=payments:41001,legacy:41002 admin=41003`.
 * Undefined for any other line (or another gateway's).
 */
export function parseGatewayReady(line: string, name: string): GatewayReady | undefined {
  const m = /^weft gateway ready (.*)$/.exec(line.trim());
  if (!m) return undefined;
  const kv = new Map<string, string>();
  for (const part of (m[1] as string).split(" ")) {
    const eq = part.indexOf("=");
    if (eq > 0) kv.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const admin = Number(kv.get("admin"));
  if (kv.get("name") !== name || !Number.isInteger(admin)) return undefined;
  const listeners: GatewayReady["listeners"] = [];
  for (const p of (kv.get("listeners") ?? "").split(",").filter(Boolean)) {
    listeners.push({ name: `listener-${listeners.length}`, port: Number(p) });
  }
  for (const s of (kv.get("services") ?? "").split(",").filter(Boolean)) {
    const colon = s.lastIndexOf(":");
    listeners.push({ name: s.slice(0, colon), port: Number(s.slice(colon + 1)) });
  }
  if (listeners.some((l) => !Number.isInteger(l.port) || l.port <= 0)) return undefined;
  return { type: kv.get("type") ?? "", listeners, admin };
}
