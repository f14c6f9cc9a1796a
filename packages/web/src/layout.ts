/**
 * Topology layout: a deterministic layered drawing (callers left, callees
 * right), pure so it is unit-tested in node and so the graph does not move
 * between polls unless the set of services or edges changes.
 *
 * Layers: a node's layer is the length of the longest call path reaching it
 * (edges closing a cycle are ignored for this, found by a DFS in name order).
 * Order within a layer: by the mean position of the node's callers in the
 * previous layers (one barycentre pass), ties by name. Positions are centred
 * in a fixed viewBox so the SVG keeps its size while services come and go.
 */

export interface GraphEdge {
  source: string;
  destination: string;
}

export interface NodePos {
  x: number;
  y: number;
  layer: number;
}

export interface Layout {
  width: number;
  height: number;
  nodes: Map<string, NodePos>;
}

export interface LayoutOptions {
  width: number;
  height: number;
  /** Space kept at the borders for node labels. */
  margin?: number;
}

/** Layer of each node: longest path from a root over the acyclic part of the graph. */
export function assignLayers(nodes: readonly string[], edges: readonly GraphEdge[]): Map<string, number> {
  const names = [...new Set(nodes)].sort();
  const out = new Map<string, string[]>();
  for (const n of names) out.set(n, []);
  for (const e of edges) {
    if (e.source === e.destination) continue;
    if (!out.has(e.source) || !out.has(e.destination)) continue;
    out.get(e.source)?.push(e.destination);
  }
  for (const list of out.values()) list.sort();
  // DFS in name order marks back edges (into a node still on the stack): they close cycles.
  const state = new Map<string, 1 | 2>();
  const back = new Set<string>();
  const visit = (n: string) => {
    state.set(n, 1);
    for (const m of out.get(n) ?? []) {
      const s = state.get(m);
      if (s === 1) back.add(`${n}\u0000${m}`);
      else if (s === undefined) visit(m);
    }
    state.set(n, 2);
  };
  const indegree = new Map<string, number>(names.map((n) => [n, 0]));
  for (const [n, list] of out) for (const m of list) if (n !== m) indegree.set(m, (indegree.get(m) ?? 0) + 1);
  // Roots first (services nobody calls), then whatever a cycle left unvisited.
  for (const n of names) if (indegree.get(n) === 0 && !state.has(n)) visit(n);
  for (const n of names) if (!state.has(n)) visit(n);

  // Longest path over the DAG: Kahn's order on the forward edges.
  const fwd = new Map<string, string[]>();
  const indeg = new Map<string, number>(names.map((n) => [n, 0]));
  for (const [n, list] of out) {
    const kept = list.filter((m) => !back.has(`${n}\u0000${m}`));
    fwd.set(n, kept);
    for (const m of kept) indeg.set(m, (indeg.get(m) ?? 0) + 1);
  }
  const layer = new Map<string, number>(names.map((n) => [n, 0]));
  const queue = names.filter((n) => indeg.get(n) === 0);
  while (queue.length > 0) {
    const n = queue.shift() as string;
    for (const m of fwd.get(n) ?? []) {
      layer.set(m, Math.max(layer.get(m) ?? 0, (layer.get(n) ?? 0) + 1));
      const d = (indeg.get(m) ?? 0) - 1;
      indeg.set(m, d);
      if (d === 0) queue.push(m);
    }
  }
  return layer;
}

export function layoutGraph(nodes: readonly string[], edges: readonly GraphEdge[], o: LayoutOptions): Layout {
  const margin = o.margin ?? 60;
  const layers = assignLayers(nodes, edges);
  const byLayer: string[][] = [];
  for (const [n, l] of [...layers].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const col = byLayer[l] ?? [];
    col.push(n);
    byLayer[l] = col;
  }
  const callers = new Map<string, string[]>();
  for (const e of edges) {
    const list = callers.get(e.destination) ?? [];
    list.push(e.source);
    callers.set(e.destination, list);
  }
  const rank = new Map<string, number>();
  const result = new Map<string, NodePos>();
  const cols = byLayer.length;
  byLayer.forEach((col, li) => {
    const key = (n: string) => {
      const ps = (callers.get(n) ?? []).map((c) => rank.get(c)).filter((r): r is number => r !== undefined);
      return ps.length > 0 ? ps.reduce((a, b) => a + b, 0) / ps.length : Number.POSITIVE_INFINITY;
    };
    const sorted = li === 0 ? [...col] : [...col].sort((a, b) => key(a) - key(b) || (a < b ? -1 : 1));
    sorted.forEach((n, i) => {
      // Rank in 0..1 within the column, so that columns of different sizes line up.
      rank.set(n, sorted.length > 1 ? i / (sorted.length - 1) : 0.5);
      const x = cols > 1 ? margin + ((o.width - 2 * margin) * li) / (cols - 1) : o.width / 2;
      // Odd columns are lowered by a fraction of a slot: a call that skips a column (a -> c
      // beside a -> b -> c) then does not run through the node between.
      const zig = cols > 2 && li % 2 === 1 ? 0.3 : 0;
      const y = margin + ((o.height - 2 * margin) * (i + 0.5 + zig)) / (sorted.length + (cols > 2 ? 0.3 : 0));
      result.set(n, { x: round(x), y: round(y), layer: li });
    });
  });
  return { width: o.width, height: o.height, nodes: result };
}

/**
 * The drawn path of an edge between two node centres, stopping `r` short
 * of each (the node's radius), bent a little so that a pair of opposite
 * edges (a -> b and b -> a) do not overlap; the label point is the curve's
 * middle.
 */
export function edgePath(
  a: { x: number; y: number },
  b: { x: number; y: number },
  r: number,
): { d: string; labelX: number; labelY: number } {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len = Math.hypot(dx, dy);
  if (len < 2 * r + 1) {
    // A self-call or overlapping nodes: a small loop above the node.
    const d = `M${round(a.x - r / 2)} ${round(a.y - r)} C${round(a.x - 2 * r)} ${round(a.y - 3 * r)} ${round(a.x + 2 * r)} ${round(a.y - 3 * r)} ${round(a.x + r / 2)} ${round(a.y - r)}`;
    return { d, labelX: round(a.x), labelY: round(a.y - 3 * r) };
  }
  const ux = dx / len;
  const uy = dy / len;
  const sx = a.x + ux * r;
  const sy = a.y + uy * r;
  const ex = b.x - ux * (r + 4);
  const ey = b.y - uy * (r + 4);
  // Bend to the left of the direction of travel: opposite edges bend apart.
  const bend = Math.min(40, len * 0.12);
  const cx = (sx + ex) / 2 + uy * bend;
  const cy = (sy + ey) / 2 - ux * bend;
  const labelX = 0.25 * sx + 0.5 * cx + 0.25 * ex;
  const labelY = 0.25 * sy + 0.5 * cy + 0.25 * ey;
  return {
    d: `M${round(sx)} ${round(sy)} Q${round(cx)} ${round(cy)} ${round(ex)} ${round(ey)}`,
    labelX: round(labelX),
    labelY: round(labelY),
  };
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
