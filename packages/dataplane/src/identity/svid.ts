import { X509Certificate } from "node:crypto";
import { parseWorkloadId, type WorkloadIdentity } from "@weft/api/spiffe";
import { DerError, describeError } from "@weft/core";
import { type DatedCert, datedCert, MAX_CHAIN_CERTS, validatePath } from "./chain-path.js";
import { KEY_USAGE, type LeafExtensions, OID, readLeafExtensions } from "./leaf-extensions.js";
import { type CachedSvid, cacheGet, cachePut, svidCacheKey } from "./svid-cache.js";
import type { TrustBundle } from "./trust-bundle.js";

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

/**
 * The cached verdict for a leaf already verified against `bundle`, without
 * reading the peer's intermediates; undefined when it must be verified in full.
 */
export function verifyCachedLeaf(
  leafDer: Buffer,
  bundle: TrustBundle,
  opts: VerifyOptions = {},
): SvidResult | undefined {
  const cached = cacheGet(svidCacheKey(leafDer, bundle.id), opts.now ?? Date.now());
  return cached && fromCache(cached, opts);
}

function fromCache(cached: CachedSvid, opts: VerifyOptions): SvidResult {
  return checkExpected(
    { ok: true, spiffeId: cached.spiffeId, identity: cached.identity, notAfter: cached.leafNotAfter },
    opts,
  );
}

function verify(chainDer: readonly Buffer[], bundle: TrustBundle, opts: VerifyOptions): SvidResult {
  if (chainDer.length === 0) return reject("no-certificate", "the peer presented no certificate");
  const now = opts.now ?? Date.now();
  const key = svidCacheKey(chainDer[0] as Buffer, bundle.id);
  const cached = cacheGet(key, now);
  if (cached) return fromCache(cached, opts);

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

/** Parses every certificate with node:crypto and the leaf's extensions from its DER (leaf-extensions.ts). */
function parseChain(
  chainDer: readonly Buffer[],
): { chain: DatedCert[]; extensions: LeafExtensions } | Rejection {
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
  let extensions: LeafExtensions;
  try {
    extensions = readLeafExtensions(chainDer[0] as Buffer);
  } catch (e) {
    const why = e instanceof DerError ? e.message : describeError(e);
    return reject("malformed", `leaf extensions do not parse: ${why}`);
  }
  const seen = new Set<string>();
  for (const oid of extensions.oids) {
    if (seen.has(oid)) return reject("malformed", `leaf repeats extension ${oid}`);
    seen.add(oid);
  }
  // Node (OpenSSL) read basicConstraints too: a disagreement means a parser confusion; refuse.
  if ((extensions.ca ?? false) !== leafCa(chain[0] as DatedCert)) {
    return reject("malformed", "leaf basicConstraints read differently by two parsers");
  }
  return { chain, extensions };
}

/** The SPIFFE rules on the leaf itself: one valid URI SAN in our trust domain, not a CA, usable for mTLS. */
function checkLeaf(
  extensions: LeafExtensions,
  trustDomain: string,
): { spiffeId: string; identity: WorkloadIdentity } | Rejection {
  const uris = extensions.uris;
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
  if (extensions.ca) return reject("leaf-is-ca", "leaf has basicConstraints cA=true");
  const ku = extensions.keyUsage;
  if (ku !== undefined) {
    if (ku.has(KEY_USAGE.keyCertSign) || ku.has(KEY_USAGE.cRLSign)) {
      return reject("leaf-is-ca", "leaf keyUsage allows keyCertSign or cRLSign");
    }
    if (!ku.has(KEY_USAGE.digitalSignature)) {
      return reject("key-usage", "leaf keyUsage lacks digitalSignature");
    }
  }
  const eku = extensions.extKeyUsage;
  if (eku !== undefined) {
    const missing = [OID.serverAuth, OID.clientAuth].filter((oid) => !eku.includes(oid));
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

/** OpenSSL's view of the leaf's basicConstraints cA. */
function leafCa(leaf: DatedCert): boolean {
  return leaf.cert.ca;
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
