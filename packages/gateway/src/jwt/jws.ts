/**
 * JWS compact serialization (RFC 7515) verified with node:crypto only: no
 * JOSE library is installed, and the part that matters is small. Only
 * asymmetric algorithms exist here (the Gateway schema's allowlist):
 * `none` and HMAC are not "disabled", they are absent, so the classic
 * confusions (`alg: none`, HS256 signed with the RSA public key used as the
 * secret) cannot be expressed, let alone accepted.
 *
 * Every function returns a result union; nothing here throws on hostile
 * input (a throw on the hot path would be a 500).
 */
import { constants, createPublicKey, type KeyObject, verify } from "node:crypto";

export const JWS_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;
export type JwsAlgorithm = (typeof JWS_ALGORITHMS)[number];

/** Tokens larger than this are refused before any parsing (amplification). */
export const MAX_TOKEN_BYTES = 8 * 1024;
/** RSA keys shorter than this are refused when a JWKS is loaded. */
export const MIN_RSA_BITS = 2048;

interface AlgSpec {
  hash: "sha256" | "sha384" | "sha512" | null;
  kty: "RSA" | "EC" | "OKP";
  pss?: boolean;
  curve?: string;
}

const SPECS: Record<JwsAlgorithm, AlgSpec> = {
  RS256: { hash: "sha256", kty: "RSA" },
  RS384: { hash: "sha384", kty: "RSA" },
  RS512: { hash: "sha512", kty: "RSA" },
  PS256: { hash: "sha256", kty: "RSA", pss: true },
  PS384: { hash: "sha384", kty: "RSA", pss: true },
  PS512: { hash: "sha512", kty: "RSA", pss: true },
  ES256: { hash: "sha256", kty: "EC", curve: "prime256v1" },
  ES384: { hash: "sha384", kty: "EC", curve: "secp384r1" },
  ES512: { hash: "sha512", kty: "EC", curve: "secp521r1" },
  EdDSA: { hash: null, kty: "OKP" },
};

export function isJwsAlgorithm(v: unknown): v is JwsAlgorithm {
  return typeof v === "string" && Object.hasOwn(SPECS, v);
}

/** A public key from a JWKS, imported once. */
export interface Jwk {
  kid: string | undefined;
  /** The JWK's own `alg`, when it names one: the key is then used with that algorithm only. */
  alg: JwsAlgorithm | undefined;
  kty: AlgSpec["kty"];
  key: KeyObject;
}

export type JwkResult = { ok: true; jwk: Jwk } | { ok: false; reason: string };

/** Imports one JWKS entry; private parts and symmetric keys are refused. */
export function importJwk(raw: unknown): JwkResult {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    return { ok: false, reason: "not an object" };
  const j = raw as Record<string, unknown>;
  if (j.kty !== "RSA" && j.kty !== "EC" && j.kty !== "OKP") {
    return { ok: false, reason: `key type ${JSON.stringify(j.kty)} is not an asymmetric public key` };
  }
  if (j.d !== undefined) return { ok: false, reason: "a JWKS must not hold private keys" };
  if (j.use !== undefined && j.use !== "sig") return { ok: false, reason: `use ${JSON.stringify(j.use)}` };
  if (j.kid !== undefined && typeof j.kid !== "string") return { ok: false, reason: "kid is not a string" };
  let alg: JwsAlgorithm | undefined;
  if (j.alg !== undefined) {
    if (!isJwsAlgorithm(j.alg)) return { ok: false, reason: `alg ${JSON.stringify(j.alg)} is not allowed` };
    alg = j.alg;
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: j as import("node:crypto").JsonWebKey, format: "jwk" });
  } catch (e) {
    return { ok: false, reason: `not a valid key: ${(e as Error).message}` };
  }
  if (j.kty === "RSA" && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
    return { ok: false, reason: `RSA key shorter than ${MIN_RSA_BITS} bits` };
  }
  return { ok: true, jwk: { kid: j.kid as string | undefined, alg, kty: j.kty, key } };
}

/** The parts of a token before its signature is checked. Nothing in it is trusted yet. */
export interface DecodedJws {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  signingInput: Buffer;
  signature: Buffer;
}

export type DecodeResult = { ok: true; jws: DecodedJws } | { ok: false; reason: string };

const B64URL = /^[A-Za-z0-9_-]*$/;

function jsonObject(part: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
    return typeof v === "object" && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

export function decodeJws(token: string): DecodeResult {
  if (token.length > MAX_TOKEN_BYTES) return { ok: false, reason: "token too large" };
  const parts = token.split(".");
  if (parts.length !== 3) return { ok: false, reason: "malformed token" };
  const [h, p, s] = parts as [string, string, string];
  if (h === "" || p === "" || !B64URL.test(h) || !B64URL.test(p) || !B64URL.test(s)) {
    return { ok: false, reason: "malformed token" };
  }
  const header = jsonObject(h);
  const payload = jsonObject(p);
  if (header === undefined || payload === undefined) return { ok: false, reason: "malformed token" };
  // A critical extension we do not understand must not be ignored (RFC 7515 §4.1.11).
  if (header.crit !== undefined) return { ok: false, reason: "unsupported critical header" };
  return {
    ok: true,
    jws: { header, payload, signingInput: Buffer.from(`${h}.${p}`), signature: Buffer.from(s, "base64url") },
  };
}

/** Checks the signature of `jws` with `jwk` under `alg`; false for any mismatch of key and algorithm. */
export function verifySignature(jws: DecodedJws, alg: JwsAlgorithm, jwk: Jwk): boolean {
  const spec = SPECS[alg];
  if (jwk.kty !== spec.kty) return false;
  if (jwk.alg !== undefined && jwk.alg !== alg) return false;
  const details = jwk.key.asymmetricKeyDetails;
  if (spec.curve !== undefined && details?.namedCurve !== spec.curve) return false;
  const type = jwk.key.asymmetricKeyType;
  if (spec.kty === "OKP" && type !== "ed25519" && type !== "ed448") return false;
  try {
    if (spec.kty === "RSA") {
      return verify(
        spec.hash,
        jws.signingInput,
        {
          key: jwk.key,
          padding: spec.pss ? constants.RSA_PKCS1_PSS_PADDING : constants.RSA_PKCS1_PADDING,
          ...(spec.pss ? { saltLength: constants.RSA_PSS_SALTLEN_DIGEST } : {}),
        },
        jws.signature,
      );
    }
    if (spec.kty === "EC") {
      return verify(spec.hash, jws.signingInput, { key: jwk.key, dsaEncoding: "ieee-p1363" }, jws.signature);
    }
    return verify(null, jws.signingInput, jwk.key, jws.signature);
  } catch {
    return false;
  }
}
