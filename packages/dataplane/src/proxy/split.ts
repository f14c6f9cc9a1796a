/**
 * Weighted choice among a listener's split targets (Consul's service
 * splitter, Envoy's weighted_clusters): one draw per HTTP request or TCP
 * connection. Weights are percents summing to 100; a target of weight 0
 * never gets traffic.
 */
import type { SplitTarget } from "@weft/api/snapshot";

export function pickSplit(
  splits: readonly SplitTarget[],
  random: () => number = Math.random,
): string | undefined {
  let r = random() * 100;
  let last: string | undefined;
  for (const t of splits) {
    if (t.weight <= 0) continue;
    last = t.cluster;
    r -= t.weight;
    if (r < 0) return t.cluster;
  }
  // Rounding left a sliver past the sum: it belongs to the last target with weight.
  return last;
}
