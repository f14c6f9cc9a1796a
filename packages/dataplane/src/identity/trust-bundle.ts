import { createHash, X509Certificate } from "node:crypto";
import { parseSpiffeId } from "@weft/api/spiffe";
import { describeError, weftError } from "@weft/core";

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * The roots a verifier trusts for one trust domain. Roots are parsed once
 * here because the proxy verifies a peer chain on every handshake.
 */
export class TrustBundle {
  readonly trustDomain: string;
  /** One PEM certificate per root, as given (a string holding several is split). */
  readonly rootsPem: readonly string[];
  readonly roots: readonly X509Certificate[];
  /** sha256 over the trust domain and every root's DER: the bundle's identity in caches. */
  readonly id: string;

  private constructor(trustDomain: string, rootsPem: string[], roots: X509Certificate[]) {
    this.trustDomain = trustDomain;
    this.rootsPem = Object.freeze(rootsPem);
    this.roots = Object.freeze(roots);
    const h = createHash("sha256").update(trustDomain).update("\0");
    for (const r of roots) h.update(r.raw);
    this.id = h.digest("hex");
  }

  /** Throws WEFT_ERR_CONFIG_INVALID for a trust domain that is not bare or a root that does not parse. */
  static fromPem(trustDomain: string, rootsPem: readonly string[]): TrustBundle {
    const td = parseSpiffeId(`spiffe://${trustDomain}`);
    if (!td.ok || td.id.trustDomain !== trustDomain) {
      const why = td.ok ? "not a bare trust domain" : td.reason;
      throw weftError("WEFT_ERR_CONFIG_INVALID", {
        detail: `trust bundle: trust domain "${trustDomain}": ${why}`,
      });
    }
    const pems: string[] = [];
    const roots: X509Certificate[] = [];
    rootsPem.forEach((text, i) => {
      const blocks = text.match(PEM_BLOCK) ?? [];
      if (blocks.length === 0) {
        throw weftError("WEFT_ERR_CONFIG_INVALID", {
          detail: `trust bundle: root ${i} holds no PEM certificate`,
        });
      }
      for (const pem of blocks) {
        try {
          roots.push(new X509Certificate(pem));
        } catch (e) {
          throw weftError(
            "WEFT_ERR_CONFIG_INVALID",
            { detail: `trust bundle: root ${i} does not parse: ${describeError(e)}` },
            { cause: e },
          );
        }
        pems.push(`${pem}\n`);
      }
    });
    return new TrustBundle(trustDomain, pems, roots);
  }
}
