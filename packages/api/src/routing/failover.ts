/**
 * The failover rule, in one place for the sidecar (ClusterSet.resolve, on
 * its live clusters with outlier ejections) and `weft explain` (on a
 * snapshot, with the catalog's health): a cluster serves its own traffic
 * while it has an endpoint to pick, else the first of its failover clusters
 * that has one; with none, itself (the request fails there: 503 UH). A
 * failover target's own failover is not followed.
 */
export interface FailoverView<C> {
  get(name: string): C | undefined;
  failover(c: C): readonly string[] | undefined;
  available(c: C): boolean;
}

export function servingCluster<C>(name: string, view: FailoverView<C>): C | undefined {
  const primary = view.get(name);
  if (primary === undefined) return undefined;
  const targets = view.failover(primary);
  if (targets === undefined || view.available(primary)) return primary;
  for (const f of targets) {
    const c = view.get(f);
    if (c !== undefined && view.available(c)) return c;
  }
  return primary;
}
