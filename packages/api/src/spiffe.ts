/**
 * SPIFFE IDs (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md)
 * and Weft's workload identity `spiffe://<trust-domain>/ns/<namespace>/svc/<service>`.
 *
 * Pure string rules shared by the CA (what it signs), the data plane (what it
 * accepts from a peer) and the CLI. The string given here must come from the
 * certificate's DER (the URI SAN), never from a formatted description of it.
 */
import { NAME_PATTERN } from "./patterns.js";

/** Workloads live in one namespace until namespaces exist. */
export const DEFAULT_NAMESPACE = "default";

/** The SPIFFE spec's upper bound on an ID's length, in bytes. */
export const SPIFFE_ID_MAX_BYTES = 2048;

const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]+$/;
const SEGMENT_CHARS = /^[A-Za-z0-9._-]+$/;

export interface SpiffeId {
  trustDomain: string;
  /** Path segments after the trust domain, e.g. ["ns", "default", "svc", "api"]. */
  segments: string[];
}

export interface WorkloadIdentity {
  trustDomain: string;
  namespace: string;
  service: string;
}

export type SpiffeParse<T> = { ok: true; id: T } | { ok: false; reason: string };

/** Parses a SPIFFE ID per the spec: scheme, bare trust domain, clean path, no query or fragment. */
export function parseSpiffeId(text: string): SpiffeParse<SpiffeId> {
  if (text.length > SPIFFE_ID_MAX_BYTES || new TextEncoder().encode(text).length > SPIFFE_ID_MAX_BYTES) {
    return { ok: false, reason: `longer than ${SPIFFE_ID_MAX_BYTES} bytes` };
  }
  const prefix = "spiffe://";
  if (!text.startsWith(prefix)) return { ok: false, reason: 'scheme is not "spiffe://"' };
  const rest = text.slice(prefix.length);
  if (rest.includes("?")) return { ok: false, reason: "has a query" };
  if (rest.includes("#")) return { ok: false, reason: "has a fragment" };
  const slash = rest.indexOf("/");
  const td = slash < 0 ? rest : rest.slice(0, slash);
  if (td === "") return { ok: false, reason: "trust domain is empty" };
  if (td.includes("@")) return { ok: false, reason: "trust domain has userinfo" };
  if (td.includes(":")) return { ok: false, reason: "trust domain has a port" };
  if (!TRUST_DOMAIN_CHARS.test(td)) {
    return { ok: false, reason: "trust domain has characters other than a-z 0-9 . - _" };
  }
  if (slash < 0) return { ok: true, id: { trustDomain: td, segments: [] } };
  const segments = rest.slice(slash + 1).split("/");
  for (const s of segments) {
    if (s === "") return { ok: false, reason: "path has an empty segment" };
    if (s === "." || s === "..") return { ok: false, reason: "path has a dot segment" };
    if (!SEGMENT_CHARS.test(s))
      return { ok: false, reason: "path has characters other than A-Z a-z 0-9 . - _" };
  }
  return { ok: true, id: { trustDomain: td, segments } };
}

/** Parses a Weft workload identity; any other SPIFFE ID shape is refused with the reason. */
export function parseWorkloadId(text: string): SpiffeParse<WorkloadIdentity> {
  const p = parseSpiffeId(text);
  if (!p.ok) return p;
  const s = p.id.segments;
  if (s.length !== 4 || s[0] !== "ns" || s[2] !== "svc") {
    return { ok: false, reason: "path is not /ns/<namespace>/svc/<service>" };
  }
  const namespace = s[1] as string;
  const service = s[3] as string;
  if (!NAME_PATTERN.test(namespace))
    return { ok: false, reason: `namespace "${namespace}" is not a DNS label` };
  if (!NAME_PATTERN.test(service)) return { ok: false, reason: `service "${service}" is not a DNS label` };
  return { ok: true, id: { trustDomain: p.id.trustDomain, namespace, service } };
}

export function workloadId(trustDomain: string, service: string, namespace = DEFAULT_NAMESPACE): string {
  return `spiffe://${trustDomain}/ns/${namespace}/svc/${service}`;
}
