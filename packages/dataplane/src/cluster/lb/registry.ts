/**
 * Load balancers by policy name, each with the factory that parses its part
 * of the cluster's `lb` config (grpc-js `registerLoadBalancerType`, Envoy's
 * factories). The five built-in policies register here; an extension adds
 * its own with `registerLoadBalancer` before the first snapshot is applied.
 *
 * `createBalancer` runs when a cluster is (re)configured, not per request,
 * so it throws: an unknown policy or a bad value is a WeftError with code
 * WEFT_ERR_CONFIG_INVALID, and the caller keeps its last good config.
 */
import type { LbConfig } from "@weft/api/snapshot";
import { weftError } from "@weft/core";
import type { Balancer, BalancerOptions } from "./balancer.js";
import { createLeastRequest } from "./least-request.js";
import { createRandom } from "./random.js";
import { createRingHash } from "./ring-hash.js";
import { createRoundRobin } from "./round-robin.js";
import { createWeighted } from "./weighted.js";

/**
 * Builds a balancer from a cluster's `lb` config: reads and checks the
 * fields its policy uses (defaults resolved there, once), ignores the rest.
 */
export type BalancerFactory = (cfg: LbConfig, opts: BalancerOptions) => Balancer;

const factories = new Map<string, BalancerFactory>();

/** Registers a policy. A name can be registered once (a second registration is a bug, not an override). */
export function registerLoadBalancer(policy: string, factory: BalancerFactory): void {
  if (factories.has(policy)) {
    throw weftError("WEFT_ERR_CONFLICT", {
      detail: `load balancer policy "${policy}" is already registered`,
    });
  }
  factories.set(policy, factory);
}

/** The registered policy names, in registration order. */
export function registeredLoadBalancers(): string[] {
  return [...factories.keys()];
}

/** A new balancer for `cfg.policy`, with no endpoints until its first `update`. */
export function createBalancer(cfg: LbConfig, opts: BalancerOptions = {}): Balancer {
  const factory = factories.get(cfg.policy);
  if (factory === undefined) {
    throw weftError("WEFT_ERR_CONFIG_INVALID", {
      detail: `unknown load balancer policy "${String(cfg.policy)}"; registered: ${registeredLoadBalancers().join(", ")}`,
    });
  }
  return factory(cfg, opts);
}

registerLoadBalancer("round_robin", createRoundRobin);
registerLoadBalancer("least_request", createLeastRequest);
registerLoadBalancer("random", createRandom);
registerLoadBalancer("weighted", createWeighted);
registerLoadBalancer("ring_hash", createRingHash);
