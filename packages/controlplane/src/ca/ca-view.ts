/**
 * The CA's in-memory view of `/ca/` (state/keys.ts): roots, which one is
 * active and which is retiring, and the leaves each root signed that are not
 * yet replaced. Fed by a PrefixMirror, so another replica's writes show up
 * here too. Pure bookkeeping: no timers, no signing.
 */
import type { Logger } from "pino";
import { CA_ACTIVE_KEY, CA_RETIRING_KEY, CA_ROOTS_PREFIX, parseCaLeafKey } from "../state/keys.js";
import type { KeyValue } from "../store/store.js";

export interface RootRecord {
  id: string;
  provider: string;
  certPem: string;
  /** Provider-private (the built-in provider's PKCS#8 key). Never leaves the control plane. */
  privateState: string;
  serialNumber: string;
  notBefore: number;
  notAfter: number;
  createdAt: number;
  /** This root's certificate signed by the root it replaced (served in leaf chains while that root is trusted). */
  crossSignedPem?: string;
  crossSignedBy?: string;
}

export interface LeafRecord {
  serialNumber: string;
  notAfter: number;
  signedAt: number;
  instanceId?: string;
}

export interface RetiringRecord {
  rootId: string;
  since: number;
}

export class CaView {
  readonly roots = new Map<string, RootRecord>();
  /** rootId -> "<service>/<holder>" -> leaf. */
  readonly leaves = new Map<string, Map<string, LeafRecord>>();
  activeId: string | undefined;
  retiring: RetiringRecord | undefined;

  constructor(private readonly log: Logger | undefined) {}

  /** Applies one stored pair; returns true when the trust bundle (roots, active, retiring) changed. */
  put(kv: KeyValue): boolean {
    try {
      if (kv.key === CA_ACTIVE_KEY) {
        this.activeId = kv.value;
        return true;
      }
      if (kv.key === CA_RETIRING_KEY) {
        this.retiring = JSON.parse(kv.value) as RetiringRecord;
        return true;
      }
      if (kv.key.startsWith(CA_ROOTS_PREFIX)) {
        const r = JSON.parse(kv.value) as RootRecord;
        this.roots.set(r.id, r);
        return true;
      }
      const leaf = parseCaLeafKey(kv.key);
      if (leaf) {
        let m = this.leaves.get(leaf.rootId);
        if (!m) {
          m = new Map();
          this.leaves.set(leaf.rootId, m);
        }
        m.set(`${leaf.service}/${leaf.holder}`, JSON.parse(kv.value) as LeafRecord);
      }
    } catch (err) {
      this.log?.error({ err, key: kv.key }, "unreadable CA record; ignored");
    }
    return false;
  }

  delete(key: string): boolean {
    if (key === CA_ACTIVE_KEY) {
      this.activeId = undefined;
      return true;
    }
    if (key === CA_RETIRING_KEY) {
      this.retiring = undefined;
      return true;
    }
    if (key.startsWith(CA_ROOTS_PREFIX)) {
      this.roots.delete(key.slice(CA_ROOTS_PREFIX.length));
      return true;
    }
    const leaf = parseCaLeafKey(key);
    if (leaf) {
      const m = this.leaves.get(leaf.rootId);
      m?.delete(`${leaf.service}/${leaf.holder}`);
      if (m?.size === 0) this.leaves.delete(leaf.rootId);
    }
    return false;
  }

  active(): RootRecord | undefined {
    return this.activeId === undefined ? undefined : this.roots.get(this.activeId);
  }

  /** Leaves of `rootId` still valid at `now`. */
  outstanding(rootId: string, now: number): LeafRecord[] {
    return [...(this.leaves.get(rootId)?.values() ?? [])].filter((l) => l.notAfter > now);
  }

  /** The newest leaf recorded for an instance, across roots. */
  leafOf(service: string, instanceId: string): (LeafRecord & { rootId: string }) | undefined {
    let best: (LeafRecord & { rootId: string }) | undefined;
    for (const [rootId, m] of this.leaves) {
      const l = m.get(`${service}/${instanceId}`);
      if (l && (!best || l.signedAt > best.signedAt)) best = { ...l, rootId };
    }
    return best;
  }
}
