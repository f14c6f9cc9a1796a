/**
 * One service: golden-metric charts (client-side series of 2 s polls),
 * instances with their checks and certificates, callers and callees (from
 * the metric edges, plus the upstreams its sidecars declare), and the
 * traffic config in effect (resources named like the service). Proxyless
 * gRPC instances (no sidecar) carry a "proxyless" badge, and an xDS section
 * lists the service's xDS nodes: connected or not, the versions they ACKed,
 * and each update they refused (NACK) with the client's own message.
 * Data: /v1/metrics/services/:name, /v1/health/service/:name?status=any and
 * /v1/xds/nodes?service=:name every 2 s; /v1/config/:kind/:name once.
 */
import type {
  EdgeGolden,
  Instance,
  ServiceInstancesResponse,
  ServiceMetricsResponse,
  XdsNodesResponse,
} from "@weft/api";
import { ApiError, errorText } from "../api.js";
import { type Chart, sparkChart } from "../charts.js";
import { fill, h } from "../dom.js";
import {
  formatDate,
  formatExpiry,
  formatMs,
  formatRate,
  formatRps,
  isProxylessInstance,
  NO_DATA,
  nackText,
  overallHealth,
  rateClass,
} from "../format.js";
import { hrefOf } from "../routes.js";
import { Series } from "../series.js";
import { POLL_MS, poll, type View, type ViewContext } from "../view.js";
import { toYaml } from "../yaml.js";

const count = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** 2 s polls: 30 points are the last minute (the API's window is 60 s). */
const POINTS = 30;
const CONFIG_KINDS = ["Route", "Split", "Resolver", "ServiceDefaults", "Intention"] as const;

export function serviceView(ctx: ViewContext, name: string): View {
  const rps = new Series(POINTS);
  const success = new Series(POINTS);
  const p50 = new Series(POINTS);
  const p99 = new Series(POINTS);
  const charts: Chart[] = [
    sparkChart("Requests per second", [{ series: rps, cls: "c-rps", label: "rps" }], formatRps),
    sparkChart("Success rate", [{ series: success, cls: "c-ok", label: "success" }], formatRate, {
      min: 0,
      max: 1,
    }),
    sparkChart(
      "Latency",
      [
        { series: p50, cls: "c-p50", label: "p50" },
        { series: p99, cls: "c-p99", label: "p99" },
      ],
      formatMs,
    ),
  ];
  const status = h("p", { class: "status", role: "status", "aria-live": "polite" }, "Loading…");
  const healthBadge = h("span", { class: "badge", "data-testid": "service-health" }, "…");
  const instancesBody = h("tbody");
  fill(instancesBody, h("tr", { class: "placeholder" }, h("td", { colspan: 5 }, "\u00a0")));
  const upstreams = h("ul", { class: "edges", "data-testid": "upstreams" });
  const downstreams = h("ul", { class: "edges", "data-testid": "downstreams" });
  const configBox = h("div", { class: "config-list" }, h("p", { class: "muted" }, "Loading…"));
  const proxylessBadge = h(
    "span",
    {
      class: "badge proxyless",
      "data-testid": "service-proxyless",
      title: "Has proxyless gRPC instances: no sidecar, config over xDS",
      hidden: true,
    },
    "proxyless",
  );
  const xdsBox = h("div", { class: "xds", "data-testid": "xds" });
  const xdsSection = h(
    "section",
    { class: "xds-section", hidden: true },
    h("h2", {}, "xDS (proxyless gRPC)"),
    xdsBox,
  );

  const edgeItem = (e: EdgeGolden, peer: string) =>
    h(
      "li",
      { "data-peer": peer },
      h("a", { href: hrefOf({ view: "service", name: peer }) }, peer),
      h(
        "span",
        { class: "edge-figures" },
        `${formatRps(e.rps)} rps · `,
        h("span", { class: `rate ${rateClass(e.successRate)}` }, formatRate(e.successRate)),
        ` · p99 ${formatMs(e.latencyMs.p99)}`,
      ),
    );

  const renderEdges = (m: ServiceMetricsResponse | undefined, instances: Instance[]) => {
    const declared = new Set(instances.flatMap((i) => i.proxy?.upstreams.map((u) => u.service) ?? []));
    const out = m?.outbound ?? [];
    for (const e of out) declared.delete(e.destination);
    fill(
      upstreams,
      out.map((e) => edgeItem(e, e.destination)),
      [...declared]
        .sort()
        .map((peer) =>
          h(
            "li",
            { "data-peer": peer },
            h("a", { href: hrefOf({ view: "service", name: peer }) }, peer),
            h("span", { class: "edge-figures muted" }, "declared upstream, no traffic"),
          ),
        ),
    );
    if (upstreams.childElementCount === 0) fill(upstreams, h("li", { class: "muted" }, "None"));
    fill(
      downstreams,
      (m?.inbound ?? []).map((e) => edgeItem(e, e.source)),
    );
    if (downstreams.childElementCount === 0)
      fill(downstreams, h("li", { class: "muted" }, "None in the window"));
  };

  const renderInstances = (instances: Instance[]) => {
    const now = ctx.now();
    fill(
      instancesBody,
      instances.map((i) => {
        const cert = i.certificate ? formatExpiry(i.certificate.notAfter, now) : undefined;
        return h(
          "tr",
          { "data-instance": i.id, "data-health": i.status },
          h(
            "td",
            { class: "mono" },
            i.id,
            isProxylessInstance(i)
              ? h(
                  "span",
                  {
                    class: "badge proxyless",
                    "data-testid": "proxyless-badge",
                    title: "Proxyless gRPC: no sidecar, config over xDS",
                  },
                  "proxyless",
                )
              : null,
          ),
          h("td", { class: "mono" }, `${i.address}:${i.port}`),
          h("td", {}, h("span", { class: `dot ${i.status}`, "aria-hidden": "true" }), i.status),
          h(
            "td",
            {},
            i.checks.length === 0
              ? h("span", { class: "muted" }, "no checks")
              : h(
                  "ul",
                  { class: "checks" },
                  i.checks.map((c) =>
                    h(
                      "li",
                      {},
                      h("span", { class: `dot ${c.status}`, "aria-hidden": "true" }),
                      h("strong", {}, c.name ?? c.id),
                      " ",
                      h("span", { class: "check-output mono" }, c.output || c.status),
                    ),
                  ),
                ),
          ),
          h(
            "td",
            { "data-col": "cert" },
            cert
              ? h("span", { class: `expiry ${cert.level}`, title: i.certificate?.notAfter ?? "" }, cert.text)
              : h("span", { class: "muted" }, NO_DATA),
          ),
        );
      }),
    );
    if (instances.length === 0)
      fill(instancesBody, h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No instances.")));
  };

  /** The xDS section: shown when the service has proxyless instances or xDS nodes. */
  const renderXds = (instances: Instance[], xds: XdsNodesResponse | string | undefined) => {
    const proxyless = instances.filter(isProxylessInstance).length;
    proxylessBadge.hidden = proxyless === 0;
    const nodes = typeof xds === "object" ? xds.nodes : [];
    xdsSection.hidden = proxyless === 0 && nodes.length === 0;
    if (xdsSection.hidden) return;
    if (typeof xds === "string") {
      fill(xdsBox, h("p", { class: "muted" }, xds));
      return;
    }
    if (xds === undefined || !xds.enabled) {
      fill(
        xdsBox,
        h(
          "p",
          { class: "muted" },
          "This control plane serves no xDS (weft server --xds-listen): the proxyless instances get no config from it.",
        ),
      );
      return;
    }
    if (nodes.length === 0) {
      fill(
        xdsBox,
        h("p", { class: "muted" }, "No proxyless instance is connected, and none refused an update."),
      );
      return;
    }
    fill(
      xdsBox,
      h(
        "ul",
        { class: "xds-nodes" },
        nodes.map((n) =>
          h(
            "li",
            { "data-node": n.nodeId, "data-connected": String(n.connected) },
            h(
              "p",
              {},
              h("span", { class: `dot ${n.connected ? "passing" : "critical"}`, "aria-hidden": "true" }),
              h("strong", { class: "mono" }, n.nodeId),
              " ",
              n.connected ? "connected" : "not connected",
              n.stream
                ? h(
                    "span",
                    { class: "muted" },
                    ` · ${count(n.stream.responses, "response")}, ${count(n.stream.acks, "ACK")}, ${count(n.stream.nacks, "NACK")}`,
                  )
                : null,
            ),
            Object.keys(n.acked).length > 0
              ? h(
                  "p",
                  { class: "muted" },
                  "ACKed: ",
                  Object.entries(n.acked).map(([t, v]) => h("span", { class: "mono acked" }, `${t} ${v}`)),
                )
              : null,
            n.nacks.length > 0
              ? h(
                  "ul",
                  { class: "nacks", "data-testid": "xds-nacks" },
                  n.nacks.map((x) =>
                    h(
                      "li",
                      { "data-type": x.type, "data-version": x.version },
                      h("span", { class: "nack-at muted" }, formatDate(x.at)),
                      " ",
                      h("span", { class: "nack-text" }, nackText(n.nodeId, x)),
                    ),
                  ),
                )
              : h("p", { class: "muted" }, "No refused updates (NACKs)."),
          ),
        ),
      ),
    );
  };

  const stop = poll(async (signal) => {
    try {
      const [health, metrics, xds] = await Promise.all([
        ctx.api.get<ServiceInstancesResponse>(
          `/v1/health/service/${encodeURIComponent(name)}?status=any`,
          signal,
        ),
        ctx.api
          .get<ServiceMetricsResponse>(`/v1/metrics/services/${encodeURIComponent(name)}`, signal)
          .catch((e: unknown) => {
            if (e instanceof ApiError && e.status === 404) return undefined;
            throw e;
          }),
        // A 404 is an older control plane (no xDS API); a 403 a token that may not read it.
        ctx.api.xdsNodes(name, signal).catch((e: unknown): XdsNodesResponse | string | undefined => {
          if (e instanceof ApiError && e.status === 404) return undefined;
          if (e instanceof ApiError && e.status === 403) return `xDS state hidden: ${errorText(e)}`;
          throw e;
        }),
      ]);
      const t = ctx.now();
      const g = metrics?.service;
      rps.push(t, g?.rps ?? 0);
      success.push(t, g?.successRate ?? null);
      p50.push(t, g?.latencyMs.p50 ?? null);
      p99.push(t, g?.latencyMs.p99 ?? null);
      for (const c of charts) c.update();
      const counts = { passing: 0, warning: 0, critical: 0 };
      for (const i of health.instances) counts[i.status]++;
      const overall = overallHealth(counts);
      healthBadge.textContent = `${health.instances.length} instance${health.instances.length === 1 ? "" : "s"} · ${overall}`;
      healthBadge.className = `badge ${overall}`;
      renderInstances(health.instances);
      renderXds(health.instances, xds);
      renderEdges(metrics, health.instances);
      status.textContent = metrics
        ? `Figures over the last ${Math.round(metrics.window.seconds)} s, refreshed every ${POLL_MS / 1000} s`
        : "No traffic in the window";
      status.classList.remove("error");
    } catch (e) {
      if (signal.aborted) return;
      status.textContent = `Cannot refresh: ${errorText(e)}`;
      status.classList.add("error");
      throw e;
    }
  }, POLL_MS);

  void (async () => {
    const found = await Promise.all(
      CONFIG_KINDS.map((kind) =>
        ctx.api
          .get<Record<string, unknown>>(`/v1/config/${kind}/${encodeURIComponent(name)}`)
          .then((r) => ({ kind, r }))
          .catch((e: unknown) => ({ kind, r: undefined, e })),
      ),
    );
    fill(
      configBox,
      found.map(({ kind, r, ...rest }) => {
        const e = "e" in rest ? rest.e : undefined;
        const missing = e instanceof ApiError && e.status === 404;
        return h(
          "details",
          { class: "resource", "data-kind": kind, open: r !== undefined && kind !== "Intention" },
          h(
            "summary",
            {},
            h("strong", {}, kind),
            " ",
            h("span", { class: "muted" }, r ? name : missing ? "none" : `unavailable: ${errorText(e)}`),
          ),
          r ? h("pre", { class: "yaml" }, toYaml(r)) : null,
        );
      }),
    );
  })();

  const el = h(
    "section",
    { "data-service-page": name },
    h("p", { class: "crumbs" }, h("a", { href: hrefOf({ view: "services" }) }, "Services"), " / "),
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, name), healthBadge, proxylessBadge),
    status,
    h(
      "div",
      { class: "charts" },
      charts.map((c) => c.el),
    ),
    h("h2", {}, "Instances"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "grid instances", "data-testid": "instances-table" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Instance", "Address", "Health", "Checks", "Certificate expires"].map((c) =>
              h("th", { scope: "col" }, c),
            ),
          ),
        ),
        instancesBody,
      ),
    ),
    xdsSection,
    h(
      "div",
      { class: "two-col" },
      h("div", {}, h("h2", {}, "Upstreams (calls)"), upstreams),
      h("div", {}, h("h2", {}, "Downstreams (callers)"), downstreams),
    ),
    h("h2", {}, "Traffic config in effect"),
    configBox,
  );
  return { el, title: name, dispose: stop };
}
