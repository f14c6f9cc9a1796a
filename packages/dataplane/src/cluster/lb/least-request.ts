/**
 * least_request: the power of N random choices (Envoy's least request; N is
 * `choiceCount`, default 2). Draw N endpoints uniformly at random (with
 * replacement, as Envoy does) and take the one with the fewest requests in
 * flight, counted from pick to `done()`. Ties go to the first drawn, so an
 * idle cluster is balanced uniformly.
 *
 * Unequal weights: the draw stays uniform and the comparison becomes
 * (in flight + 1) / weight, so under load in-flight counts settle in
 * proportion to weight. Envoy instead runs an EDF schedule over
 * weight / (in flight + 1)^bias; this keeps the pick O(N), allocation-free
 * apart from the result, and identical to Envoy when weights are equal.
 *
 * Counters live in shared objects keyed by endpoint id and survive picker
 * rebuilds while the endpoint remains. An endpoint that leaves and comes
 * back starts from zero: its old requests are finishing on the old counter.
 */
import type { EndpointConfig, LbConfig } from "@weft/api/snapshot";
import { weftError } from "@weft/core";
import {
  ALL_EXCLUDED,
  type BalancerOptions,
  exclusions,
  NO_ENDPOINTS,
  type PickComplete,
  type PickContext,
  type Picker,
  PickerBalancer,
  type PickResult,
  uniformIndex,
} from "./balancer.js";

export interface LeastRequestConfig {
  /** How many endpoints each pick compares (2..100). */
  readonly choiceCount: number;
}

export const DEFAULT_CHOICE_COUNT = 2;
const MAX_CHOICE_COUNT = 100;

/** Resolves defaults and re-checks bounds (the proxy re-checks what the control plane sent). */
export function parseLeastRequestConfig(cfg: LbConfig): LeastRequestConfig {
  const choiceCount = cfg.choiceCount ?? DEFAULT_CHOICE_COUNT;
  if (!Number.isInteger(choiceCount) || choiceCount < 2 || choiceCount > MAX_CHOICE_COUNT) {
    throw weftError("WEFT_ERR_CONFIG_INVALID", {
      detail: `least_request choiceCount must be an integer in 2..${MAX_CHOICE_COUNT}, got ${choiceCount}`,
    });
  }
  return Object.freeze({ choiceCount });
}

/** The in-flight counter of one endpoint, shared by every picker that lists it. */
interface Load {
  inFlight: number;
}

/** Draws per choice before giving up on it when the draws keep landing on excluded endpoints. */
const TRIES_PER_CHOICE = 4;

export class LeastRequestPicker implements Picker {
  readonly endpoints: readonly EndpointConfig[];
  readonly #loads: readonly Load[];
  readonly #weights: readonly number[];
  readonly #equalWeights: boolean;
  readonly #choices: number;
  readonly #random: () => number;

  constructor(
    endpoints: readonly EndpointConfig[],
    loads: readonly Load[],
    choices: number,
    random: () => number,
  ) {
    this.endpoints = endpoints;
    this.#loads = loads;
    this.#weights = Object.freeze(endpoints.map((e) => e.weight));
    this.#equalWeights = endpoints.every((e) => e.weight === endpoints[0]!.weight);
    this.#choices = choices;
    this.#random = random;
  }

  /** Whether endpoint a is less loaded than endpoint b. */
  #lighter(a: number, b: number): boolean {
    const la = this.#loads[a]!.inFlight;
    const lb = this.#loads[b]!.inFlight;
    if (this.#equalWeights) return la < lb;
    // (la + 1) / wa < (lb + 1) / wb, without dividing.
    return (la + 1) * this.#weights[b]! < (lb + 1) * this.#weights[a]!;
  }

  pick(ctx?: PickContext): PickResult {
    const n = this.endpoints.length;
    if (n === 0) return NO_ENDPOINTS;
    const exclude = exclusions(ctx);
    let best = -1;
    if (n === 1) {
      best = 0;
      if (exclude?.has(this.endpoints[0]!.id)) return ALL_EXCLUDED;
    } else {
      for (let c = 0; c < this.#choices; c++) {
        let i = uniformIndex(n, this.#random);
        if (exclude !== undefined) {
          for (let t = 1; t < TRIES_PER_CHOICE && exclude.has(this.endpoints[i]!.id); t++) {
            i = uniformIndex(n, this.#random);
          }
          if (exclude.has(this.endpoints[i]!.id)) continue;
        }
        if (best < 0 || this.#lighter(i, best)) best = i;
      }
      // Every draw hit an excluded endpoint: compare all the others.
      if (best < 0 && exclude !== undefined) {
        for (let i = 0; i < n; i++) {
          if (exclude.has(this.endpoints[i]!.id)) continue;
          if (best < 0 || this.#lighter(i, best)) best = i;
        }
      }
      if (best < 0) return ALL_EXCLUDED;
    }
    return started(this.endpoints[best]!, this.#loads[best]!);
  }
}

function started(endpoint: EndpointConfig, load: Load): PickComplete {
  load.inFlight++;
  let open = true;
  return {
    type: "complete",
    endpoint,
    done() {
      if (!open) return;
      open = false;
      load.inFlight--;
    },
  };
}

export class LeastRequestBalancer extends PickerBalancer {
  readonly policy = "least_request";
  readonly config: LeastRequestConfig;
  readonly #random: () => number;
  /** Counters of the endpoints in the current picker, by id. */
  #loads = new Map<string, Load>();

  constructor(config: LeastRequestConfig, opts: BalancerOptions = {}) {
    super();
    this.config = config;
    this.#random = opts.random ?? Math.random;
  }

  /** Requests picked for this endpoint and not yet `done()` (0 for an unknown id). */
  inFlight(endpointId: string): number {
    return this.#loads.get(endpointId)?.inFlight ?? 0;
  }

  protected build(endpoints: readonly EndpointConfig[]): Picker {
    const next = new Map<string, Load>();
    const loads = endpoints.map((e) => {
      let load = next.get(e.id) ?? this.#loads.get(e.id);
      if (load === undefined) load = { inFlight: 0 };
      next.set(e.id, load);
      return load;
    });
    this.#loads = next;
    return new LeastRequestPicker(endpoints, Object.freeze(loads), this.config.choiceCount, this.#random);
  }
}

export function createLeastRequest(cfg: LbConfig, opts: BalancerOptions): LeastRequestBalancer {
  return new LeastRequestBalancer(parseLeastRequestConfig(cfg), opts);
}
