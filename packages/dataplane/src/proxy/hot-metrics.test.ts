import fc from "fast-check";
import { Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { HotCounter, HotHistogram } from "./hot-metrics.js";

const BOUNDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const LABELS = ["direction", "source_service", "flags"] as const;

interface Obs {
  labels: { direction: string; source_service: string; flags: string };
  value: number;
}

/** The same observations through prom-client and through the hot metrics: the two expositions must be equal. */
async function both(observations: Obs[]): Promise<{ prom: string; hot: string }> {
  const promReg = new Registry();
  const counter = new Counter({ name: "t_total", help: "h", labelNames: LABELS, registers: [promReg] });
  const histogram = new Histogram({
    name: "t_seconds",
    help: "d",
    labelNames: LABELS,
    buckets: BOUNDS,
    registers: [promReg],
  });
  const hotReg = new Registry();
  const hotCounter = new HotCounter("t_total", "h", hotReg);
  const hotHistogram = new HotHistogram("t_seconds", "d", BOUNDS, hotReg);
  for (const o of observations) {
    counter.inc(o.labels);
    histogram.observe(o.labels, o.value);
    const key = `${o.labels.direction}\u0000${o.labels.source_service}\u0000${o.labels.flags}`;
    hotCounter.cell(key, o.labels).value += 1;
    hotHistogram.observe(hotHistogram.cell(key, o.labels), o.value);
  }
  return { prom: await promReg.metrics(), hot: await hotReg.metrics() };
}

describe("hot metrics", () => {
  it("render exactly what prom-client renders for the same observations", async () => {
    const { prom, hot } = await both([
      { labels: { direction: "inbound", source_service: "web", flags: "-" }, value: 0.0004 },
      { labels: { direction: "inbound", source_service: "web", flags: "-" }, value: 0.0005 },
      { labels: { direction: "outbound", source_service: "api", flags: "UT" }, value: 31 },
      { labels: { direction: "outbound", source_service: 'we"ird\\name', flags: "UO" }, value: 0.2 },
    ]);
    expect(hot).toBe(prom);
    expect(hot).toContain(
      't_seconds_bucket{le="0.0005",direction="inbound",source_service="web",flags="-"} 2',
    );
    expect(hot).toContain(
      't_seconds_bucket{le="+Inf",direction="outbound",source_service="api",flags="UT"} 1',
    );
  });

  it("agree with prom-client over random observations", async () => {
    const label = fc.constantFrom("a", "b", "c-d", 'q"uote');
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            labels: fc.record({ direction: label, source_service: label, flags: label }),
            value: fc.oneof(fc.constantFrom(...BOUNDS), fc.double({ min: 0, max: 60, noNaN: true })),
          }),
          { maxLength: 60 },
        ),
        async (obs) => {
          const { prom, hot } = await both(obs);
          expect(hot).toBe(prom);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("forget their cells on reset, as the registry's resetMetrics does", async () => {
    const reg = new Registry();
    const c = new HotCounter("r_total", "h", reg);
    c.cell("k", { a: "1" }).value += 3;
    expect(await reg.metrics()).toContain('r_total{a="1"} 3');
    reg.resetMetrics();
    expect(await reg.metrics()).not.toContain("r_total{");
  });
});
