/**
 * The CA's wire contract: the trust bundle (`GET /v1/ca/roots`), signing a
 * CSR (`POST /v1/ca/sign`) and root rotation (`POST /v1/ca/rotate`).
 * docs/api.md describes the endpoints; this file is what both sides parse.
 */
import { z } from "zod";
import { durationSchema, instanceIdSchema } from "./names.js";

/** A PEM CSR is well under this; the bound keeps a hostile body cheap to refuse. */
export const MAX_CSR_PEM_BYTES = 16 * 1024;

export const signRequestSchema = z.strictObject({
  /** PKCS#10 CSR in PEM, carrying exactly one URI SAN: the workload's SPIFFE ID. */
  csr: z.string().min(1).max(MAX_CSR_PEM_BYTES),
  /** Requested lifetime; default the mesh's `certificates.leafTtl`, at most `maxLeafTtl`. */
  ttl: durationSchema.refine((ms) => ms >= 1000, "must be at least 1s").optional(),
  /** The instance the certificate is for, so `weft instances` can show its expiry and a renewal replaces it. */
  instanceId: instanceIdSchema.optional(),
});
export type SignRequest = z.input<typeof signRequestSchema>;

export type RootState = "active" | "retiring";

export interface CaRoot {
  id: string;
  /** Self-signed root certificate (PEM). The private key is never served. */
  certificatePem: string;
  serialNumber: string;
  /** SHA-256 of the DER, hex with colons (as `openssl x509 -fingerprint -sha256`). */
  fingerprintSha256: string;
  notBefore: string;
  notAfter: string;
  /**
   * "active": signs new leaves. "retiring": replaced by a rotation; stays in
   * the bundle until every leaf it signed has expired or been replaced.
   */
  state: RootState;
  /** Leaves signed by this root that are still valid and not replaced. */
  leavesOutstanding: number;
}

export interface CaRootsResponse {
  trustDomain: string;
  activeRootId: string;
  roots: CaRoot[];
  /** Index for blocking reads of the bundle. */
  index: number;
}

export interface SignResponse {
  spiffeId: string;
  service: string;
  serialNumber: string;
  /** The leaf (PEM). */
  certificatePem: string;
  /**
   * What to present in a handshake: the leaf, then any intermediate (during a
   * root rotation, the new root cross-signed by the old one, so that peers
   * that do not yet trust the new root still accept the leaf).
   */
  chainPem: string;
  rootId: string;
  notBefore: string;
  notAfter: string;
  /** The trust bundle at signing time: every root to trust (PEM). */
  rootsPem: string[];
  trustDomain: string;
}

export interface RotateResponse {
  activeRootId: string;
  previousRootId: string;
  roots: CaRoot[];
}

/** What `weft instances` shows of an instance's certificate. */
export interface InstanceCertificate {
  serialNumber: string;
  rootId: string;
  notAfter: string;
}
