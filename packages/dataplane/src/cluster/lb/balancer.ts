/**
 * The load-balancer contract, after grpc-js's `picker.ts`: a Balancer owns
 * the per-endpoint state of one cluster and publishes an immutable Picker
 * built from one endpoint list; when the list changes it builds and
 * publishes a new one (ARCHITECTURE habits 4 and 5).
 *
 * - `pick` is on the hot path: it never throws for an expected outcome, it
 *   returns a discriminated union, and it allocates little (policies without
 *   per-request state return a result precomputed per endpoint).
 * - A Picker's endpoint set never changes. Its scheduling state (a round
 *   robin cursor, an EDF heap) is private to it and handed to its successor
 *   when the Balancer rebuilds; in-flight counters are shared objects so a
 *   `done()` from a request picked by an older picker still counts.
 * - `update` with an equal list is a no-op: the same picker stays published,
 *   so no state is reset by a snapshot that did not touch this cluster.
 */
import type { EndpointConfig } from "@weft/api/snapshot";
import { tracer } from "@weft/core";

export interface PickContext {
  /**
   * ring_hash input, computed by the caller from the request per the
   * cluster's `hashOn` (header value, cookie, source ip). Undefined: a
   * random endpoint. Other policies ignore it.
   */
  hashKey?: string;
  /** Ids of endpoints that already failed for this request (connect error): skip them. */
  exclude?: ReadonlySet<string>;
}

export type PickFailReason = "no-endpoints" | "all-excluded";

export interface PickComplete {
  readonly type: "complete";
  readonly endpoint: EndpointConfig;
  /**
   * Call when the request (or connection) ends: least_request counts
   * requests in flight with it. Idempotent, and safe to call after the
   * endpoint left the cluster.
   */
  done(): void;
}

export interface PickFail {
  readonly type: "fail";
  readonly reason: PickFailReason;
}

export type PickResult = PickComplete | PickFail;

/** One frozen view of a cluster's endpoints. Must not block; must not throw. */
export interface Picker {
  /** The endpoints this picker chooses from, in the order given to `update`. */
  readonly endpoints: readonly EndpointConfig[];
  pick(ctx?: PickContext): PickResult;
}

export interface Balancer {
  /** The registered policy name (an `LbPolicy` for the built-in ones). */
  readonly policy: string;
  /** The picker in use: a consistent view, e.g. for an admin listing. */
  readonly picker: Picker;
  /**
   * Publishes a new frozen picker for `endpoints`. Keeps per-endpoint state
   * (in-flight counts, round robin position, weighted schedule) for the
   * endpoints that remain; an equal list changes nothing.
   */
  update(endpoints: readonly EndpointConfig[]): void;
  pick(ctx?: PickContext): PickResult;
}

export interface BalancerOptions {
  /** A source of uniform numbers in [0, 1); inject a seeded one in tests. Default Math.random. */
  random?: () => number;
}

export const NO_ENDPOINTS: PickFail = Object.freeze({ type: "fail", reason: "no-endpoints" });
export const ALL_EXCLUDED: PickFail = Object.freeze({ type: "fail", reason: "all-excluded" });

const noop = (): void => {};

/**
 * One frozen `complete` result per endpoint, with a no-op `done`: policies
 * that keep no per-request state return these, so their picks allocate
 * nothing.
 */
export function fixedResults(endpoints: readonly EndpointConfig[]): readonly PickComplete[] {
  return Object.freeze(
    endpoints.map((endpoint) => Object.freeze({ type: "complete" as const, endpoint, done: noop })),
  );
}

/** The exclusion set of a context when it excludes anything, else undefined (the fast path). */
export function exclusions(ctx: PickContext | undefined): ReadonlySet<string> | undefined {
  const ex = ctx?.exclude;
  return ex !== undefined && ex.size > 0 ? ex : undefined;
}

/** A uniform index in [0, n), robust to a `random` that returns 1 or more. */
export function uniformIndex(n: number, random: () => number): number {
  const i = Math.floor(random() * n);
  return i >= n ? n - 1 : Math.max(i, 0);
}

/** How many rejected draws before sampling falls back to an exact scan. */
const REJECTION_TRIES = 8;

/**
 * A uniform random index among the endpoints not in `exclude`, or -1 when
 * all are excluded. Rejection sampling keeps the usual case (a retry that
 * excludes one endpoint of many) O(1); a scan bounds the unusual one.
 */
export function uniformNotExcluded(
  endpoints: readonly EndpointConfig[],
  random: () => number,
  exclude: ReadonlySet<string> | undefined,
): number {
  const n = endpoints.length;
  if (n === 0) return -1;
  if (exclude === undefined) return uniformIndex(n, random);
  for (let t = 0; t < REJECTION_TRIES; t++) {
    const i = uniformIndex(n, random);
    if (!exclude.has(endpoints[i]!.id)) return i;
  }
  let allowed = 0;
  for (let i = 0; i < n; i++) if (!exclude.has(endpoints[i]!.id)) allowed++;
  if (allowed === 0) return -1;
  let k = uniformIndex(allowed, random);
  for (let i = 0; i < n; i++) {
    if (exclude.has(endpoints[i]!.id)) continue;
    if (k-- === 0) return i;
  }
  return -1;
}

function sameLocality(a: EndpointConfig["locality"], b: EndpointConfig["locality"]): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  return a.region === b.region && a.zone === b.zone;
}

/** Whether two endpoint lists are equal, element by element and field by field. */
export function sameEndpoints(a: readonly EndpointConfig[], b: readonly EndpointConfig[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    if (
      x.id !== y.id ||
      x.address !== y.address ||
      x.port !== y.port ||
      x.weight !== y.weight ||
      x.health !== y.health ||
      !sameLocality(x.locality, y.locality)
    ) {
      return false;
    }
  }
  return true;
}

const EMPTY_PICKER: Picker = Object.freeze({
  endpoints: Object.freeze([]) as readonly EndpointConfig[],
  pick: (): PickResult => NO_ENDPOINTS,
});

const trace = tracer("lb");

/**
 * The shared part of every built-in balancer: skip equal updates, build,
 * freeze and publish. A policy supplies `build`, which may read its
 * predecessor to carry state over.
 */
export abstract class PickerBalancer implements Balancer {
  abstract readonly policy: string;
  #picker: Picker = EMPTY_PICKER;

  get picker(): Picker {
    return this.#picker;
  }

  update(endpoints: readonly EndpointConfig[]): void {
    const previous = this.#picker;
    if (sameEndpoints(previous.endpoints, endpoints)) return;
    const list = Object.freeze(endpoints.slice());
    this.#picker = Object.freeze(this.build(list, previous));
    trace("picker published", {
      policy: this.policy,
      endpoints: list.length,
      was: previous.endpoints.length,
    });
  }

  pick(ctx?: PickContext): PickResult {
    return this.#picker.pick(ctx);
  }

  /** A new picker for `endpoints` (already frozen), carrying state over from `previous`. */
  protected abstract build(endpoints: readonly EndpointConfig[], previous: Picker): Picker;
}
