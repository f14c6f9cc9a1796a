/**
 * ACL tokens: creation, revocation, lookup by secret, bootstrap.
 *
 * Data flow: token writes -> store (`/acl/tokens/<accessorId>`, the secret
 * only as its SHA-256 hex) -> watch -> in-memory index by hash -> `resolve`
 * on every request. The secret leaves the server once: in the response that
 * created the token (or from `bootstrap()` to the server's caller).
 *
 * Bootstrap is one-time: it runs only on a store with no tokens and no
 * `/acl/bootstrap` marker, so revoking every token later does not reopen it.
 */
import { type Disposable, hashSecret, newId, newSecret, weftError } from "@weft/core";
import type { Logger } from "pino";
import { ACL_BOOTSTRAP_KEY, ACL_PREFIX, ACL_TOKENS_PREFIX, tokenKey } from "../state/keys.js";
import { PrefixMirror } from "../state/prefix-mirror.js";
import type { KeyValue, Store } from "../store/store.js";
import { grantedBy, type Permission, parsePolicy, policiesAllow } from "./policy.js";

/** A token as stored. */
export interface TokenRecord {
  accessorId: string;
  description: string;
  policies: string[];
  /** SHA-256 hex of the secret. */
  secretHash: string;
  createdAt: number;
}

/** A token as shown to clients (never the secret or its hash). */
export interface TokenInfo {
  accessorId: string;
  description: string;
  policies: string[];
  createdAt: number;
}

/** Who is calling: a token, or the anonymous operator of `--dev` mode. */
export interface Identity {
  accessorId: string;
  description: string;
  policies: readonly string[];
  anonymous?: boolean;
}

export const DEV_ANONYMOUS: Identity = Object.freeze({
  accessorId: "anonymous",
  description: "anonymous operator (--dev mode)",
  policies: Object.freeze(["operator"]),
  anonymous: true,
});

/** The authorizer: the one question every handler asks. */
export function can(identity: Identity, permission: Permission): boolean {
  return policiesAllow(identity.policies, permission);
}

/** Throws 403 naming the permission unless `identity` has it. */
export function authorize(identity: Identity, permission: Permission): void {
  if (!can(identity, permission)) {
    throw weftError("WEFT_ERR_PERMISSION_DENIED", {
      permission: `${permission} (granted by policy ${grantedBy(permission)})`,
    });
  }
}

export function tokenInfo(t: TokenRecord): TokenInfo {
  return {
    accessorId: t.accessorId,
    description: t.description,
    policies: [...t.policies],
    createdAt: t.createdAt,
  };
}

export class AclService implements Disposable {
  private readonly byAccessor = new Map<string, TokenRecord>();
  private readonly byHash = new Map<string, TokenRecord>();
  private mirror: PrefixMirror | undefined;

  private constructor(
    private readonly store: Store,
    private readonly log: Logger | undefined,
    private readonly now: () => number,
  ) {}

  static async open(store: Store, opts: { logger?: Logger; now?: () => number } = {}): Promise<AclService> {
    const s = new AclService(store, opts.logger, opts.now ?? Date.now);
    s.mirror = await PrefixMirror.open(store, ACL_PREFIX, {
      load: (kvs) => {
        for (const kv of kvs) s.upsert(kv);
      },
      apply: (batch) => {
        for (const ev of batch.events) {
          if (ev.type === "put") s.upsert(ev.kv);
          else s.remove(ev.key);
        }
      },
      onError: (err) => s.log?.error({ err }, "ACL watch broke; token changes are not seen"),
    });
    return s;
  }

  private upsert(kv: KeyValue): void {
    if (!kv.key.startsWith(ACL_TOKENS_PREFIX)) return;
    try {
      const t = JSON.parse(kv.value) as TokenRecord;
      this.remove(kv.key);
      this.byAccessor.set(t.accessorId, t);
      this.byHash.set(t.secretHash, t);
    } catch (err) {
      this.log?.error({ err, key: kv.key }, "unreadable token record; ignored");
    }
  }

  private remove(key: string): void {
    if (!key.startsWith(ACL_TOKENS_PREFIX)) return;
    const accessor = key.slice(ACL_TOKENS_PREFIX.length);
    const t = this.byAccessor.get(accessor);
    if (!t) return;
    this.byAccessor.delete(accessor);
    if (this.byHash.get(t.secretHash) === t) this.byHash.delete(t.secretHash);
  }

  /** The identity of a bearer secret, or undefined when unknown. */
  resolve(secret: string): Identity | undefined {
    if (secret.length === 0 || secret.length > 512) return undefined;
    // Looked up by the secret's SHA-256: the lookup's timing can tell nothing about the secret.
    const t = this.byHash.get(hashSecret(secret));
    if (!t) return undefined;
    return { accessorId: t.accessorId, description: t.description, policies: t.policies };
  }

  /** Creates a token; the returned `secretId` is never retrievable again. */
  async create(input: {
    description?: string;
    policies: string[];
  }): Promise<TokenInfo & { secretId: string }> {
    if (input.policies.length === 0) {
      throw weftError("WEFT_ERR_VALIDATION", { detail: "policies: at least one policy is required" });
    }
    input.policies.forEach((p, i) => {
      const r = parsePolicy(p);
      if (!r.ok) throw weftError("WEFT_ERR_VALIDATION", { detail: `policies[${i}]: ${r.error}` });
    });
    const { rec, secretId } = this.newToken(input.description ?? "", [...new Set(input.policies)]);
    const key = tokenKey(rec.accessorId);
    const r = await this.store.txn({
      compare: [{ key, target: "exists", value: false }],
      success: [{ type: "put", key, value: JSON.stringify(rec) }],
    });
    if (!r.succeeded) throw weftError("WEFT_ERR_CONFLICT", { detail: "token accessor collision; retry" });
    await this.mirror?.waitApplied(r.revision);
    return { ...tokenInfo(rec), secretId };
  }

  list(): TokenInfo[] {
    return [...this.byAccessor.values()].sort((a, b) => a.createdAt - b.createdAt).map(tokenInfo);
  }

  get(accessorId: string): TokenInfo | undefined {
    const t = this.byAccessor.get(accessorId);
    return t ? tokenInfo(t) : undefined;
  }

  async revoke(accessorId: string): Promise<boolean> {
    const r = await this.store.delete(tokenKey(accessorId));
    if (r.deleted.length === 0) return false;
    await this.mirror?.waitApplied(r.revision);
    return true;
  }

  /**
   * Creates the management token (policy `operator`) on a store that never
   * had one. Returns its secret, once; undefined when already bootstrapped.
   */
  async bootstrap(): Promise<string | undefined> {
    const existing = await this.store.range(ACL_TOKENS_PREFIX, { limit: 1 });
    if (existing.kvs.length > 0) return undefined;
    const { rec, secretId } = this.newToken("bootstrap management token", ["operator"]);
    const r = await this.store.txn({
      compare: [{ key: ACL_BOOTSTRAP_KEY, target: "exists", value: false }],
      success: [
        {
          type: "put",
          key: ACL_BOOTSTRAP_KEY,
          value: JSON.stringify({ accessorId: rec.accessorId, at: rec.createdAt }),
        },
        { type: "put", key: tokenKey(rec.accessorId), value: JSON.stringify(rec) },
      ],
    });
    if (!r.succeeded) return undefined;
    await this.mirror?.waitApplied(r.revision);
    this.log?.info({ accessorId: rec.accessorId }, "ACL bootstrapped: management token created");
    return secretId;
  }

  /** A fresh token: the record to store (secret only as its hash) and the secret, shown once. */
  private newToken(description: string, policies: string[]): { rec: TokenRecord; secretId: string } {
    const secretId = newSecret();
    const rec: TokenRecord = {
      accessorId: newId(),
      description,
      policies,
      secretHash: hashSecret(secretId),
      createdAt: this.now(),
    };
    return { rec, secretId };
  }

  async dispose(): Promise<void> {
    await this.mirror?.dispose();
  }
}
