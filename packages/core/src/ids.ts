import { createHash, randomBytes, randomUUID } from "node:crypto";

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
