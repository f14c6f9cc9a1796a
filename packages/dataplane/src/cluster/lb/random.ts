/**
 * random: a uniform choice among the endpoints not excluded (Envoy's random
 * policy). Weights are ignored, as in Envoy; use `weighted` for them. It
 * keeps no state, so a rebuild only swaps the list.
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
  uniformNotExcluded,
} from "./balancer.js";

export class RandomPicker implements Picker {
  readonly endpoints: readonly EndpointConfig[];
  readonly #results: readonly PickComplete[];
  readonly #random: () => number;

  constructor(endpoints: readonly EndpointConfig[], random: () => number) {
    this.endpoints = endpoints;
    this.#results = fixedResults(endpoints);
    this.#random = random;
  }

  pick(ctx?: PickContext): PickResult {
    if (this.endpoints.length === 0) return NO_ENDPOINTS;
    const i = uniformNotExcluded(this.endpoints, this.#random, exclusions(ctx));
    return i < 0 ? ALL_EXCLUDED : this.#results[i]!;
  }
}

export class RandomBalancer extends PickerBalancer {
  readonly policy = "random";
  readonly #random: () => number;

  constructor(opts: BalancerOptions = {}) {
    super();
    this.#random = opts.random ?? Math.random;
  }

  protected build(endpoints: readonly EndpointConfig[]): Picker {
    return new RandomPicker(endpoints, this.#random);
  }
}

export function createRandom(_cfg: LbConfig, opts: BalancerOptions): RandomBalancer {
  return new RandomBalancer(opts);
}
