/**
 * Inline SVG sparklines with a fixed size (no layout jump when data
 * arrives): a title, the latest value, and one or more lines.
 */
import { h, s } from "./dom.js";
import { type Series, sparklinePath } from "./series.js";

export interface ChartLine {
  series: Series;
  /** CSS class of the stroke (colour). */
  cls: string;
  label: string;
}

export interface Chart {
  el: HTMLElement;
  update(): void;
}

const W = 280;
const H = 64;

export function sparkChart(
  title: string,
  lines: ChartLine[],
  format: (v: number | null) => string,
  bounds: { min?: number; max?: number } = {},
): Chart {
  const paths = lines.map((l) => s("path", { class: `line ${l.cls}`, d: "" }));
  const values = lines.map((l) => h("span", { class: `value ${l.cls}`, "data-line": l.label }, "—"));
  const svg = s(
    "svg",
    {
      viewBox: `0 0 ${W} ${H}`,
      width: W,
      height: H,
      class: "spark",
      role: "img",
      "aria-label": `${title} over the recent window`,
      preserveAspectRatio: "none",
    },
    s("line", { class: "axis", x1: 0, y1: H - 1, x2: W, y2: H - 1 }),
    paths,
  );
  const el = h(
    "figure",
    { class: "chart", "data-chart": title },
    h(
      "figcaption",
      {},
      h("span", { class: "chart-title" }, title),
      h(
        "span",
        { class: "chart-values" },
        values.flatMap((v, i) => [
          lines.length > 1 ? h("span", { class: "legend" }, `${lines[i]?.label} `) : null,
          v,
        ]),
      ),
    ),
    svg,
  );
  const update = () => {
    const all = lines.flatMap((l) => l.series.points.map((p) => p.v)).filter((v): v is number => v !== null);
    const max = bounds.max ?? Math.max(0, ...all);
    lines.forEach((l, i) => {
      const vals = l.series.points.map((p) => p.v);
      const o: Parameters<typeof sparklinePath>[1] = { width: W, height: H, slots: l.series.capacity, max };
      if (bounds.min !== undefined) o.min = bounds.min;
      paths[i]?.setAttribute("d", sparklinePath(vals, o));
      const v = values[i];
      if (v) v.textContent = format(l.series.last());
    });
  };
  return { el, update };
}
