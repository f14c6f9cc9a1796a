/**
 * CA providers (habit 6; Consul's `ca.Provider` is the model): the part of
 * the CA that holds signing keys and produces certificates. The CA service
 * (ca-service.ts) owns everything else — which identity a caller may get,
 * lifetimes, rotation, the trust bundle and where records live — so a
 * provider backed by an external PKI only has to implement these calls.
 *
 * Contract (provider.suite.ts checks every implementation):
 * - `generateRoot` returns a self-signed CA certificate and the provider's
 *   private state for it (for the built-in provider, the PKCS#8 key). The
 *   state is stored with the root and handed back on every call; it is
 *   never served by the API.
 * - `signLeaf` issues an X.509-SVID for exactly the SPIFFE ID given (the
 *   caller has checked it), with the public key given, not a CA,
 *   digitalSignature, EKU server+client auth, within the given validity.
 * - `crossSign` re-issues `subject`'s root certificate (same subject, key
 *   and key identifier) signed by `issuer`, so that peers trusting only the
 *   issuer accept leaves of the subject during a rotation.
 * - Calls must not block the event loop for long (WebCrypto is async).
 */
import { weftError } from "@weft/core";
import type { PublicKey } from "./x509.js";

export interface RootKeyMaterial {
  certPem: string;
  /** Provider-private state (e.g. the key). Stored, never served. */
  privateState: string;
}

export interface GenerateRootRequest {
  id: string;
  trustDomain: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
}

export interface SignLeafRequest {
  spiffeId: string;
  /** For the subject's CN (informational; identity is the URI SAN). */
  commonName: string;
  publicKey: PublicKey;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
}

export interface CaProvider {
  readonly name: string;
  generateRoot(req: GenerateRootRequest): Promise<RootKeyMaterial>;
  signLeaf(root: RootKeyMaterial, req: SignLeafRequest): Promise<string>;
  crossSign(
    issuer: RootKeyMaterial,
    subject: { certPem: string },
    req: { serialNumber: string; notAfter: Date },
  ): Promise<string>;
}

export interface CaProviderFactory<C = unknown> {
  /** Validates the provider's settings; throws WEFT_ERR_CONFIG_INVALID naming the field. */
  parseConfig(raw: unknown): C;
  create(config: C): CaProvider;
}

const registry = new Map<string, CaProviderFactory>();

export function registerCaProvider<C>(name: string, factory: CaProviderFactory<C>): void {
  registry.set(name, factory as CaProviderFactory);
}

export function createCaProvider(name: string, rawConfig: unknown = {}): CaProvider {
  const f = registry.get(name);
  if (!f) {
    throw weftError("WEFT_ERR_CONFIG_INVALID", {
      detail: `unknown CA provider "${name}"; registered: ${[...registry.keys()].join(", ")}`,
    });
  }
  return f.create(f.parseConfig(rawConfig));
}
