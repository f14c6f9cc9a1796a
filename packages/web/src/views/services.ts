/**
 * Services: one row per service in the catalog (or with traffic): health
 * summary, instances, and the golden metrics over the API's window. A
 * service with proxyless gRPC instances (its tags include `proxyless`)
 * carries a "proxyless" badge.
 * Data: GET /v1/catalog/services + GET /v1/metrics/services, every 2 s.
 */
import type { ServiceSummary, ServicesMetricsResponse } from "@weft/api";
import { errorText } from "../api.js";
import { fill, h } from "../dom.js";
import { formatMs, formatRate, formatRps, healthText, overallHealth, rateClass } from "../format.js";
import { hrefOf } from "../routes.js";
import { POLL_MS, poll, type View, type ViewContext } from "../view.js";

const COLUMNS = ["Service", "Health", "Instances", "RPS", "Success", "p99"] as const;

export function servicesView(ctx: ViewContext): View {
  const body = h("tbody");
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" }, "Loading…");
  const table = h(
    "table",
    { class: "grid services", "data-testid": "services-table" },
    h("caption", { class: "sr-only" }, "Services with health and golden metrics"),
    h(
      "colgroup",
      {},
      COLUMNS.map((_, i) => h("col", { class: `c${i}` })),
    ),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        COLUMNS.map((c) => h("th", { scope: "col" }, c)),
      ),
    ),
    body,
  );
  // Placeholder rows keep the table's height while the first answer comes.
  fill(
    body,
    [0, 1, 2].map(() =>
      h(
        "tr",
        { class: "placeholder" },
        COLUMNS.map(() => h("td", {}, "\u00a0")),
      ),
    ),
  );

  const stop = poll(async (signal) => {
    try {
      const [services, metrics] = await Promise.all([
        ctx.api.get<ServiceSummary[]>("/v1/catalog/services", signal),
        ctx.api.get<ServicesMetricsResponse>("/v1/metrics/services", signal),
      ]);
      const byName = new Map(metrics.services.map((m) => [m.service, m]));
      const names = [...new Set([...services.map((s) => s.name), ...byName.keys()])].sort();
      const summary = new Map(services.map((s) => [s.name, s]));
      fill(
        body,
        names.map((name) => {
          const s = summary.get(name) ?? {
            passing: 0,
            warning: 0,
            critical: 0,
            instances: 0,
            tags: [] as string[],
          };
          const proxyless = s.tags.includes("proxyless");
          const m = byName.get(name);
          const health = overallHealth(s);
          return h(
            "tr",
            { "data-service": name, "data-health": health, "data-proxyless": proxyless ? "true" : null },
            h(
              "th",
              { scope: "row" },
              h("a", { href: hrefOf({ view: "service", name }) }, name),
              proxyless
                ? h(
                    "span",
                    {
                      class: "badge proxyless",
                      "data-testid": "proxyless-badge",
                      title: "Has proxyless gRPC instances: no sidecar, config over xDS",
                    },
                    "proxyless",
                  )
                : null,
            ),
            h(
              "td",
              { "data-col": "health" },
              h("span", { class: `dot ${health}`, "aria-hidden": "true" }),
              healthText(s),
            ),
            h("td", { class: "num", "data-col": "instances" }, s.instances),
            h("td", { class: "num", "data-col": "rps", "data-value": m?.rps ?? 0 }, formatRps(m?.rps ?? 0)),
            h(
              "td",
              { class: `num rate ${rateClass(m?.successRate)}`, "data-col": "success" },
              formatRate(m?.successRate),
            ),
            h("td", { class: "num", "data-col": "p99" }, formatMs(m?.latencyMs.p99)),
          );
        }),
      );
      if (names.length === 0) {
        fill(
          body,
          h("tr", {}, h("td", { colspan: COLUMNS.length, class: "empty" }, "No services registered yet.")),
        );
      }
      status.textContent = `${names.length} service${names.length === 1 ? "" : "s"} · figures over the last ${Math.round(metrics.window.seconds)} s`;
      status.classList.remove("error");
    } catch (e) {
      if (signal.aborted) return;
      status.textContent = `Cannot refresh: ${errorText(e)}`;
      status.classList.add("error");
      throw e;
    }
  }, POLL_MS);

  const el = h(
    "section",
    {},
    h("h1", { tabindex: "-1" }, "Services"),
    status,
    h("div", { class: "table-wrap" }, table),
  );
  return { el, title: "Services", dispose: stop };
}
