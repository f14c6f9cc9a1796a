/**
 * The proxy's side of the config stream: connect, read snapshots, re-check
 * each (`checkSnapshot`, the same function the control plane ran), hand the
 * good ones to `apply`, keep the last good one when a new one is refused or
 * the control plane goes away, and reconnect with jittered backoff (fail
 * static, HARDENING.md). A stream that says nothing for PROXY_STREAM_DEAD_MS
 * is treated as dead (a half-open TCP connection looks quiet forever). With
 * several control-plane addresses the client reconnects to the next replica
 * (WeftClient.proxyStream fails over on a refused or silent connection).
 */
import type { WeftClient } from "@weft/api/client";
import {
  checkSnapshot,
  PROXY_STREAM_DEAD_MS,
  type ProxyConfigStatus,
  type ProxySnapshot,
} from "@weft/api/snapshot";
import { Backoff, type Clock, describeError, isWeftError, systemClock } from "@weft/core";
import type { DataplaneLogger } from "../logger.js";

export interface ConfigStreamOptions {
  client: WeftClient;
  /** The instance id; may change when the proxy re-registers. */
  instanceId: () => string;
  /** Applies a checked snapshot; throwing refuses it (the previous one stays). */
  apply: (s: ProxySnapshot) => void;
  /** The control plane no longer knows the instance (restarted empty, or reaped): register again. */
  onInstanceLost: () => Promise<void>;
  onStatus?: (s: ProxyConfigStatus) => void;
  logger?: DataplaneLogger;
  clock?: Clock;
  idleMs?: number;
  random?: () => number;
}

export class ConfigStream {
  private readonly ac = new AbortController();
  private readonly backoff: Backoff;
  private readonly clock: Clock;
  private status: ProxyConfigStatus = { connected: false };
  private current: ProxySnapshot | undefined;
  private loop: Promise<void> | undefined;
  private firstWaiters: (() => void)[] = [];

  constructor(private readonly o: ConfigStreamOptions) {
    this.clock = o.clock ?? systemClock;
    this.backoff = new Backoff({ baseMs: 200, maxMs: 10_000, ...(o.random ? { random: o.random } : {}) });
  }

  start(): void {
    this.loop ??= this.run();
  }

  get snapshot(): ProxySnapshot | undefined {
    return this.current;
  }

  get state(): ProxyConfigStatus {
    return this.status;
  }

  /** Resolves once a first snapshot has been applied (or at once if one has). */
  firstSnapshot(): Promise<void> {
    if (this.current) return Promise.resolve();
    return new Promise((resolve) => this.firstWaiters.push(resolve));
  }

  private setStatus(patch: Partial<ProxyConfigStatus>): void {
    this.status = { ...this.status, ...patch };
    this.o.onStatus?.(this.status);
  }

  private receive(raw: unknown): void {
    const check = checkSnapshot(raw);
    const version =
      typeof (raw as { version?: unknown })?.version === "string"
        ? (raw as { version: string }).version
        : undefined;
    if (!check.ok) {
      this.refuse(version, check.error);
      return;
    }
    try {
      this.o.apply(check.snapshot);
    } catch (e) {
      this.refuse(version, describeError(e));
      return;
    }
    this.current = check.snapshot;
    this.setStatus({ version: check.snapshot.version });
    const waiters = this.firstWaiters;
    this.firstWaiters = [];
    for (const w of waiters) w();
  }

  private refuse(version: string | undefined, error: string): void {
    this.o.logger?.warn({ version, error }, "config snapshot refused; keeping the last good one");
    const lastRejected: NonNullable<ProxyConfigStatus["lastRejected"]> = {
      error,
      at: new Date(this.clock.now()).toISOString(),
    };
    if (version !== undefined) lastRejected.version = version;
    this.setStatus({ lastRejected });
  }

  private async run(): Promise<void> {
    const signal = this.ac.signal;
    while (!signal.aborted) {
      try {
        const stream = this.o.client.proxyStream(this.o.instanceId(), {
          signal,
          idleMs: this.o.idleMs ?? PROXY_STREAM_DEAD_MS,
        });
        for await (const msg of stream) {
          if (!this.status.connected) {
            this.setStatus({ connected: true });
            // baseUrl: the replica that answered (of several, when the client was given a list).
            this.o.logger?.info({ server: this.o.client.baseUrl }, "config stream connected");
          }
          this.backoff.reset();
          if (msg.type === "snapshot") this.receive(msg.snapshot);
          else if (msg.type === "close") {
            this.o.logger?.info({ reason: msg.reason }, "config stream closed by the control plane");
            break;
          }
        }
      } catch (e) {
        if (signal.aborted) break;
        if (isWeftError(e, "WEFT_ERR_NOT_FOUND")) {
          this.o.logger?.warn({}, "the control plane does not know this instance; registering again");
          await this.o.onInstanceLost().catch((err: unknown) => {
            this.o.logger?.warn({ err: describeError(err) }, "re-registration failed");
          });
        } else if (this.status.connected || this.backoff.attempts === 0) {
          this.o.logger?.warn(
            { err: describeError(e), serving: this.current?.version ?? "nothing yet" },
            "config stream lost; serving the last good config and reconnecting",
          );
        }
      }
      if (signal.aborted) break;
      if (this.status.connected) this.setStatus({ connected: false });
      await this.sleep(this.backoff.next());
    }
    this.setStatus({ connected: false });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = this.clock.setTimeout(resolve, ms);
      this.ac.signal.addEventListener(
        "abort",
        () => {
          t.cancel();
          resolve();
        },
        { once: true },
      );
    });
  }

  async stop(): Promise<void> {
    this.ac.abort();
    await this.loop;
  }
}
