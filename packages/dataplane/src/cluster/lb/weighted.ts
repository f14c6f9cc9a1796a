/**
 * weighted: weighted round robin by `endpoint.weight`, scheduled earliest
 * deadline first as Envoy does. Every endpoint has a deadline on a virtual
 * clock and advances it by 1/weight each time it is picked; a pick takes
 * the earliest deadline (ties: the one queued first). Over any run of picks
 * each endpoint's count is within one of its share, and heavy endpoints are
 * interleaved with light ones rather than picked in bursts.
 *
 * EDF rather than nginx's smooth WRR because a pick is O(log n) on a heap
 * instead of O(n) over every endpoint, which matters at thousands of them.
 * Phases start at a random point within each endpoint's first period, so
 * sidecars that get the same list do not march in step (as round_robin
 * starts at a random offset). A rebuild keeps each remaining endpoint's
 * deadline, so a snapshot that adds an endpoint does not restart the
 * schedule. An excluded endpoint is passed over without losing its place.
 */
import type { EndpointConfig, LbConfig } from "@weft/api/snapshot";
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
} from "./balancer.js";

/** One endpoint's place in the schedule. */
interface Entry {
  /** Index in the picker's endpoint list. */
  readonly index: number;
  /** 1 / weight: how far a pick moves the deadline. */
  readonly step: number;
  deadline: number;
  /** Queue order, for ties between equal deadlines (FIFO, as Envoy's EDF). */
  seq: number;
  /** Position in the heap. */
  pos: number;
}

/** What a rebuilt picker needs from its predecessor. */
export interface WeightedSchedule {
  readonly now: number;
  readonly seq: number;
  readonly entries: ReadonlyMap<
    string,
    { readonly deadline: number; readonly step: number; readonly seq: number }
  >;
}

function before(a: Entry, b: Entry): boolean {
  return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
}

export class WeightedPicker implements Picker {
  readonly endpoints: readonly EndpointConfig[];
  readonly #results: readonly PickComplete[];
  /** A binary min-heap on (deadline, seq). */
  readonly #heap: Entry[];
  /** The deadline of the latest pick: new endpoints join from here. */
  #now: number;
  #seq: number;

  constructor(endpoints: readonly EndpointConfig[], entries: readonly Entry[], now: number, seq: number) {
    this.endpoints = endpoints;
    this.#results = fixedResults(endpoints);
    this.#heap = entries.slice();
    this.#now = now;
    this.#seq = seq;
    for (let i = 0; i < this.#heap.length; i++) this.#heap[i]!.pos = i;
    for (let i = (this.#heap.length >> 1) - 1; i >= 0; i--) this.#siftDown(i);
  }

  /** A copy of the schedule, for the successor picker. */
  schedule(): WeightedSchedule {
    const entries = new Map<string, { deadline: number; step: number; seq: number }>();
    for (const e of this.#heap) {
      entries.set(this.endpoints[e.index]!.id, { deadline: e.deadline, step: e.step, seq: e.seq });
    }
    return { now: this.#now, seq: this.#seq, entries };
  }

  pick(ctx?: PickContext): PickResult {
    const heap = this.#heap;
    if (heap.length === 0) return NO_ENDPOINTS;
    let chosen = heap[0]!;
    const exclude = exclusions(ctx);
    if (exclude?.has(this.endpoints[chosen.index]!.id)) {
      // Rare (a retry): the earliest deadline among the others, by a scan.
      let best: Entry | undefined;
      for (const e of heap) {
        if (exclude.has(this.endpoints[e.index]!.id)) continue;
        if (best === undefined || before(e, best)) best = e;
      }
      if (best === undefined) return ALL_EXCLUDED;
      chosen = best;
    }
    if (chosen.deadline > this.#now) this.#now = chosen.deadline;
    chosen.deadline += chosen.step;
    chosen.seq = ++this.#seq;
    this.#siftDown(chosen.pos);
    return this.#results[chosen.index]!;
  }

  #siftDown(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const e = heap[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && before(heap[r]!, heap[l]!) ? r : l;
      const child = heap[c]!;
      if (!before(child, e)) break;
      heap[i] = child;
      child.pos = i;
      i = c;
    }
    heap[i] = e;
    e.pos = i;
  }
}

export class WeightedBalancer extends PickerBalancer {
  readonly policy = "weighted";
  readonly #random: () => number;

  constructor(opts: BalancerOptions = {}) {
    super();
    this.#random = opts.random ?? Math.random;
  }

  protected build(endpoints: readonly EndpointConfig[], previous: Picker): Picker {
    const prev = previous instanceof WeightedPicker ? previous.schedule() : undefined;
    const now = prev?.now ?? 0;
    let seq = prev?.seq ?? 0;
    const entries = endpoints.map((endpoint, index): Entry => {
      const step = 1 / endpoint.weight;
      const old = prev?.entries.get(endpoint.id);
      if (old !== undefined) {
        // Same place in the schedule; a changed weight rescales the time left.
        const deadline = old.step === step ? old.deadline : now + (old.deadline - now) * (step / old.step);
        return { index, step, deadline, seq: old.seq, pos: 0 };
      }
      return { index, step, deadline: now + this.#random() * step, seq: ++seq, pos: 0 };
    });
    return new WeightedPicker(endpoints, entries, now, seq);
  }
}

export function createWeighted(_cfg: LbConfig, opts: BalancerOptions): WeightedBalancer {
  return new WeightedBalancer(opts);
}
