/**
 * Proxy streams: one watch per connected sidecar, fed by the catalog and
 * config change feeds, pushing that proxy's snapshot (build.ts) whenever its
 * content changes.
 *
 * Data flow: change feed (services / kinds that changed) -> watches whose
 * dependencies intersect are marked dirty -> after `coalesceMs` (a burst of
 * changes becomes one push) each dirty watch rebuilds -> unchanged version:
 * nothing sent; invalid (checkSnapshot fails or build throws): logged and
 * counted, the proxy keeps the last good one -> otherwise written to the
 * stream. Consul's proxycfg does the same with its per-proxy state and
 * coalesce timer.
 *
 * Bounded: a snapshot is state of the world, so a stream holds at most one
 * pending snapshot while its socket is backed up; newer ones replace it
 * ("latest wins": a slow proxy skips intermediate versions and never makes
 * the server buffer a queue). The number of streams is capped.
 */
import {
  type Instance,
  MESH_NAME,
  type Mesh,
  meshSchema,
  type ProxySnapshot,
  type ProxyStreamMessage,
} from "@weft/api";
import {
  type Clock,
  type Disposable,
  DisposableStore,
  systemClock,
  type TimerHandle,
  weftError,
} from "@weft/core";
import type { Logger } from "pino";
import type { Catalog } from "../catalog/catalog.js";
import type { ConfigService } from "../config/config.js";
import { type SnapshotBuild, tryBuildSnapshot } from "./build.js";
import { snapshotInputs } from "./inputs.js";

export const DEFAULT_COALESCE_MS = 10;
export const DEFAULT_MAX_STREAMS = 10_000;

/** Where a stream's messages go (the HTTP response, or a test). */
export interface StreamSink {
  /** Returns false when the transport is backed up; `onDrain` is then called once it can take more. */
  write(msg: ProxyStreamMessage): boolean;
  onDrain(fn: () => void): void;
  /** Ends the stream (after a final message, if any). */
  end(): void;
}

export interface ProxyStreamsOptions {
  catalog: Catalog;
  config: ConfigService;
  clock?: Clock;
  logger?: Logger;
  coalesceMs?: number;
  maxStreams?: number;
}

export interface ProxyStreamStats {
  streams: number;
  pushes: number;
  /** Rebuilds that produced the version already sent (nothing pushed). */
  unchanged: number;
  /** Snapshots refused before sending (build error or failed check). */
  invalid: number;
}

interface Watch {
  instanceId: string;
  sink: StreamSink;
  services: Set<string>;
  kinds: Set<string>;
  sentVersion?: string;
  /** A push is waiting for the sink to drain. */
  blocked: boolean;
  pending: boolean;
  closed: boolean;
}

export class ProxyStreams implements Disposable {
  private readonly watches = new Set<Watch>();
  private readonly dirty = new Set<Watch>();
  private readonly subs = new DisposableStore();
  private readonly clock: Clock;
  private readonly coalesceMs: number;
  private readonly maxStreams: number;
  private timer: TimerHandle | undefined;
  private readonly defaultMesh = meshSchema.parse({ kind: "Mesh", name: MESH_NAME });
  readonly stats: ProxyStreamStats = { streams: 0, pushes: 0, unchanged: 0, invalid: 0 };

  constructor(private readonly o: ProxyStreamsOptions) {
    this.clock = o.clock ?? systemClock;
    this.coalesceMs = o.coalesceMs ?? DEFAULT_COALESCE_MS;
    this.maxStreams = o.maxStreams ?? DEFAULT_MAX_STREAMS;
    this.subs.add(o.catalog.onChange((services) => this.onChange(services, undefined)));
    this.subs.add(o.config.onChange((kinds) => this.onChange(undefined, kinds)));
  }

  /**
   * Starts a stream for a registered instance: its current snapshot is
   * written at once (if valid), then every change. Throws NOT_FOUND for an
   * unknown instance and UNAVAILABLE beyond `maxStreams`.
   */
  open(instanceId: string, sink: StreamSink): Disposable {
    if (!this.o.catalog.getInstance(instanceId)) {
      throw weftError("WEFT_ERR_NOT_FOUND", { what: `instance "${instanceId}"` });
    }
    if (this.watches.size >= this.maxStreams) {
      throw weftError("WEFT_ERR_UNAVAILABLE", {
        detail: `too many proxy streams (${this.maxStreams}); retry later`,
      });
    }
    const w: Watch = {
      instanceId,
      sink,
      services: new Set(),
      kinds: new Set(),
      blocked: false,
      pending: false,
      closed: false,
    };
    this.watches.add(w);
    this.stats.streams = this.watches.size;
    sink.onDrain(() => {
      w.blocked = false;
      if (w.pending) {
        w.pending = false;
        this.push(w);
      }
    });
    this.push(w);
    return { dispose: () => this.close(w) };
  }

  /** The snapshot a proxy would get now (for `/v1/proxy/snapshot/:id` and explain). */
  current(instanceId: string): ProxySnapshot | undefined {
    const inst = this.o.catalog.getInstance(instanceId);
    if (!inst) return undefined;
    const built = this.build(inst);
    if (!built.ok) throw built.error;
    return built.snapshot;
  }

  private onChange(services: ReadonlySet<string> | undefined, kinds: ReadonlySet<string> | undefined): void {
    for (const w of this.watches) {
      if (this.dirty.has(w)) continue;
      let hit = false;
      if (services) for (const s of services) if (w.services.has(s)) hit = true;
      if (kinds) for (const k of kinds) if (w.kinds.has(k)) hit = true;
      if (hit) this.dirty.add(w);
    }
    if (this.dirty.size > 0 && this.timer === undefined) {
      this.timer = this.clock.setTimeout(() => this.flush(), this.coalesceMs);
    }
  }

  private flush(): void {
    this.timer = undefined;
    const batch = [...this.dirty];
    this.dirty.clear();
    for (const w of batch) this.push(w);
  }

  private mesh(): Mesh {
    return (this.o.config.parsed("Mesh", MESH_NAME) as Mesh | undefined) ?? this.defaultMesh;
  }

  private build(instance: Instance): SnapshotBuild {
    return tryBuildSnapshot(snapshotInputs(this.o, instance, this.mesh()));
  }

  private push(w: Watch): void {
    if (w.closed) return;
    if (w.blocked) {
      w.pending = true;
      return;
    }
    const inst = this.o.catalog.getInstance(w.instanceId);
    if (!inst) {
      // Deregistered (or reaped) while connected: the proxy re-registers and reconnects.
      w.sink.write({ type: "close", reason: `instance "${w.instanceId}" is no longer registered` });
      this.close(w);
      return;
    }
    let built: SnapshotBuild;
    try {
      built = this.build(inst);
    } catch (err) {
      this.stats.invalid += 1;
      this.o.logger?.error(
        { err, instance: w.instanceId },
        "proxy snapshot build failed; the proxy keeps its last good one",
      );
      return;
    }
    // What the build read decides which changes rebuild this proxy, even when the result is refused
    // (the upstream with too many endpoints may shrink again). The own service always counts.
    w.services = new Set([inst.service, ...built.deps.services]);
    w.kinds = new Set(["Mesh", ...built.deps.config.map((d) => d.slice(0, d.indexOf("/")))]);
    if (!built.ok) {
      // The builder ran checkSnapshot: an invalid snapshot is never sent.
      this.stats.invalid += 1;
      this.o.logger?.warn(
        { instance: w.instanceId, error: built.error.message },
        "proxy snapshot refused before sending; the proxy keeps its last good one",
      );
      return;
    }
    const snapshot = built.snapshot;
    if (snapshot.version === w.sentVersion) {
      this.stats.unchanged += 1;
      return;
    }
    w.sentVersion = snapshot.version;
    this.stats.pushes += 1;
    if (!w.sink.write({ type: "snapshot", snapshot })) w.blocked = true;
  }

  private close(w: Watch): void {
    if (w.closed) return;
    w.closed = true;
    this.watches.delete(w);
    this.dirty.delete(w);
    this.stats.streams = this.watches.size;
    w.sink.end();
  }

  /** Ends every stream with a close message (server drain); proxies reconnect elsewhere or later. */
  closeAll(reason: string): void {
    for (const w of [...this.watches]) {
      w.sink.write({ type: "close", reason });
      this.close(w);
    }
  }

  dispose(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.subs.dispose();
    this.closeAll("control plane shutting down");
  }
}
