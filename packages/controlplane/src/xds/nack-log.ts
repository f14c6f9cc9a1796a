/**
 * NACKs per node: what each xDS client refused, with its own error message,
 * for `weft explain`, the UI and logs. Bounded: the latest
 * `perNode` records of at most `maxNodes` nodes (the oldest node is dropped).
 * A refusal repeated for the same type and version counts up one record.
 */
import type { Logger } from "pino";
import { SHORT_TYPE, type XdsTypeUrl } from "./resources.js";

export interface NackRecord {
  nodeId: string;
  typeUrl: string;
  /** The version the client refused. */
  version: string;
  nonce: string;
  /** The version the client keeps using (its last ACKed one; "" when it has none). */
  acceptedVersion: string;
  /** The client's error_detail.message. */
  message: string;
  /** Epoch ms of the latest refusal. */
  at: number;
  count: number;
}

export class NackLog {
  private readonly byNode = new Map<string, NackRecord[]>();
  total = 0;

  constructor(private readonly o: { logger?: Logger; perNode?: number; maxNodes?: number } = {}) {}

  record(r: Omit<NackRecord, "count">): void {
    this.total += 1;
    this.o.logger?.warn(
      {
        node: r.nodeId,
        type: SHORT_TYPE[r.typeUrl as XdsTypeUrl] ?? r.typeUrl,
        version: r.version,
        error: r.message,
      },
      "xDS client NACKed an update; it keeps its last good config",
    );
    const list = this.byNode.get(r.nodeId) ?? [];
    this.byNode.delete(r.nodeId); // re-inserted last: the Map's order is least recently NACKing first
    const same = list.find((x) => x.typeUrl === r.typeUrl && x.version === r.version);
    if (same) {
      Object.assign(same, r, { count: same.count + 1 });
    } else {
      list.push({ ...r, count: 1 });
      if (list.length > (this.o.perNode ?? 20)) list.shift();
    }
    this.byNode.set(r.nodeId, list);
    if (this.byNode.size > (this.o.maxNodes ?? 10_000)) {
      const oldest = this.byNode.keys().next().value as string;
      this.byNode.delete(oldest);
    }
  }

  /** Records of one node (oldest first), or of every node. Copies. */
  list(nodeId?: string): NackRecord[] {
    if (nodeId !== undefined) return (this.byNode.get(nodeId) ?? []).map((r) => ({ ...r }));
    return [...this.byNode.values()].flat().map((r) => ({ ...r }));
  }
}
