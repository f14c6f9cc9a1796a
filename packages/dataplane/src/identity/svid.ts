import { X509Certificate } from "node:crypto";
import { parseWorkloadId, type WorkloadIdentity } from "@weft/api";
import { describeError } from "@weft/core";
import { type DatedCert, datedCert, MAX_CHAIN_CERTS, validatePath } from "./chain-path.js";
import { cacheGet, cachePut, svidCacheKey } from "./svid-cache.js";
import type { TrustBundle } from "./trust-bundle.js";
import * as x509 from "./x509.js";

/**
 * X.509-SVID verification (the SPIFFE X509-SVID spec), shared by the
 * proxy and the gateways. Every failure is a result with its own reason:
 * bad input from a peer never throws.
 */

export { clearSvidCache } from "./svid-cache.js";
export { TrustBundle } from "./trust-bundle.js";

/** In the order verifySvid checks them. */
export const SVID_REJECTIONS = [
  "no-certificate",
  "malformed",
  "untrusted",
  "expired",
  "not-yet-valid",
  "san-count",
  "san-invalid",
  "trust-domain",
  "leaf-is-ca",
  "key-usage",
  "ext-key-usage",
  "identity-mismatch",
] as const;

export type SvidRejection = (typeof SVID_REJECTIONS)[number];

export type SvidResult =
  | {
      ok: true;
      spiffeId: string;
      identity: WorkloadIdentity /** The leaf's notAfter, epoch ms. */;
      notAfter: number;
    }
  | { ok: false; reason: SvidRejection; detail: string };

export interface VerifyOptions {
  /** Epoch ms; default Date.now(). */
  now?: number;
  /** The service (or services) the caller expects the peer to be. */
  expectService?: string | readonly string[];
}

const OID_SAN = "2.5.29.17";
const OID_BASIC_CONSTRAINTS = "2.5.29.19";
const OID_KEY_USAGE = "2.5.29.15";
const OID_EXT_KEY_USAGE = "2.5.29.37";
const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

type Rejection = Extract<SvidResult, { ok: false }>;

/** Verifies a peer's chain (leaf first, then what the peer sent) against `bundle`. */
export function verifySvid(
  chainDer: readonly Buffer[],
  bundle: TrustBundle,
  opts: VerifyOptions = {},
): SvidResult {
  try {
    return verify(chainDer, bundle, opts);
  } catch (e) {
    // Every known failure is a result already; this is the net for input that surprises a parser.
    return reject("malformed", `certificate could not be examined: ${describeError(e)}`);
  }
}

function verify(chainDer: readonly Buffer[], bundle: TrustBundle, opts: VerifyOptions): SvidResult {
  if (chainDer.length === 0) return reject("no-certificate", "the peer presented no certificate");
  const now = opts.now ?? Date.now();
  const key = svidCacheKey(chainDer, bundle.id);
  const cached = cacheGet(key, now);
  if (cached) {
    return checkExpected(
      { ok: true, spiffeId: cached.spiffeId, identity: cached.identity, notAfter: cached.leafNotAfter },
      opts,
    );
  }

  if (chainDer.length > MAX_CHAIN_CERTS) {
    // Refused before parsing: a peer must not make us parse an unbounded list.
    return reject(
      "untrusted",
      `peer sent ${chainDer.length} certificates; at most ${MAX_CHAIN_CERTS} are accepted`,
    );
  }
  const parsed = parseChain(chainDer);
  if ("reason" in parsed) return parsed;
  const roots = bundle.roots.map((r, i) => datedCert(r, `root ${i}`));
  const path = validatePath(parsed.chain, roots, now);
  if (!path.ok) return path;

  const leaf = parsed.chain[0] as DatedCert;
  const svid = checkLeaf(parsed.extensions, bundle.trustDomain);
  if ("reason" in svid) return svid;

  cachePut(key, {
    spiffeId: svid.spiffeId,
    identity: svid.identity,
    leafNotAfter: leaf.notAfter,
    notBefore: path.notBefore,
    notAfter: path.notAfter,
  });
  return checkExpected({ ok: true, ...svid, notAfter: leaf.notAfter }, opts);
}

/** Parses every certificate with node:crypto and the leaf's extensions from its DER with @peculiar/x509. */
function parseChain(
  chainDer: readonly Buffer[],
): { chain: DatedCert[]; extensions: x509.Extension[] } | Rejection {
  const chain: DatedCert[] = [];
  for (const [i, der] of chainDer.entries()) {
    const label = i === 0 ? "leaf" : `chain[${i}]`;
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(der);
    } catch (e) {
      return reject("malformed", `${label} is not a DER certificate: ${describeError(e)}`);
    }
    const dated = datedCert(cert, label);
    if (Number.isNaN(dated.notBefore) || Number.isNaN(dated.notAfter)) {
      return reject("malformed", `${label} has an unreadable validity period`);
    }
    chain.push(dated);
  }
  let extensions: x509.Extension[];
  try {
    // Read `extensions` exactly once: the library caches an empty list when parsing throws.
    extensions = new x509.X509Certificate(chainDer[0] as Buffer).extensions;
  } catch (e) {
    return reject("malformed", `leaf extensions do not parse: ${describeError(e)}`);
  }
  const seen = new Set<string>();
  for (const ext of extensions) {
    if (seen.has(ext.type)) return reject("malformed", `leaf repeats extension ${ext.type}`);
    seen.add(ext.type);
  }
  return { chain, extensions };
}

/** The SPIFFE rules on the leaf itself: one valid URI SAN in our trust domain, not a CA, usable for mTLS. */
function checkLeaf(
  extensions: readonly x509.Extension[],
  trustDomain: string,
): { spiffeId: string; identity: WorkloadIdentity } | Rejection {
  const uris: string[] = [];
  for (const ext of extensions) {
    if (ext.type !== OID_SAN) continue;
    if (!(ext instanceof x509.SubjectAlternativeNameExtension))
      return reject("malformed", "leaf SAN does not parse");
    for (const name of ext.names.items) if (name.type === "url") uris.push(name.value);
  }
  const spiffeId = uris[0];
  if (spiffeId === undefined || uris.length !== 1) {
    return reject("san-count", `leaf has ${uris.length} URI SANs; an X.509-SVID has exactly one`);
  }
  const parsed = parseWorkloadId(spiffeId);
  if (!parsed.ok) return reject("san-invalid", parsed.reason);
  if (parsed.id.trustDomain !== trustDomain) {
    return reject(
      "trust-domain",
      `leaf is in trust domain "${parsed.id.trustDomain}"; this bundle is for "${trustDomain}"`,
    );
  }

  const bc = extensions.find((e) => e.type === OID_BASIC_CONSTRAINTS);
  if (bc !== undefined) {
    if (!(bc instanceof x509.BasicConstraintsExtension))
      return reject("malformed", "leaf basicConstraints does not parse");
    if (bc.ca) return reject("leaf-is-ca", "leaf has basicConstraints cA=true");
  }
  const ku = extensions.find((e) => e.type === OID_KEY_USAGE);
  if (ku !== undefined) {
    if (!(ku instanceof x509.KeyUsagesExtension)) return reject("malformed", "leaf keyUsage does not parse");
    if (ku.usages & (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)) {
      return reject("leaf-is-ca", "leaf keyUsage allows keyCertSign or cRLSign");
    }
    if (!(ku.usages & x509.KeyUsageFlags.digitalSignature)) {
      return reject("key-usage", "leaf keyUsage lacks digitalSignature");
    }
  }
  const eku = extensions.find((e) => e.type === OID_EXT_KEY_USAGE);
  if (eku !== undefined) {
    if (!(eku instanceof x509.ExtendedKeyUsageExtension)) {
      return reject("malformed", "leaf extKeyUsage does not parse");
    }
    const usages = eku.usages.map(String);
    const missing = [SERVER_AUTH, CLIENT_AUTH].filter((oid) => !usages.includes(oid));
    if (missing.length > 0) {
      return reject(
        "ext-key-usage",
        `leaf extKeyUsage lacks ${missing.join(" and ")} (serverAuth, clientAuth)`,
      );
    }
  }
  // Frozen: cached results share it.
  return { spiffeId, identity: Object.freeze(parsed.id) };
}

function checkExpected(ok: Extract<SvidResult, { ok: true }>, opts: VerifyOptions): SvidResult {
  if (opts.expectService === undefined) return ok;
  const allowed: readonly string[] =
    typeof opts.expectService === "string" ? [opts.expectService] : opts.expectService;
  if (allowed.includes(ok.identity.service)) return ok;
  return reject(
    "identity-mismatch",
    `peer is ${ok.spiffeId} (service "${ok.identity.service}"); expected ${allowed.map((s) => `"${s}"`).join(" or ")}`,
  );
}

function reject(reason: SvidRejection, detail: string): Rejection {
  return { ok: false, reason, detail };
}
