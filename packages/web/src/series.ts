/**
 * Client-side time series for the charts: the API answers figures over its
 * sliding window; the service page polls every 2 s and keeps the answers
 * here, bounded (the oldest point falls off), so charts show the recent
 * trend without any history on the server. Pure: unit-tested in node.
 */

export interface Point {
  /** Epoch ms of the sample. */
  t: number;
  /** Null: no data at that time (no requests in the window). */
  v: number | null;
}

export class Series {
  readonly #cap: number;
  readonly #points: Point[] = [];

  constructor(capacity: number) {
    if (!(capacity >= 2)) throw new Error("a series needs a capacity of at least 2");
    this.#cap = Math.floor(capacity);
  }

  push(t: number, v: number | null): void {
    this.#points.push({ t, v: v !== null && Number.isFinite(v) ? v : null });
    if (this.#points.length > this.#cap) this.#points.splice(0, this.#points.length - this.#cap);
  }

  get points(): readonly Point[] {
    return this.#points;
  }

  get capacity(): number {
    return this.#cap;
  }

  /** The newest value that is not null. */
  last(): number | null {
    for (let i = this.#points.length - 1; i >= 0; i--) {
      const v = (this.#points[i] as Point).v;
      if (v !== null) return v;
    }
    return null;
  }
}

export interface SparkOptions {
  width: number;
  height: number;
  /** Fixed bounds (e.g. 0..1 for a rate); else 0..max of the data (a flat line at 0 for all zeros). */
  min?: number;
  max?: number;
  /** Total slots on the x axis (the series capacity): the newest point is always at the right edge. */
  slots: number;
  /** Margin kept at the top and bottom so the stroke is not clipped. */
  pad?: number;
}

/**
 * An SVG path (`M x y L x y ...`) for the values, newest at the right; a
 * null starts a new segment (a gap), so "no data" is not drawn as zero.
 * Empty string when there is nothing to draw.
 */
export function sparklinePath(values: readonly (number | null)[], o: SparkOptions): string {
  const pad = o.pad ?? 2;
  const nums = values.filter((v): v is number => v !== null);
  if (nums.length === 0) return "";
  const min = o.min ?? 0;
  let max = o.max ?? Math.max(...nums);
  if (max <= min) max = min + 1;
  const step = o.slots > 1 ? o.width / (o.slots - 1) : 0;
  const offset = o.slots - values.length;
  const y = (v: number) => {
    const c = Math.min(max, Math.max(min, v));
    return pad + (o.height - 2 * pad) * (1 - (c - min) / (max - min));
  };
  let d = "";
  let pen = false;
  values.forEach((v, i) => {
    if (v === null) {
      pen = false;
      return;
    }
    const x = round((offset + i) * step);
    d += `${pen ? "L" : "M"}${x} ${round(y(v))} `;
    pen = true;
  });
  return d.trim();
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
