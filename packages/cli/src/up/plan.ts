/**
 * From a `weft up` file to what to run, checked before anything starts:
 *
 *   text -> validateFile (api: YAML, kinds, unknown fields, schemas, and the
 *           local-mesh set rules: every upstream names a service some Workload
 *           provides, no host port claimed twice)
 *        -> at least one Workload; no Gateway of type mesh (`weft gateway`
 *           runs ingress and terminating gateways only)
 *        -> host ports free now (fixed app ports, upstream local ports, gateway
 *           listener ports, the control plane's --listen): each is bound once
 *           (127.0.0.1, or the listener's address) and released; one in use is
 *           an error at its file:line and field.
 *
 * Errors are rendered by the api package (`file:line:col: Kind "name": path:
 * message`), so `weft up`, `weft validate` and `weft apply` read alike. The
 * result is a plan: the Workloads (defaults applied), the Gateways to run,
 * and the other resources as written (Gateways included), for the control
 * plane.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, resolve } from "node:path";
import {
  type Gateway,
  parseDocuments,
  renderError,
  type SourceDocument,
  validateFile,
  type Workload,
  type WorkloadHealth,
} from "@weft/api";
import { WeftError } from "@weft/core";
import { errnoDetail } from "../files.js";

export interface HealthPlan {
  kind: "http" | "tcp" | "grpc";
  /** HTTP path, or the gRPC service name (absent: the server as a whole). */
  path?: string;
  grpcService?: string;
  intervalMs: number;
  timeoutMs: number;
}

export interface WorkloadPlan {
  name: string;
  service: string;
  command: string[];
  /** Absolute: the Workload's `cwd` resolved against the file's directory (default: that directory). */
  cwd: string;
  replicas: number;
  protocol: "tcp" | "http" | "http2" | "grpc";
  /** Fixed app port (one replica only). */
  port: number | undefined;
  health: HealthPlan;
  upstreams: { service: string; localPort: number }[];
  env: Record<string, string>;
  tags: string[];
  meta: Record<string, string>;
}

/** A Gateway `weft up` runs as a `weft gateway --name NAME` process. */
export interface GatewayPlan {
  name: string;
  type: "ingress" | "terminating";
  /** Ingress: the listeners as written (their ports are fixed by the file). */
  listeners: { port: number; address: string; protocol: string }[];
  /**
   * The catalog services the process registers instances of, so the ACL token
   * it gets names them: the gateway's own name (ingress), or each external
   * service (terminating: one sidecar-like instance per service).
   */
  registers: string[];
}

export interface UpPlan {
  /** Absolute path of the file. */
  file: string;
  /** Its directory: apps run there unless their Workload says `cwd`. */
  dir: string;
  workloads: WorkloadPlan[];
  /** Every non-Workload resource, as written: applied to the control plane. */
  resources: unknown[];
  /** The Gateways, in file order: applied with `resources`, then each run as a process. */
  gateways: GatewayPlan[];
}

export type PlanResult =
  | {
      ok: true;
      plan: UpPlan /** Parsed documents, for positions in later checks. */;
      documents: SourceDocument[];
    }
  | { ok: false; errors: string[] };

function healthPlan(h: WorkloadHealth | undefined): HealthPlan {
  // No health block: the sidecar checks that the app accepts TCP connections (as `weft proxy` does).
  if (!h) return { kind: "tcp", intervalMs: 10_000, timeoutMs: 2_000 };
  const base = { intervalMs: h.interval, timeoutMs: h.timeout };
  if (h.http !== undefined) return { kind: "http", path: h.http, ...base };
  if (h.grpc !== undefined) {
    return typeof h.grpc === "string"
      ? { kind: "grpc", grpcService: h.grpc, ...base }
      : { kind: "grpc", ...base };
  }
  return { kind: "tcp", ...base };
}

function gatewayPlan(g: Gateway & { type: "ingress" | "terminating" }): GatewayPlan {
  return {
    name: g.name,
    type: g.type,
    listeners: g.listeners.map((l) => ({ port: l.port, address: l.address, protocol: l.protocol })),
    registers: g.type === "ingress" ? [g.name] : (g.services ?? []).map((s) => s.name),
  };
}

function workloadPlan(w: Workload, dir: string): WorkloadPlan {
  return {
    name: w.name,
    service: w.service,
    command: [...w.command],
    cwd: w.cwd === undefined ? dir : resolve(dir, w.cwd),
    replicas: w.replicas,
    protocol: w.protocol,
    port: w.port,
    health: healthPlan(w.health),
    upstreams: w.upstreams.map((u) => ({ service: u.service, localPort: u.localPort })),
    env: { ...w.env },
    tags: [...w.tags],
    meta: { ...w.meta },
  };
}

/**
 * Reads and checks `file` (no port checks: see `checkPorts`). `displayName`
 * is how errors name the file (the path as the user gave it).
 */
export function planFile(file: string, displayName = file): PlanResult {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new WeftError("WEFT_ERR_USAGE", { detail: `cannot read ${displayName}: ${errnoDetail(e)}` });
  }
  const checked = validateFile(text, displayName, { localMesh: true });
  if (checked.errors.length > 0) return { ok: false, errors: checked.errors.map((e) => e.text) };
  // Valid: the api kept one resource per non-empty document, in order, so the
  // parsed documents line up with `checked.resources` (for positions below).
  const documents = parseDocuments(text).documents;
  const dir = dirname(resolve(file));
  const workloads: WorkloadPlan[] = [];
  const resources: unknown[] = [];
  const gateways: GatewayPlan[] = [];
  const errors: string[] = [];
  checked.resources.forEach((r, i) => {
    if (r.kind === "Workload") workloads.push(workloadPlan(r, dir));
    else {
      resources.push(documents[i]?.value);
      if (r.kind !== "Gateway") return;
      if (r.type === "mesh") {
        // Refused rather than skipped: `weft up` promises to run every Gateway of the file.
        errors.push(
          `${fieldAt(documents[i], displayName, `Gateway ${JSON.stringify(r.name)}`, ["type"])}: ` +
            "mesh gateways are not supported by weft gateway yet, so weft up cannot run it; " +
            "remove it from this file (weft apply can still store it)",
        );
      } else gateways.push(gatewayPlan({ ...r, type: r.type }));
    }
  });
  if (errors.length > 0) return { ok: false, errors };
  if (workloads.length === 0) {
    return {
      ok: false,
      errors: [
        `${displayName}:1:1: file: no Workload to run; weft up needs at least one (kind: Workload); use weft apply for config alone`,
      ],
    };
  }
  return { ok: true, plan: { file: resolve(file), dir, workloads, resources, gateways }, documents };
}

/** `weft.yaml:12:9: Workload "web": upstreams[0].localPort`: a field of a parsed document. */
function fieldAt(
  doc: SourceDocument | undefined,
  displayName: string,
  document: string,
  path: (string | number)[],
): string {
  const pos = doc?.locate(path) ?? { line: 1, column: 1 };
  return renderError({
    file: displayName,
    line: pos.line,
    column: pos.column,
    document,
    path,
    message: "",
  }).replace(/: $/, "");
}

/** The field locator for the i-th document of `kind` in the file. */
function kindField(
  documents: readonly SourceDocument[],
  displayName: string,
  kind: "Workload" | "Gateway",
): (i: number, name: string, path: (string | number)[]) => string {
  const docs = documents.filter((d) => (d.value as { kind?: unknown } | null | undefined)?.kind === kind);
  return (i, name, path) => fieldAt(docs[i], displayName, `${kind} ${JSON.stringify(name)}`, path);
}

/** A host port the plan will bind, and where the file asks for it. */
export interface PortClaim {
  port: number;
  /** Rendered location: `weft.yaml:12:9: Workload "web": upstreams[0].localPort`. */
  where: string;
  /** Where it is bound; default 127.0.0.1. */
  host?: string;
}

/** The fixed host ports of a plan with their file positions. */
export function portClaims(
  plan: UpPlan,
  documents: readonly SourceDocument[],
  displayName: string,
): PortClaim[] {
  const claims: PortClaim[] = [];
  const at = kindField(documents, displayName, "Workload");
  plan.workloads.forEach((w, i) => {
    if (w.port !== undefined) claims.push({ port: w.port, where: at(i, w.name, ["port"]) });
    w.upstreams.forEach((u, j) => {
      claims.push({ port: u.localPort, where: at(i, w.name, ["upstreams", j, "localPort"]) });
    });
  });
  // Mesh gateways never get here (planFile refuses them), so the i-th planned gateway is the i-th Gateway document.
  const gw = kindField(documents, displayName, "Gateway");
  plan.gateways.forEach((g, i) => {
    g.listeners.forEach((l, j) => {
      claims.push({ port: l.port, host: l.address, where: gw(i, g.name, ["listeners", j, "port"]) });
    });
  });
  return claims;
}

/** Resolves to undefined when `port` can be bound on `host` now, else to the reason. */
export function portInUse(port: number, host = "127.0.0.1"): Promise<string | undefined> {
  return new Promise((done) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", (e: NodeJS.ErrnoException) => {
      done(
        e.code === "EADDRINUSE"
          ? `port ${port} is already in use on ${host} (another process listens there)`
          : e.code === "EACCES"
            ? `port ${port} on ${host} may not be bound by this user`
            : `port ${port} on ${host} cannot be bound: ${e.message}`,
      );
    });
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => done(undefined)));
  });
}

/** Errors (rendered) for every claimed port that cannot be bound now. */
export async function checkPorts(claims: readonly PortClaim[]): Promise<string[]> {
  const results = await Promise.all(
    claims.map(async (c) => ({ c, problem: await portInUse(c.port, c.host) })),
  );
  return results.filter((r) => r.problem !== undefined).map((r) => `${r.c.where}: ${r.problem}`);
}
