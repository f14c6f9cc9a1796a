// The sidecar's load balancers: a registry of policies, each a Balancer that
// publishes immutable pickers (see balancer.ts for the contract).
export {
  ALL_EXCLUDED,
  type Balancer,
  type BalancerOptions,
  NO_ENDPOINTS,
  type PickComplete,
  type PickContext,
  type Picker,
  type PickFail,
  type PickFailReason,
  type PickResult,
} from "./balancer.js";
export { fnv1a64Hex, hash32 } from "./hash.js";
export { LeastRequestBalancer, type LeastRequestConfig } from "./least-request.js";
export {
  type BalancerFactory,
  createBalancer,
  registeredLoadBalancers,
  registerLoadBalancer,
} from "./registry.js";
export { RingHashBalancer, type RingHashConfig } from "./ring-hash.js";
