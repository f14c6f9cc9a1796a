/**
 * ring_hash: consistent hashing on a Ketama-style ring (Envoy's ring hash).
 *
 * Each endpoint owns points `hash32("<id>_<j>")` on a 32-bit ring, in
 * proportion to its weight; a request key goes to the owner of the first
 * point at or after `hash32(key)`. The same key reaches the same endpoint
 * while the set is unchanged, and removing one of N endpoints usually moves
 * only the keys it owned (about 1/N); see Sizing for the exception.
 *
 * Sizing: `ringSize` (default 1024) is the minimum number of points, as
 * Envoy's `minimum_ring_size`. Each endpoint gets `weight * k` points for a
 * points-per-weight `k`: the smallest power of two that reaches ringSize
 * and gives the lightest endpoint a point, so the ring usually holds
 * ringSize to 2 * ringSize points. Why a power of two and not Envoy's exact
 * scale: with an exact scale, every change of the total weight changes
 * every endpoint's point count (removing 1 of 10 endpoints gives the other
 * nine 11 more points each), which moves about another 1/N of the keys on
 * top of the removed endpoint's. With k quantised, most changes leave every
 * other endpoint's points exactly in place; the price is paid only when the
 * total weight crosses a power-of-two boundary, where k halves or doubles
 * and about half the keys move (at most once per doubling of the total
 * weight, e.g. going from 15 to 16 endpoints of weight 1 at ringSize 1024;
 * never again once k reaches one point per unit of the lightest weight).
 * Past the cap of 8,388,608 points (Envoy's maximum ring size), k drops
 * and counts are rounded (at least one point each).
 *
 * Endpoints are placed in id order, so the ring does not depend on the
 * order of the list, and points are keyed by endpoint id, so every sidecar
 * of a cluster builds the same ring.
 *
 * The per-request cost is one hash of the key and a binary search over a
 * Uint32Array; the ring is built once per endpoint-set change (and reused
 * when only addresses or health changed). An excluded endpoint: walk the
 * ring to the next point owned by an endpoint that is not excluded. No key:
 * a uniformly random endpoint.
 */
import type { EndpointConfig, LbConfig } from "@weft/api/snapshot";
import { weftError } from "@weft/core";
import {
  ALL_EXCLUDED,
  type BalancerOptions,
  exclusions,
  fixedResults,
  NO_ENDPOINTS,
  type PickComplete,
  type PickContext,
  type Picker,
  PickerBalancer,
  type PickResult,
  uniformNotExcluded,
} from "./balancer.js";
import { hash32 } from "./hash.js";

export interface RingHashConfig {
  /** The minimum number of points on the ring. */
  readonly ringSize: number;
}

export const DEFAULT_RING_SIZE = 1024;
export const MIN_RING_SIZE = 64;
export const MAX_RING_SIZE = 8_388_608;

/** Resolves defaults and re-checks bounds (the proxy re-checks what the control plane sent). */
export function parseRingHashConfig(cfg: LbConfig): RingHashConfig {
  const ringSize = cfg.ringSize ?? DEFAULT_RING_SIZE;
  if (!Number.isInteger(ringSize) || ringSize < MIN_RING_SIZE || ringSize > MAX_RING_SIZE) {
    throw weftError("WEFT_ERR_CONFIG_INVALID", {
      detail: `ring_hash ringSize must be an integer in ${MIN_RING_SIZE}..${MAX_RING_SIZE}, got ${ringSize}`,
    });
  }
  return Object.freeze({ ringSize });
}

/**
 * Points are sorted as one Float64Array of `point * OWNER_SPACE + owner`
 * (exact: below 2^53), which sorts numerically and breaks equal points by
 * owner, deterministically, without a comparator.
 */
const OWNER_SPACE = 2 ** 21;

interface Ring {
  /** Sorted point hashes. */
  readonly points: Uint32Array;
  /** For each point, the index of its endpoint in the id-sorted list. */
  readonly owners: Uint32Array;
}

function byId(a: EndpointConfig, b: EndpointConfig): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Points per unit of weight: the smallest power of two k with
 * k * totalWeight >= ringSize and k * minWeight >= 1 (the lightest endpoint
 * gets a point), halved while the ring would exceed MAX_RING_SIZE.
 */
export function pointsPerWeight(totalWeight: number, minWeight: number, ringSize: number): number {
  let k = 2 ** Math.ceil(Math.log2(Math.max(ringSize / totalWeight, 1 / minWeight)));
  // log2 of an exact power of two may round either way: settle on the smallest k that reaches both.
  while (k * totalWeight < ringSize || k * minWeight < 1) k *= 2;
  while ((k / 2) * totalWeight >= ringSize && (k / 2) * minWeight >= 1) k /= 2;
  while (k * totalWeight > MAX_RING_SIZE) k /= 2;
  return k;
}

/** Builds the ring for endpoints already sorted by id. */
export function buildRing(sorted: readonly EndpointConfig[], ringSize: number): Ring {
  const n = sorted.length;
  if (n === 0) return { points: new Uint32Array(0), owners: new Uint32Array(0) };
  if (n > OWNER_SPACE) throw new RangeError(`ring_hash supports at most ${OWNER_SPACE} endpoints`);
  let total = 0;
  let min = Number.POSITIVE_INFINITY;
  for (const e of sorted) {
    total += e.weight;
    if (e.weight < min) min = e.weight;
  }
  const k = pointsPerWeight(total, min, ringSize);
  const counts = new Uint32Array(n);
  let current = 0;
  for (let i = 0; i < n; i++) {
    const c = Math.max(1, Math.round(sorted[i]!.weight * k));
    counts[i] = c;
    current += c;
  }
  const packed = new Float64Array(current);
  let at = 0;
  for (let i = 0; i < n; i++) {
    // Point j of an endpoint is the same whatever its count: a larger ring only adds points.
    const prefix = `${sorted[i]!.id}_`;
    for (let j = 0; j < counts[i]!; j++) packed[at++] = hash32(prefix + j) * OWNER_SPACE + i;
  }
  packed.sort();
  const points = new Uint32Array(current);
  const owners = new Uint32Array(current);
  for (let p = 0; p < current; p++) {
    const v = packed[p]!;
    const point = Math.floor(v / OWNER_SPACE);
    points[p] = point;
    owners[p] = v - point * OWNER_SPACE;
  }
  return { points, owners };
}

/** Whether two id-sorted lists place the same points (same ids, same weights). */
function sameShape(a: readonly EndpointConfig[], b: readonly EndpointConfig[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i]!.id !== b[i]!.id || a[i]!.weight !== b[i]!.weight) return false;
  }
  return true;
}

export class RingHashPicker implements Picker {
  readonly endpoints: readonly EndpointConfig[];
  readonly ringSize: number;
  /** The endpoints in id order: ring owners and results index into this. */
  readonly #sorted: readonly EndpointConfig[];
  readonly #results: readonly PickComplete[];
  readonly #ring: Ring;
  readonly #random: () => number;

  constructor(
    endpoints: readonly EndpointConfig[],
    ringSize: number,
    random: () => number,
    previous?: Picker,
  ) {
    this.endpoints = endpoints;
    this.ringSize = ringSize;
    this.#sorted = Object.freeze(endpoints.slice().sort(byId));
    this.#results = fixedResults(this.#sorted);
    this.#random = random;
    this.#ring =
      previous instanceof RingHashPicker &&
      previous.ringSize === ringSize &&
      sameShape(previous.#sorted, this.#sorted)
        ? previous.#ring
        : buildRing(this.#sorted, ringSize);
  }

  /** How many points the ring holds in all. */
  get entries(): number {
    return this.#ring.points.length;
  }

  /** How many points the endpoint owns (0 when unknown). */
  entriesFor(endpointId: string): number {
    const owner = this.#sorted.findIndex((e) => e.id === endpointId);
    let c = 0;
    for (const o of this.#ring.owners) if (o === owner) c++;
    return c;
  }

  pick(ctx?: PickContext): PickResult {
    const sorted = this.#sorted;
    if (sorted.length === 0) return NO_ENDPOINTS;
    const exclude = exclusions(ctx);
    const key = ctx?.hashKey;
    if (key === undefined) {
      const i = uniformNotExcluded(sorted, this.#random, exclude);
      return i < 0 ? ALL_EXCLUDED : this.#results[i]!;
    }
    const { points, owners } = this.#ring;
    const len = points.length;
    const h = hash32(key);
    let lo = 0;
    let hi = len;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    let at = lo === len ? 0 : lo;
    let owner = owners[at]!;
    if (exclude === undefined || !exclude.has(sorted[owner]!.id)) return this.#results[owner]!;
    // A retry: make sure some endpoint is left before walking the ring.
    let allowed = false;
    for (let i = 0; i < sorted.length && !allowed; i++) allowed = !exclude.has(sorted[i]!.id);
    if (!allowed) return ALL_EXCLUDED;
    for (let k = 1; k < len; k++) {
      at = at + 1 === len ? 0 : at + 1;
      owner = owners[at]!;
      if (!exclude.has(sorted[owner]!.id)) return this.#results[owner]!;
    }
    return ALL_EXCLUDED; // unreachable: every endpoint owns at least one point
  }
}

export class RingHashBalancer extends PickerBalancer {
  readonly policy = "ring_hash";
  readonly config: RingHashConfig;
  readonly #random: () => number;

  constructor(config: RingHashConfig, opts: BalancerOptions = {}) {
    super();
    this.config = config;
    this.#random = opts.random ?? Math.random;
  }

  protected build(endpoints: readonly EndpointConfig[], previous: Picker): Picker {
    return new RingHashPicker(endpoints, this.config.ringSize, this.#random, previous);
  }
}

export function createRingHash(cfg: LbConfig, opts: BalancerOptions): RingHashBalancer {
  return new RingHashBalancer(parseRingHashConfig(cfg), opts);
}
