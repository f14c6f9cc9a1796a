/**
 * How a Weft store lives inside etcd: key layout and value envelope.
 *
 * Under a root prefix (default `/weft/`, so several meshes can share one
 * etcd) the store keeps:
 *
 *   <root>kv            the store's own revision counter: "<rev> <writeId>"
 *   <root>kv<key>       a Weft key; the value is an envelope (below)
 *   <root>compacted     the store's compaction point ("<rev>")
 *   <root>leader/...    leader election (ha/leader.ts), outside the store
 *
 * Why a counter of our own: etcd revisions are cluster-wide (every write to
 * any key moves them, other meshes included) and start at 1, while the
 * Store contract promises a per-store revision that starts at 0 and moves by
 * exactly one per mutation. Every write txn bumps the counter and compares
 * its etcd mod_revision, so writes to one store are serialized and its
 * revisions are dense. The counter sorts first under `<root>kv` and every
 * data key is strictly longer, so one etcd watch on that prefix sees both the
 * data events and the counter put that names their store revision.
 *
 * Envelope: "w1 <createRevision> <modRevision>\n<value>", the two store
 * revisions of the key (etcd's own are cluster-wide). `version` is etcd's
 * (same rule: 1 on create, +1 per change, reset by delete).
 */

import { weftError } from "@weft/core";
import type { IKeyValue } from "etcd3";
import type { KeyValue } from "./store.js";

const ENVELOPE = /^w1 (\d{1,16}) (\d{1,16})$/;
const COUNTER = /^(\d{1,16})(?: (\S+))?$/;

export class EtcdLayout {
  /** `<root>kv`: the counter key, and the prefix of every data key. */
  readonly kvPrefix: string;
  readonly counterKey: Buffer;
  readonly compactedKey: Buffer;
  /** Where leader election keys live (`<root>leader/`). */
  readonly leaderPrefix: string;

  constructor(readonly root: string) {
    this.kvPrefix = `${root}kv`;
    this.counterKey = Buffer.from(this.kvPrefix);
    this.compactedKey = Buffer.from(`${root}compacted`);
    this.leaderPrefix = `${root}leader/`;
  }

  dataKey(key: string): Buffer {
    return Buffer.from(this.kvPrefix + key);
  }

  /** The etcd key range [start, end) holding exactly the Weft keys starting with `prefix`. */
  dataRange(prefix: string): { start: Buffer; end: Buffer } {
    const all = Buffer.from(this.kvPrefix);
    const end = bytesPrefixEnd(Buffer.from(this.kvPrefix + prefix));
    // "" must not include the counter itself: start just after it.
    const start =
      prefix === "" ? Buffer.concat([all, Buffer.from([0])]) : Buffer.from(this.kvPrefix + prefix);
    return { start, end };
  }

  /** The etcd range watched for a store: the counter and every data key. */
  watchRange(): { start: Buffer; end: Buffer } {
    return { start: this.counterKey, end: bytesPrefixEnd(this.counterKey) };
  }

  isCounter(key: Buffer): boolean {
    return key.equals(this.counterKey);
  }

  /** The Weft key of an etcd data key. */
  weftKey(key: Buffer): string {
    return key.toString("utf8").slice(this.kvPrefix.length);
  }

  decode(kv: IKeyValue): KeyValue {
    const raw = kv.value;
    const nl = raw.indexOf(0x0a);
    const m = nl < 0 ? null : ENVELOPE.exec(raw.subarray(0, nl).toString("latin1"));
    if (!m) {
      throw weftError("WEFT_ERR_STORE_CORRUPT", {
        path: `etcd key ${kv.key.toString("utf8")}`,
        detail: "value is not a Weft store envelope (written by something else under this prefix?)",
      });
    }
    return Object.freeze({
      key: this.weftKey(kv.key),
      value: raw.subarray(nl + 1).toString("utf8"),
      createRevision: Number(m[1]),
      modRevision: Number(m[2]),
      version: Number(kv.version),
    });
  }
}

export function encodeValue(kv: KeyValue): Buffer {
  return Buffer.from(`w1 ${kv.createRevision} ${kv.modRevision}\n${kv.value}`);
}

/** The store revision (and the id of the write that set it) held by the counter. */
export function decodeCounter(kv: IKeyValue | undefined): { rev: number; writeId: string | undefined } {
  if (!kv) return { rev: 0, writeId: undefined };
  const m = COUNTER.exec(kv.value.toString("latin1"));
  if (!m) {
    throw weftError("WEFT_ERR_STORE_CORRUPT", {
      path: `etcd key ${kv.key.toString("utf8")}`,
      detail: "the revision counter is unreadable",
    });
  }
  return { rev: Number(m[1]), writeId: m[2] };
}

/** The smallest byte string greater than all strings starting with `b` ("\0" = no end, etcd's convention). */
export function bytesPrefixEnd(b: Buffer): Buffer {
  const out = Buffer.from(b);
  for (let i = out.length - 1; i >= 0; i--) {
    if ((out[i] as number) < 0xff) {
      out[i] = (out[i] as number) + 1;
      return out.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
