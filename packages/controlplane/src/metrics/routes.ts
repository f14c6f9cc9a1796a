/**
 * The observability routes of the API:
 *
 *   POST /v1/proxy/stats/:id          a sidecar's golden-metric deltas (token: service:<svc>:write)
 *   GET  /v1/metrics/services         every service, inbound view (catalog:read)
 *   GET  /v1/metrics/services/:name   one service and its edges (service:<name>:read)
 *   GET  /v1/metrics/edges            every edge (catalog:read)
 *   GET  /metrics                     the control plane's Prometheus text (catalog:read)
 *
 * A report may only speak for the reporter's own service: inbound edges
 * must end at it, outbound edges must start at it, so one service's token
 * cannot inflate another service's figures.
 *
 * Proxyless gRPC clients report over LRS on the xDS port instead
 * (xds/lrs-server.ts, same rule: edges from the node's service only) into
 * the same window; a service no sidecar reports for (a proxyless server)
 * then shows its callers' counts, marked `proxylessRequests`.
 */
import { instanceIdSchema, NAME_PATTERN } from "@weft/api";
import { weftError } from "@weft/core";
import { authorize } from "../acl/acl.js";
import { PERMISSIONS, servicePermission } from "../acl/policy.js";
import type { Catalog } from "../catalog/catalog.js";
import type { RequestContext, RouteDef } from "../http/api.js";
import { parseBody } from "../http/body.js";
import type { Router } from "../http/router.js";
import type { GoldenWindow } from "./golden.js";
import type { ControlPlaneMetrics } from "./prometheus.js";
import { proxyStatsReportSchema } from "./report-schema.js";

export interface MetricsRouteDeps {
  catalog: Catalog;
  golden: GoldenWindow;
  /** The control plane's Prometheus registry (made on first use). */
  prometheus: () => ControlPlaneMetrics;
}

function pathParam(ctx: RequestContext, name: string, ok: (v: string) => boolean, expected: string): string {
  const v = ctx.params[name] ?? "";
  if (!ok(v)) {
    const shown = v.length > 64 ? `${v.slice(0, 64)}...` : v;
    throw weftError("WEFT_ERR_BAD_PATH", { detail: `path parameter ${name} "${shown}" ${expected}` });
  }
  return v;
}

export function addMetricsRoutes(r: Router<RouteDef>, d: MetricsRouteDeps): void {
  const { catalog, golden } = d;
  const tok = (handle: RouteDef["handle"]): RouteDef => ({ auth: "token", handle });

  r.add(
    "POST",
    "/v1/proxy/stats/:id",
    tok(async (ctx) => {
      const id = pathParam(
        ctx,
        "id",
        (v) => instanceIdSchema.safeParse(v).success,
        "must be 1-128 chars of A-Z a-z 0-9 . _ : -",
      );
      const inst = catalog.getInstance(id);
      if (!inst) throw weftError("WEFT_ERR_NOT_FOUND", { what: `instance "${id}"` });
      authorize(ctx.identity, servicePermission(inst.service, "write"));
      const report = parseBody(proxyStatsReportSchema, await ctx.body());
      report.edges.forEach((e, i) => {
        const own = e.direction === "inbound" ? e.destination : e.source;
        if (own !== inst.service) {
          const field = e.direction === "inbound" ? "destination" : "source";
          throw weftError("WEFT_ERR_VALIDATION", {
            detail: `edges[${i}].${field}: an ${e.direction} edge reported by an instance of "${inst.service}" must have ${field} "${inst.service}", not "${own}"`,
          });
        }
      });
      const accepted = golden.accept(inst.id, report.session, report.seq, report.edges);
      return { body: { accepted, edges: report.edges.length } };
    }),
  );

  r.add(
    "GET",
    "/v1/metrics/services",
    tok(async (ctx) => {
      authorize(ctx.identity, PERMISSIONS.catalogRead);
      const known = catalog.listServices().map((s) => s.name);
      return { body: { window: golden.window(), services: golden.services(known) } };
    }),
  );

  r.add(
    "GET",
    "/v1/metrics/services/:name",
    tok(async (ctx) => {
      const name = pathParam(
        ctx,
        "name",
        (v) => NAME_PATTERN.test(v),
        "must be a lowercase DNS label (a-z, 0-9, '-', 1-63 chars)",
      );
      authorize(ctx.identity, servicePermission(name, "read"));
      const service = golden.service(name);
      const inbound = golden.edges((_, dst) => dst === name);
      const outbound = golden.edges((src) => src === name);
      const registered = catalog.serviceInstances(name, "any").length > 0;
      if (!registered && service.requests === 0 && inbound.length === 0 && outbound.length === 0) {
        throw weftError("WEFT_ERR_NOT_FOUND", {
          what: `service "${name}" (not in the catalog and no traffic in the last ${golden.window().seconds}s)`,
        });
      }
      return { body: { window: golden.window(), service, inbound, outbound } };
    }),
  );

  r.add(
    "GET",
    "/v1/metrics/edges",
    tok(async (ctx) => {
      authorize(ctx.identity, PERMISSIONS.catalogRead);
      return { body: { window: golden.window(), edges: golden.edges() } };
    }),
  );

  r.add(
    "GET",
    "/metrics",
    tok(async (ctx) => {
      authorize(ctx.identity, PERMISSIONS.catalogRead);
      const m = await d.prometheus().scrape();
      return {
        body: undefined,
        stream: (res) => {
          res.writeHead(200, {
            "content-type": m.contentType,
            "content-length": Buffer.byteLength(m.body),
            "cache-control": "no-store",
          });
          res.end(ctx.req.method === "HEAD" ? undefined : m.body);
        },
      };
    }),
  );
}
