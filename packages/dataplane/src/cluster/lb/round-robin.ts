/**
 * round_robin: each pick takes the next endpoint in list order, skipping
 * excluded ones (Envoy's and grpc-js's round robin).
 *
 * The first picker starts at a random offset, so a fleet of sidecars that
 * receive the same list at once do not all send their first request to the
 * first endpoint. A rebuilt picker continues after the endpoint picked last
 * when that endpoint remains, so a snapshot that adds or removes an endpoint
 * does not restart the rotation.
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
  uniformIndex,
} from "./balancer.js";

export class RoundRobinPicker implements Picker {
  readonly endpoints: readonly EndpointConfig[];
  readonly #results: readonly PickComplete[];
  /** Index of the next endpoint to try; always in [0, n) when n > 0. */
  #next: number;

  constructor(endpoints: readonly EndpointConfig[], start: number) {
    this.endpoints = endpoints;
    this.#results = fixedResults(endpoints);
    this.#next = endpoints.length === 0 ? 0 : start % endpoints.length;
  }

  /** The index (in this picker's list) just before the next pick: the endpoint picked last. -1 when empty. */
  lastIndex(): number {
    const n = this.endpoints.length;
    return n === 0 ? -1 : (this.#next + n - 1) % n;
  }

  pick(ctx?: PickContext): PickResult {
    const results = this.#results;
    const n = results.length;
    if (n === 0) return NO_ENDPOINTS;
    let i = this.#next;
    const exclude = exclusions(ctx);
    if (exclude !== undefined) {
      for (let k = 0; k < n && exclude.has(results[i]!.endpoint.id); k++) i = i + 1 === n ? 0 : i + 1;
      if (exclude.has(results[i]!.endpoint.id)) return ALL_EXCLUDED;
    }
    this.#next = i + 1 === n ? 0 : i + 1;
    return results[i]!;
  }
}

export class RoundRobinBalancer extends PickerBalancer {
  readonly policy = "round_robin";
  readonly #random: () => number;

  constructor(opts: BalancerOptions = {}) {
    super();
    this.#random = opts.random ?? Math.random;
  }

  protected build(endpoints: readonly EndpointConfig[], previous: Picker): Picker {
    const n = endpoints.length;
    if (n === 0) return new RoundRobinPicker(endpoints, 0);
    if (previous instanceof RoundRobinPicker) {
      const last = previous.lastIndex();
      if (last >= 0) {
        const lastId = previous.endpoints[last]!.id;
        const at = endpoints.findIndex((e) => e.id === lastId);
        // The last endpoint is gone: its old index now holds the one that followed it.
        return new RoundRobinPicker(endpoints, at >= 0 ? at + 1 : last);
      }
    }
    return new RoundRobinPicker(endpoints, uniformIndex(n, this.#random));
  }
}

export function createRoundRobin(_cfg: LbConfig, opts: BalancerOptions): RoundRobinBalancer {
  return new RoundRobinBalancer(opts);
}
