/**
 * Live topology: services as nodes, calls as edges coloured by success rate
 * and labelled with rps (the caller's sidecar's view, /v1/metrics/edges),
 * refreshed every 2 s in place. The layout (layout.ts) is recomputed only
 * when the set of services or edges changes, so the picture holds still.
 * A node links to its service page; an edge shows its figures beside the graph.
 * A service with proxyless gRPC instances (no sidecar, config over xDS) is
 * drawn with a dashed outer ring and says so in its label.
 */
import type { EdgeGolden, EdgesMetricsResponse, ServiceSummary } from "@weft/api";
import { errorText } from "../api.js";
import { fill, h, s } from "../dom.js";
import { formatMs, formatRate, formatRps, healthText, overallHealth, rateClass } from "../format.js";
import { edgePath, type Layout, layoutGraph } from "../layout.js";
import { hrefOf } from "../routes.js";
import { POLL_MS, poll, type View, type ViewContext } from "../view.js";

const W = 960;
const H = 520;
const R = 22;

export function topologyView(ctx: ViewContext): View {
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" }, "Loading…");
  const edgesLayer = s("g", { class: "edges" });
  const nodesLayer = s("g", { class: "nodes" });
  const svg = s(
    "svg",
    {
      viewBox: `0 0 ${W} ${H}`,
      class: "topology",
      role: "group",
      "aria-label": "Service topology",
      "data-testid": "topology",
    },
    s(
      "defs",
      {},
      ["good", "warn", "bad", "idle"].map((c) =>
        s(
          "marker",
          {
            id: `arrow-${c}`,
            viewBox: "0 0 10 10",
            refX: 8,
            refY: 5,
            markerWidth: 7,
            markerHeight: 7,
            orient: "auto-start-reverse",
          },
          s("path", { d: "M0 0 L10 5 L0 10 z", class: `arrow ${c}` }),
        ),
      ),
    ),
    edgesLayer,
    nodesLayer,
  );
  const details = h(
    "aside",
    { class: "edge-details", "aria-live": "polite", "data-testid": "edge-details" },
    h("p", { class: "muted" }, "Select an edge to see its figures; select a service to open it."),
  );
  let layoutKey = "";
  let layout: Layout | undefined;
  let selected: string | undefined;

  const showEdge = (e: EdgeGolden) => {
    selected = `${e.source}>${e.destination}`;
    for (const [id, el] of edgeEls) el.g.classList.toggle("selected", id === selected);
    fill(
      details,
      h(
        "h2",
        {},
        h("a", { href: hrefOf({ view: "service", name: e.source }) }, e.source),
        " → ",
        h("a", { href: hrefOf({ view: "service", name: e.destination }) }, e.destination),
      ),
      h(
        "dl",
        {},
        h("dt", {}, "Requests/s"),
        h("dd", {}, formatRps(e.rps)),
        h("dt", {}, "Success"),
        h("dd", { class: `rate ${rateClass(e.successRate)}` }, formatRate(e.successRate)),
        h("dt", {}, "p50"),
        h("dd", {}, formatMs(e.latencyMs.p50)),
        h("dt", {}, "p99"),
        h("dd", {}, formatMs(e.latencyMs.p99)),
        h("dt", {}, "Requests in window"),
        h("dd", {}, e.requests),
      ),
    );
  };

  // Elements are kept by key and updated in place on each poll: no flicker, and a focused
  // edge or node keeps the keyboard focus while the figures change.
  const edgeEls = new Map<
    string,
    { g: SVGGElement; hit: SVGPathElement; line: SVGPathElement; label: SVGTextElement; edge: EdgeGolden }
  >();
  const nodeEls = new Map<
    string,
    {
      a: SVGAElement;
      ring: SVGCircleElement;
      circle: SVGCircleElement;
      label: SVGTextElement;
      count: SVGTextElement;
    }
  >();
  let tick = 0;

  const edgeEl = (id: string, e: EdgeGolden) => {
    const hit = s("path", { class: "hit" });
    const line = s("path", { class: "line" });
    const label = s("text", { class: "edge-label", "text-anchor": "middle" });
    const g = s(
      "g",
      { "data-source": e.source, "data-destination": e.destination, tabindex: 0, role: "button" },
      hit,
      line,
      label,
    );
    const entry = { g, hit, line, label, edge: e };
    const pick = () => showEdge(entry.edge);
    g.addEventListener("click", pick);
    g.addEventListener("keydown", (ev) => {
      const k = (ev as KeyboardEvent).key;
      if (k === "Enter" || k === " ") {
        ev.preventDefault();
        pick();
      }
    });
    edgeEls.set(id, entry);
    edgesLayer.append(g);
    return entry;
  };

  const nodeEl = (n: string) => {
    // Shown only for a service with proxyless instances (class "proxyless" on the node).
    const ring = s("circle", { r: R + 6, class: "proxyless-ring" });
    const circle = s("circle", { r: R, class: "body" });
    const label = s("text", { "text-anchor": "middle", class: "node-label" }, n);
    const count = s("text", { "text-anchor": "middle", class: "node-count" });
    const a = s(
      "a",
      { href: hrefOf({ view: "service", name: n }), "data-service": n },
      ring,
      circle,
      label,
      count,
    );
    const entry = { a, ring, circle, label, count };
    nodeEls.set(n, entry);
    nodesLayer.append(a);
    return entry;
  };

  const render = (services: ServiceSummary[], edges: EdgeGolden[]) => {
    const names = [
      ...new Set([...services.map((x) => x.name), ...edges.flatMap((e) => [e.source, e.destination])]),
    ].sort();
    const key = `${names.join(",")}|${edges
      .map((e) => `${e.source}>${e.destination}`)
      .sort()
      .join(",")}`;
    if (key !== layoutKey || !layout) {
      layout = layoutGraph(names, edges, { width: W, height: H, margin: 80 });
      layoutKey = key;
    }
    const l = layout;
    const seenEdges = new Set<string>();
    for (const e of edges) {
      const a = l.nodes.get(e.source);
      const b = l.nodes.get(e.destination);
      if (!a || !b) continue;
      const id = `${e.source}>${e.destination}`;
      seenEdges.add(id);
      const el = edgeEls.get(id) ?? edgeEl(id, e);
      el.edge = e;
      const p = edgePath(a, b, R);
      const cls = rateClass(e.successRate);
      el.g.setAttribute("class", `edge ${cls}${selected === id ? " selected" : ""}`);
      el.g.setAttribute("data-rps", String(e.rps));
      el.g.setAttribute("data-success-rate", e.successRate === null ? "" : String(e.successRate));
      el.g.setAttribute(
        "aria-label",
        `${e.source} to ${e.destination}: ${formatRps(e.rps)} requests per second, ${formatRate(e.successRate)} success`,
      );
      el.hit.setAttribute("d", p.d);
      el.line.setAttribute("d", p.d);
      el.line.setAttribute("marker-end", `url(#arrow-${cls})`);
      el.label.setAttribute("x", String(p.labelX));
      el.label.setAttribute("y", String(p.labelY - 6));
      el.label.textContent = `${formatRps(e.rps)} rps`;
    }
    for (const [id, el] of edgeEls) {
      if (!seenEdges.has(id)) {
        el.g.remove();
        edgeEls.delete(id);
      }
    }
    const summary = new Map(services.map((x) => [x.name, x]));
    const seenNodes = new Set(names);
    for (const n of names) {
      const p = l.nodes.get(n);
      if (!p) continue;
      const el = nodeEls.get(n) ?? nodeEl(n);
      const c = summary.get(n);
      const health = c ? overallHealth(c) : "critical";
      const proxyless = c?.tags.includes("proxyless") ?? false;
      el.a.setAttribute("class", `node ${health}${proxyless ? " proxyless" : ""}`);
      el.a.setAttribute("data-health", health);
      el.a.setAttribute("data-proxyless", String(proxyless));
      el.a.setAttribute(
        "aria-label",
        `${n}: ${c ? healthText(c) : "not in the catalog"}${proxyless ? ", has proxyless gRPC instances" : ""}`,
      );
      for (const circle of [el.ring, el.circle]) {
        circle.setAttribute("cx", String(p.x));
        circle.setAttribute("cy", String(p.y));
      }
      el.label.setAttribute("x", String(p.x));
      el.label.setAttribute("y", String(p.y + R + 16));
      el.label.textContent = proxyless ? `${n} · proxyless` : n;
      el.count.setAttribute("x", String(p.x));
      el.count.setAttribute("y", String(p.y + 4));
      el.count.textContent = c ? String(c.instances) : "0";
    }
    for (const [n, el] of nodeEls) {
      if (!seenNodes.has(n)) {
        el.a.remove();
        nodeEls.delete(n);
      }
    }
    svg.setAttribute("data-tick", String(++tick));
    if (selected) {
      const e = edges.find((x) => `${x.source}>${x.destination}` === selected);
      if (e) showEdge(e);
    }
  };

  const stop = poll(async (signal) => {
    try {
      const [services, edges] = await Promise.all([
        ctx.api.get<ServiceSummary[]>("/v1/catalog/services", signal),
        ctx.api.get<EdgesMetricsResponse>("/v1/metrics/edges", signal),
      ]);
      render(services, edges.edges);
      status.textContent = `${edges.edges.length} edge${edges.edges.length === 1 ? "" : "s"} with traffic in the last ${Math.round(edges.window.seconds)} s · live`;
      status.classList.remove("error");
    } catch (e) {
      if (signal.aborted) return;
      status.textContent = `Cannot refresh: ${errorText(e)}`;
      status.classList.add("error");
      throw e;
    }
  }, POLL_MS);

  const legend = h(
    "p",
    { class: "legend-row" },
    h("span", { class: "swatch good" }),
    "≥ 99 % success ",
    h("span", { class: "swatch warn" }),
    "≥ 95 % ",
    h("span", { class: "swatch bad" }),
    "< 95 % ",
    h("span", { class: "swatch idle" }),
    "no requests ",
    h("span", { class: "swatch proxyless" }),
    "has proxyless gRPC instances (no sidecar)",
  );
  const el = h(
    "section",
    {},
    h("h1", { tabindex: "-1" }, "Topology"),
    status,
    h("div", { class: "topology-wrap" }, h("div", { class: "graph" }, svg, legend), details),
  );
  return { el, title: "Topology", dispose: stop };
}
