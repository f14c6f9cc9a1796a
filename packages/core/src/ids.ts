import { createHash, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";

/** A random UUID (v4), for instance ids and token accessors. */
export function newId(): string {
  return randomUUID();
}

/** A short random id for log references: 12 hex chars. */
export function shortId(): string {
  return randomBytes(6).toString("hex");
}

/** A bearer secret: 32 random bytes, base64url (43 chars). */
export function newSecret(): string {
  return randomBytes(32).toString("base64url");
}

/** SHA-256 hex of a secret: the only form in which secrets are stored. */
export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** Constant-time comparison of two hex digests of equal length. */
export function digestsEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}
