import type { X509Certificate } from "node:crypto";

/**
 * Certification path validation for X.509-SVIDs, done by us with node:crypto
 * so that each failure has its own reason (OpenSSL's verdict is one string).
 * Work is bounded: a hostile peer must not turn a handshake into a search.
 */

/** The most certificates we look at from a peer (leaf included). */
export const MAX_CHAIN_CERTS = 8;
/** The most peer certificates on one path (leaf and intermediates; the bundle root is extra). */
export const MAX_PATH_CERTS = 5;
/** Complete paths tried before giving up (each costs only memoised edge look-ups). */
const MAX_CANDIDATES = 16;

/** A certificate with its validity period in epoch ms. */
export interface DatedCert {
  cert: X509Certificate;
  notBefore: number;
  notAfter: number;
  /** "leaf", "chain[1]", "root 0": where a failure points. */
  label: string;
}

export type PathResult =
  | {
      ok: true;
      /** Leaf first, trust anchor last. */
      path: DatedCert[];
      /** When every certificate on the path is valid: [notBefore, notAfter]. */
      notBefore: number;
      notAfter: number;
    }
  | { ok: false; reason: "untrusted" | "expired" | "not-yet-valid"; detail: string };

export function datedCert(cert: X509Certificate, label: string): DatedCert {
  return { cert, label, notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo) };
}

/**
 * Finds a path leaf → (intermediates from `chain`, each a CA) → a root.
 * Roots are tried before intermediates, so a verifier that already trusts a
 * new root stops there instead of walking a cross-signed bridge. Dates are
 * checked on each complete path; the first fully valid one wins, otherwise
 * the first date failure is reported, so an expired leaf from our own CA is
 * "expired" and not "untrusted".
 */
export function validatePath(
  chain: readonly DatedCert[],
  roots: readonly DatedCert[],
  now: number,
): PathResult {
  const leaf = chain[0];
  if (leaf === undefined) return { ok: false, reason: "untrusted", detail: "no certificate" };
  if (chain.length > MAX_CHAIN_CERTS) {
    return {
      ok: false,
      reason: "untrusted",
      detail: `peer sent ${chain.length} certificates; at most ${MAX_CHAIN_CERTS} are accepted`,
    };
  }
  const issued = memoIssued();
  let dateFailure: PathResult | undefined;
  let candidates = 0;
  let tooLong = false;

  // Returns a valid path, or undefined to keep searching.
  const consider = (path: DatedCert[]): PathResult | undefined => {
    candidates++;
    const bad = checkDates(path, now);
    if (bad === undefined) return validPath(path);
    dateFailure ??= bad;
    return undefined;
  };

  const search = (path: DatedCert[]): PathResult | undefined => {
    const top = path[path.length - 1] as DatedCert;
    for (const root of roots) {
      if (candidates >= MAX_CANDIDATES) return undefined;
      const anchored = top.cert.raw.equals(root.cert.raw)
        ? consider(path)
        : issued(top, root)
          ? consider([...path, root])
          : undefined;
      if (anchored) return anchored;
    }
    for (const next of chain) {
      if (candidates >= MAX_CANDIDATES) return undefined;
      if (path.includes(next) || next.cert.ca !== true || !issued(top, next)) continue;
      if (path.length >= MAX_PATH_CERTS) {
        tooLong = true;
        continue;
      }
      const found = search([...path, next]);
      if (found) return found;
    }
    return undefined;
  };

  return (
    search([leaf]) ??
    dateFailure ?? {
      ok: false,
      reason: "untrusted",
      detail: tooLong
        ? `no path of at most ${MAX_PATH_CERTS} certificates from the leaf to a root of the trust bundle`
        : `no path from the leaf (issuer "${oneLine(leaf.cert.issuer)}") to a root of the trust bundle`,
    }
  );
}

/** `child` names `issuer` as its issuer (names, key identifiers, keyCertSign) and carries its signature. */
function memoIssued(): (child: DatedCert, issuer: DatedCert) => boolean {
  const memo = new Map<DatedCert, Map<DatedCert, boolean>>();
  return (child, issuer) => {
    let row = memo.get(child);
    if (row === undefined) {
      row = new Map();
      memo.set(child, row);
    }
    let ok = row.get(issuer);
    if (ok === undefined) {
      try {
        ok = child.cert.checkIssued(issuer.cert) && child.cert.verify(issuer.cert.publicKey);
      } catch {
        ok = false;
      }
      row.set(issuer, ok);
    }
    return ok;
  };
}

function checkDates(path: readonly DatedCert[], now: number): PathResult | undefined {
  for (const c of path) {
    if (now > c.notAfter) {
      return {
        ok: false,
        reason: "expired",
        detail: `${c.label} ("${oneLine(c.cert.subject)}") expired at ${new Date(c.notAfter).toISOString()}`,
      };
    }
    if (now < c.notBefore) {
      return {
        ok: false,
        reason: "not-yet-valid",
        detail: `${c.label} ("${oneLine(c.cert.subject)}") is not valid before ${new Date(c.notBefore).toISOString()}`,
      };
    }
  }
  return undefined;
}

function validPath(path: DatedCert[]): PathResult {
  return {
    ok: true,
    path,
    notBefore: Math.max(...path.map((c) => c.notBefore)),
    notAfter: Math.min(...path.map((c) => c.notAfter)),
  };
}

/** Node prints distinguished names one attribute per line. */
function oneLine(name: string): string {
  return name.replace(/\n/g, ", ");
}
