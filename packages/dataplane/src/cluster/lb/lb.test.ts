import type { EndpointConfig, LbConfig, LbPolicy } from "@weft/api/snapshot";
import { SNAPSHOT_LB_POLICIES } from "@weft/api/snapshot";
import { isWeftError } from "@weft/core";
import { describe, expect, it } from "vitest";
import { type Balancer, NO_ENDPOINTS } from "./balancer.js";
import { describeBalancerContract, endpoints, outcome } from "./lb.suite.js";
import { createBalancer, registeredLoadBalancers, registerLoadBalancer } from "./registry.js";

// Every registered policy passes the shared contract.
for (const policy of registeredLoadBalancers()) {
  describeBalancerContract(policy, (opts) => createBalancer({ policy: policy as LbPolicy }, opts));
}

function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

describe("load balancer registry", () => {
  it("registers every policy the snapshot can name", () => {
    expect(registeredLoadBalancers().sort()).toEqual([...SNAPSHOT_LB_POLICIES].sort());
  });

  it("refuses an unknown policy with a config error naming the registered ones", () => {
    const e = thrownBy(() => createBalancer({ policy: "maglev" } as unknown as LbConfig));
    expect(isWeftError(e, "WEFT_ERR_CONFIG_INVALID")).toBe(true);
    expect((e as Error).message).toContain('"maglev"');
    expect((e as Error).message).toContain("round_robin");
  });

  it("refuses an inherited property name as a policy", () => {
    const e = thrownBy(() => createBalancer({ policy: "__proto__" } as unknown as LbConfig));
    expect(isWeftError(e, "WEFT_ERR_CONFIG_INVALID")).toBe(true);
  });

  it("refuses a second registration of a name", () => {
    const e = thrownBy(() => registerLoadBalancer("round_robin", () => createBalancer({ policy: "random" })));
    expect(isWeftError(e, "WEFT_ERR_CONFLICT")).toBe(true);
    expect(createBalancer({ policy: "round_robin" }).policy).toBe("round_robin");
  });

  it("creates a registered extension with its config and options, and runs the contract over it", () => {
    const seen: unknown[] = [];
    const random = () => 0;
    registerLoadBalancer("first_healthy", (cfg, opts) => {
      seen.push(cfg, opts.random);
      let list: readonly EndpointConfig[] = [];
      const b: Balancer = {
        policy: "first_healthy",
        get picker() {
          return { endpoints: list, pick: () => b.pick() };
        },
        update(next) {
          list = next;
        },
        pick: () => (list[0] ? { type: "complete", endpoint: list[0], done() {} } : NO_ENDPOINTS),
      };
      return b;
    });
    const cfg = { policy: "first_healthy" } as unknown as LbConfig;
    const b = createBalancer(cfg, { random });
    expect(seen).toEqual([cfg, random]);
    b.update(endpoints(2));
    expect(outcome(b.pick())).toBe("ep-0");
    expect(registeredLoadBalancers()).toContain("first_healthy");
  });

  it("passes each policy's own config through its parser", () => {
    expect(isWeftError(thrownBy(() => createBalancer({ policy: "least_request", choiceCount: 1 })))).toBe(
      true,
    );
    expect(isWeftError(thrownBy(() => createBalancer({ policy: "ring_hash", ringSize: 10 })))).toBe(true);
    expect(createBalancer({ policy: "least_request", choiceCount: 5 }).policy).toBe("least_request");
  });
});
