/**
 * A workload's certificate, kept current: the proxy's side of the CA.
 *
 *   key pair (P-256, csr.ts; never leaves this process)
 *     -> CSR with one URI SAN (the service's SPIFFE ID) -> POST /v1/ca/sign with the proxy's token
 *     -> TlsMaterial {key, chain, bundle} published to listeners (MaterialSource)
 *   renewal at about half-life (uniform jitter 45-55 %) with a fresh key; a
 *   failed renewal retries with backoff while the current certificate stays in
 *   use (fail static); when the bundle shows a new active root, renew soon
 *   (jittered) so the retiring root can leave the bundle.
 *   bundle: blocking reads of GET /v1/ca/roots, so a rotation reaches us at once.
 *
 * Listeners swap contexts on `onChange` (server.setSecureContext): established
 * connections are not touched by a renewal.
 */
import type { CaRootsResponse, SignResponse } from "@weft/api";
// The light entry points: the sidecar must not load zod and the resource schemas.
import type { WeftClient } from "@weft/api/client";
import { workloadId } from "@weft/api/spiffe";
import {
  Backoff,
  type Clock,
  type Disposable,
  describeError,
  systemClock,
  type TimerHandle,
} from "@weft/core";
import type { DataplaneLogger } from "../logger.js";
import type { MaterialSource, TlsMaterial } from "../transport/mtls.js";
import { createKeyAndCsr } from "./csr.js";
import { TrustBundle } from "./trust-bundle.js";

/** Kept for callers that named it; the data plane's logger interface. */
export type IdentityLogger = DataplaneLogger;

export interface WorkloadIdentityOptions {
  client: WeftClient;
  service: string;
  /** Recorded with the certificate, so `weft instances` shows its expiry and a renewal replaces it. */
  instanceId?: string;
  /** Requested lifetime (e.g. "1h"); default the mesh's leaf TTL. */
  ttl?: string;
  clock?: Clock;
  logger?: IdentityLogger;
  /** Randomness for the renewal jitter (tests). */
  random?: () => number;
}

export interface IdentityStatus {
  spiffeId: string;
  serialNumber: string;
  rootId: string;
  notAfter: number;
  /** Epoch ms of the next planned renewal. */
  renewAt: number;
  renewals: number;
  failedRenewals: number;
  lastError?: string;
}

export class WorkloadIdentity implements MaterialSource, Disposable {
  private material: TlsMaterial | undefined;
  private signed: SignResponse | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly backoff = new Backoff({ baseMs: 250, maxMs: 30_000 });
  private timer: TimerHandle | undefined;
  private readonly abort = new AbortController();
  private renewing: Promise<void> | undefined;
  private renewAt = 0;
  private renewals = 0;
  private failedRenewals = 0;
  private lastError: string | undefined;
  private rootsIndex = 0;
  /** The latest trust bundle read from the control plane. */
  private roots: CaRootsResponse | undefined;
  private closed = false;

  private constructor(private readonly opts: WorkloadIdentityOptions) {
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? Math.random;
  }

  /** Obtains the first certificate (throws if it cannot: a proxy without identity must not serve). */
  static async start(opts: WorkloadIdentityOptions): Promise<WorkloadIdentity> {
    const id = new WorkloadIdentity(opts);
    const roots = await opts.client.caRoots();
    id.rootsIndex = roots.index;
    id.roots = roots;
    await id.obtain(roots.trustDomain);
    void id.watchRoots();
    return id;
  }

  current(): TlsMaterial {
    if (!this.material) throw new Error("WorkloadIdentity used before start()");
    return this.material;
  }

  onChange(fn: () => void): Disposable {
    this.listeners.add(fn);
    return {
      dispose: () => {
        this.listeners.delete(fn);
      },
    };
  }

  status(): IdentityStatus {
    const s = this.signed;
    const st: IdentityStatus = {
      spiffeId: s?.spiffeId ?? "",
      serialNumber: s?.serialNumber ?? "",
      rootId: s?.rootId ?? "",
      notAfter: s ? Date.parse(s.notAfter) : 0,
      renewAt: this.renewAt,
      renewals: this.renewals,
      failedRenewals: this.failedRenewals,
    };
    if (this.lastError !== undefined) st.lastError = this.lastError;
    return st;
  }

  /** Renews now (also what the timer calls). Concurrent calls share one renewal. */
  renew(): Promise<void> {
    this.renewing ??= this.doRenew().finally(() => {
      this.renewing = undefined;
    });
    return this.renewing;
  }

  private async doRenew(): Promise<void> {
    if (this.closed) return;
    try {
      // The bundle's trust domain is the mesh's current one (it may have changed since the last leaf).
      const trustDomain = this.roots?.trustDomain ?? this.signed?.trustDomain;
      await this.obtain(trustDomain ?? (await this.opts.client.caRoots()).trustDomain);
      this.renewals++;
      this.backoff.reset();
    } catch (e) {
      this.failedRenewals++;
      this.lastError = describeError(e);
      const delay = this.backoff.next();
      const notAfter = this.signed ? Date.parse(this.signed.notAfter) : 0;
      this.opts.logger?.warn(
        { err: this.lastError, retryInMs: delay, expiresInMs: notAfter - this.clock.now() },
        "certificate renewal failed; keeping the current certificate and retrying",
      );
      this.plan(this.clock.now() + delay);
    }
  }

  private async obtain(trustDomain: string): Promise<void> {
    const rootsBefore = this.roots;
    const spiffeId = workloadId(trustDomain, this.opts.service);
    const { keyPem, csrPem } = await createKeyAndCsr(this.opts.service, spiffeId);
    const req: Parameters<WeftClient["caSign"]>[0] = { csr: csrPem };
    if (this.opts.ttl !== undefined) req.ttl = this.opts.ttl;
    if (this.opts.instanceId !== undefined) req.instanceId = this.opts.instanceId;
    const signed = await this.opts.client.caSign(req);
    // The answer carries the bundle at signing time. If the watch delivered one while this request
    // was in flight, that one is at least as new (or the watch is about to deliver a newer one):
    // keep it, or a rotation that raced this renewal would drop the new root until the next change.
    const watched = this.roots !== rootsBefore ? this.roots : undefined;
    const bundle =
      watched && this.material
        ? this.material.bundle
        : TrustBundle.fromPem(signed.trustDomain, signed.rootsPem);
    if (this.closed) return;
    this.signed = signed;
    this.material = Object.freeze({ keyPem, chainPem: signed.chainPem, bundle });
    const now = this.clock.now();
    const notAfter = Date.parse(signed.notAfter);
    this.plan(now + (notAfter - now) * (0.45 + 0.1 * this.random()));
    // Likewise, a leaf from the root that such a rotation replaced is renewed soon, as onRoots
    // would have done (a root the watched bundle does not list yet is newer than that bundle).
    if (watched?.roots.some((r) => r.id === signed.rootId)) this.renewSoonIfRotated(watched);
    this.opts.logger?.info(
      { spiffeId, serial: signed.serialNumber, rootId: signed.rootId, notAfter: signed.notAfter },
      "workload certificate obtained",
    );
    this.emit();
  }

  private plan(at: number): void {
    this.timer?.cancel();
    if (this.closed) return;
    this.renewAt = at;
    this.timer = this.clock.setTimeout(() => void this.renew(), Math.max(0, at - this.clock.now()));
  }

  private emit(): void {
    for (const fn of this.listeners) {
      try {
        fn();
      } catch (e) {
        this.opts.logger?.warn({ err: describeError(e) }, "identity listener threw");
      }
    }
  }

  /** Follows the bundle: a new root is trusted at once, and a new active root triggers an early renewal. */
  private async watchRoots(): Promise<void> {
    const backoff = new Backoff({ baseMs: 250, maxMs: 15_000 });
    while (!this.closed) {
      let roots: CaRootsResponse;
      try {
        roots = await this.opts.client.caRoots({
          index: this.rootsIndex,
          wait: "5m",
          signal: this.abort.signal,
        });
        backoff.reset();
      } catch (e) {
        if (this.closed) return;
        this.opts.logger?.warn({ err: describeError(e) }, "trust bundle watch failed; retrying");
        await new Promise<void>((r) => this.clock.setTimeout(r, backoff.next()));
        continue;
      }
      if (roots.index < this.rootsIndex)
        this.rootsIndex = 0; // the store went backwards: start over
      else this.rootsIndex = roots.index;
      try {
        this.onRoots(roots);
      } catch (e) {
        // A bundle we cannot use (a root that does not parse): keep ours and wait for the next change.
        this.opts.logger?.warn({ err: describeError(e) }, "ignoring an unusable trust bundle");
      }
    }
  }

  private onRoots(roots: CaRootsResponse): void {
    const current = this.material;
    if (!current || this.closed) return;
    const pems = roots.roots.map((r) => r.certificatePem);
    const bundle = TrustBundle.fromPem(roots.trustDomain, pems);
    this.roots = roots;
    if (bundle.id !== current.bundle.id) {
      this.material = Object.freeze({ ...current, bundle });
      this.emit();
    }
    this.renewSoonIfRotated(roots);
  }

  /**
   * The current leaf is not from the active root, or not in the mesh's trust domain any more:
   * renew soon, unless a renewal is planned sooner.
   */
  private renewSoonIfRotated(roots: CaRootsResponse): void {
    const s = this.signed;
    if (s && (roots.activeRootId !== s.rootId || roots.trustDomain !== s.trustDomain)) {
      // Spread the fleet's re-issue over a few seconds (or a tenth of the remaining life).
      const left = Date.parse(s.notAfter) - this.clock.now();
      const soon = this.clock.now() + this.random() * Math.min(5_000, Math.max(0, left / 10));
      if (soon < this.renewAt) this.plan(soon);
    }
  }

  dispose(): void {
    this.closed = true;
    this.timer?.cancel();
    this.abort.abort();
    this.listeners.clear();
  }
}
