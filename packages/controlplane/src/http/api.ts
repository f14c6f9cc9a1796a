/**
 * HTTP API v1 (docs/api.md): routes and the request pipeline.
 *
 * Pipeline per request: route (404/405) -> authenticate (401) -> path
 * params validated (400) -> permission when it does not depend on the body
 * (403) -> body: content-type (415), size (413), JSON (400), schema (400) ->
 * permission that depends on the body (403) -> service call -> JSON answer
 * with `X-Weft-Index` where the state is indexed. Any throw lands in
 * respond.ts.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  checkIdSchema,
  checkUpdateSchema,
  type Instance,
  instanceIdSchema,
  instanceRegistrationSchema,
  NAME_PATTERN,
  signRequestSchema,
} from "@weft/api";
import { type Clock, systemClock, weftError } from "@weft/core";
import type { Logger } from "pino";
import { z } from "zod";
import { type AclService, authorize, can, DEV_ANONYMOUS, type Identity } from "../acl/acl.js";
import { grantedBy, PERMISSIONS, servicePermission } from "../acl/policy.js";
import type { CaService } from "../ca/ca-service.js";
import { checkCsr } from "../ca/csr.js";
import type { Catalog, StatusFilter } from "../catalog/catalog.js";
import type { ConfigService } from "../config/config.js";
import { explain, parseExplainQuery } from "../explain/explain.js";
import { GoldenWindow } from "../metrics/golden.js";
import { ControlPlaneMetrics } from "../metrics/prometheus.js";
import { addMetricsRoutes } from "../metrics/routes.js";
import type { ProxyStreams } from "../snapshot/proxy-streams.js";
import type { Store } from "../store/store.js";
import type { XdsServer } from "../xds/ads-server.js";
import { xdsNodes } from "../xds/xds-nodes.js";
import { BlockingQueries } from "./blocking.js";
import { MAX_BODY_BYTES, parseBody, readJsonBody } from "./body.js";
import { streamSnapshots } from "./proxy-stream.js";
import { sendError, sendJson } from "./respond.js";
import { type Params, Router } from "./router.js";

export const VERSION = "0.1.0";

export interface ApiDeps {
  store: Store;
  catalog: Catalog;
  config: ConfigService;
  acl: AclService;
  ca: CaService;
  proxies: ProxyStreams;
  blocking: BlockingQueries;
  dev: boolean;
  logger: Logger;
  /** Body size limit; default 1 MiB. */
  maxBodyBytes?: number;
  /** The golden-metrics window (default: a 60 s window on `clock`). */
  golden?: GoldenWindow;
  clock?: Clock;
  /** Replicated control plane: whether this replica leads once-only duties now. Absent: always (one server per store). */
  leader?: () => boolean;
  /** The xDS (ADS) listener, when the server runs one: its nodes and NACKs are shown by `/v1/xds/nodes` and explain. */
  xds?: Pick<XdsServer, "streams" | "nacks">;
}

export interface RequestContext {
  req: IncomingMessage;
  params: Params;
  query: URLSearchParams;
  identity: Identity;
  /** Aborted when the client goes away (releases a blocking query). */
  signal: AbortSignal;
  /** Reads the JSON body (after the content-type and size checks). */
  body(): Promise<unknown>;
}

export interface Reply {
  status?: number;
  body: unknown;
  index?: number;
  /** A streamed answer: takes over the response instead of `body` (the proxy config stream). */
  stream?: (res: ServerResponse, signal: AbortSignal) => void;
}

export interface RouteDef {
  /** "none": no token needed; "token": any valid token (or dev anonymous). */
  auth: "none" | "token";
  handle(ctx: RequestContext): Promise<Reply>;
}

const ACCESSOR_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function param(params: Params, name: string, check: (v: string) => boolean, expected: string): string {
  const v = params[name] ?? "";
  if (!check(v)) {
    const shown = v.length > 64 ? `${v.slice(0, 64)}...` : v;
    throw weftError("WEFT_ERR_BAD_PATH", { detail: `path parameter ${name} "${shown}" ${expected}` });
  }
  return v;
}

const instanceIdParam = (p: Params) =>
  param(p, "id", (v) => instanceIdSchema.safeParse(v).success, "must be 1-128 chars of A-Z a-z 0-9 . _ : -");
const nameParam = (p: Params, key = "name") =>
  param(p, key, (v) => NAME_PATTERN.test(v), "must be a lowercase DNS label (a-z, 0-9, '-', 1-63 chars)");
const checkIdParam = (p: Params) =>
  param(p, "checkId", (v) => checkIdSchema.safeParse(v).success, "must be 1-64 chars of A-Z a-z 0-9 . _ -");
const accessorIdParam = (p: Params) =>
  param(p, "accessorId", (v) => ACCESSOR_ID.test(v), "must be a token accessor id (a UUID)");

const tokenCreateSchema = z.strictObject({
  description: z.string().max(256).optional(),
  policies: z.array(z.string().max(200)).min(1).max(32),
});

function statusFilter(query: URLSearchParams): StatusFilter {
  const s = query.get("status") ?? "passing";
  if (s === "passing" || s === "warning" || s === "critical" || s === "any") return s;
  throw weftError("WEFT_ERR_BAD_QUERY", {
    param: "status",
    detail: `"${s.slice(0, 32)}" is not one of passing, warning, critical, any`,
  });
}

function bearer(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (auth !== undefined) {
    const m = /^Bearer[ ]+(\S+)[ ]*$/i.exec(auth);
    if (!m)
      throw weftError("WEFT_ERR_UNAUTHENTICATED", {
        detail: "malformed Authorization header; expected Bearer <secret>",
      });
    return m[1];
  }
  const x = req.headers["x-weft-token"];
  if (typeof x === "string") return x.trim();
  return undefined;
}

export function buildRoutes(d: ApiDeps): Router<RouteDef> {
  const r = new Router<RouteDef>();
  const { catalog, config, acl, ca, blocking } = d;
  /** An instance as served: with the certificate the CA signed for it, if any. */
  const served = (inst: Instance): Instance => {
    const certificate = ca.certificateOf(inst.service, inst.id);
    return certificate ? { ...inst, certificate } : inst;
  };
  const tok = (handle: RouteDef["handle"]): RouteDef => ({ auth: "token", handle });

  /** Holds the read when blocking, then answers with the current state. */
  const blockOn = async (ctx: RequestContext, topic: string, index: () => number): Promise<void> => {
    const b = BlockingQueries.parse(ctx.query);
    if (b) await blocking.wait(topic, index, b.index, b.waitMs, ctx.signal);
  };

  r.add("GET", "/v1/status", {
    auth: "none",
    async handle() {
      const revision = await d.store.revision();
      const leader = d.leader?.() ?? true;
      const body = {
        version: VERSION,
        backend: d.store.backend,
        store: d.store.backend,
        leader,
        revision,
        dev: d.dev,
      };
      return { body, index: revision };
    },
  });

  // --- catalog ---
  r.add(
    "GET",
    "/v1/catalog/services",
    tok(async (ctx) => {
      authorize(ctx.identity, PERMISSIONS.catalogRead);
      await blockOn(ctx, "catalog", () => catalog.catalogIndex());
      return { body: catalog.listServices(), index: catalog.catalogIndex() };
    }),
  );
  r.add(
    "DELETE",
    "/v1/catalog/services/:name",
    tok(async (ctx) => {
      const name = nameParam(ctx.params);
      authorize(ctx.identity, servicePermission(name, "write"));
      const deleted = await catalog.deregisterService(name);
      if (deleted === 0) throw weftError("WEFT_ERR_NOT_FOUND", { what: `service "${name}"` });
      return { body: { deleted }, index: catalog.serviceIndex(name) };
    }),
  );
  r.add(
    "PUT",
    "/v1/catalog/instances",
    tok(async (ctx) => {
      const reg = parseBody(instanceRegistrationSchema, await ctx.body());
      authorize(ctx.identity, servicePermission(reg.service, "write"));
      const { instance, created } = await catalog.register(reg);
      return { status: created ? 201 : 200, body: instance, index: instance.modifyIndex };
    }),
  );
  const instanceOf = (ctx: RequestContext, access: "read" | "write") => {
    const id = instanceIdParam(ctx.params);
    const inst = catalog.getInstance(id);
    if (!inst) throw weftError("WEFT_ERR_NOT_FOUND", { what: `instance "${id}"` });
    authorize(ctx.identity, servicePermission(inst.service, access));
    return inst;
  };
  r.add(
    "GET",
    "/v1/catalog/instances/:id",
    tok(async (ctx) => {
      const inst = instanceOf(ctx, "read");
      return { body: served(inst), index: inst.modifyIndex };
    }),
  );
  r.add(
    "DELETE",
    "/v1/catalog/instances/:id",
    tok(async (ctx) => {
      const inst = instanceOf(ctx, "write");
      if (!(await catalog.deregister(inst.id)))
        throw weftError("WEFT_ERR_NOT_FOUND", { what: `instance "${inst.id}"` });
      return { body: { deleted: true }, index: catalog.serviceIndex(inst.service) };
    }),
  );
  r.add(
    "PUT",
    "/v1/catalog/instances/:id/checks/:checkId",
    tok(async (ctx) => {
      const checkId = checkIdParam(ctx.params);
      const inst = instanceOf(ctx, "write");
      const update = parseBody(checkUpdateSchema, await ctx.body());
      const state = await catalog.heartbeat(inst.id, checkId, update);
      return { body: state, index: catalog.serviceIndex(inst.service) };
    }),
  );
  r.add(
    "GET",
    "/v1/health/service/:name",
    tok(async (ctx) => {
      const name = nameParam(ctx.params);
      const filter = statusFilter(ctx.query);
      authorize(ctx.identity, servicePermission(name, "read"));
      await blockOn(ctx, `svc:${name}`, () => catalog.serviceIndex(name));
      const index = catalog.serviceIndex(name);
      const instances = catalog.serviceInstances(name, filter).map(served);
      return { body: { service: name, index, instances }, index };
    }),
  );

  // --- config ---
  r.add(
    "POST",
    "/v1/config/apply",
    tok(async (ctx) => {
      authorize(ctx.identity, PERMISSIONS.configWrite);
      const result = await config.apply(await ctx.body());
      return { body: result, index: result.revision };
    }),
  );
  r.add(
    "POST",
    "/v1/config/validate",
    tok(async (ctx) => {
      authorize(ctx.identity, PERMISSIONS.configRead);
      config.check(await ctx.body());
      return { body: { valid: true } };
    }),
  );
  r.add(
    "GET",
    "/v1/config/:kind",
    tok(async (ctx) => {
      const kind = config.kindOf(ctx.params.kind ?? "");
      authorize(ctx.identity, PERMISSIONS.configRead);
      await blockOn(ctx, `config:${kind}`, () => config.kindIndex(kind));
      return { body: config.list(kind).map((x) => x.resource), index: config.kindIndex(kind) };
    }),
  );
  r.add(
    "GET",
    "/v1/config/:kind/:name",
    tok(async (ctx) => {
      const kind = config.kindOf(ctx.params.kind ?? "");
      const name = nameParam(ctx.params);
      authorize(ctx.identity, PERMISSIONS.configRead);
      const res = config.get(kind, name);
      if (!res) throw weftError("WEFT_ERR_NOT_FOUND", { what: `${kind} "${name}"` });
      return { body: res.resource, index: res.modifyIndex };
    }),
  );
  r.add(
    "DELETE",
    "/v1/config/:kind/:name",
    tok(async (ctx) => {
      const kind = config.kindOf(ctx.params.kind ?? "");
      const name = nameParam(ctx.params);
      authorize(ctx.identity, PERMISSIONS.configWrite);
      if (!(await config.delete(kind, name)))
        throw weftError("WEFT_ERR_NOT_FOUND", { what: `${kind} "${name}"` });
      return { body: { deleted: true }, index: config.kindIndex(kind) };
    }),
  );

  // --- CA ---
  // --- proxy config streams ---
  r.add(
    "GET",
    "/v1/proxy/stream/:id",
    tok(async (ctx) => {
      // The sidecar's token: it must be allowed to write its own service (as for registration).
      const inst = instanceOf(ctx, "write");
      return {
        body: undefined,
        stream: (res, signal) => streamSnapshots(d.proxies, inst.id, res, signal, d.logger),
      };
    }),
  );
  r.add(
    "GET",
    "/v1/proxy/snapshot/:id",
    tok(async (ctx) => {
      const inst = instanceOf(ctx, "read");
      const snapshot = d.proxies.current(inst.id);
      if (!snapshot) throw weftError("WEFT_ERR_NOT_FOUND", { what: `instance "${inst.id}"` });
      return { body: snapshot };
    }),
  );

  // --- explain ---
  r.add(
    "GET",
    "/v1/explain",
    tok(async (ctx) => {
      const q = parseExplainQuery(ctx.query);
      // Reading the destination's config and health is what service:<to>:read grants (operator has it).
      authorize(ctx.identity, servicePermission(q.to, "read"));
      // The xDS state (NACK messages) of `from` is shown only to who may read `from`.
      const canRead = (s: string) => can(ctx.identity, servicePermission(s, "read"));
      return { body: explain({ catalog, config, xds: d.xds }, q, { canRead }) };
    }),
  );

  // --- xDS nodes (proxyless gRPC clients) ---
  r.add(
    "GET",
    "/v1/xds/nodes",
    tok(async (ctx) => {
      for (const k of new Set(ctx.query.keys())) {
        if (k !== "service")
          throw weftError("WEFT_ERR_BAD_QUERY", { param: k, detail: "unknown parameter; expected service" });
      }
      const service = ctx.query.get("service") ?? undefined;
      if (service !== undefined) {
        if (!NAME_PATTERN.test(service)) {
          throw weftError("WEFT_ERR_BAD_QUERY", {
            param: "service",
            detail: `"${service.slice(0, 64)}" is not a service name (a lowercase DNS label)`,
          });
        }
        authorize(ctx.identity, servicePermission(service, "read"));
      }
      // The nodes of the services the caller may read; a node whose instance is gone (service
      // unknown) only to those who may read every service (catalog:read implies that).
      const canRead = (s: string | null) =>
        can(ctx.identity, s === null ? PERMISSIONS.catalogRead : servicePermission(s, "read"));
      return { body: xdsNodes({ xds: d.xds, catalog }, { service, canRead }) };
    }),
  );

  // --- golden metrics, stats reports, Prometheus (metrics/routes.ts) ---
  const golden = d.golden ?? new GoldenWindow({ clock: d.clock ?? systemClock });
  // Made on the first scrape: prom-client's default metrics start process-wide observers.
  let prom: ControlPlaneMetrics | undefined;
  const prometheus = () =>
    (prom ??= new ControlPlaneMetrics({
      catalog,
      proxies: d.proxies,
      golden,
      blockingQueries: () => blocking.waiting,
    }));
  addMetricsRoutes(r, { catalog, golden, prometheus });

  r.add(
    "GET",
    "/v1/ca/roots",
    tok(async (ctx) => {
      // The bundle is public to every token holder: proxies and tools need it to verify peers.
      await blockOn(ctx, "ca:roots", () => ca.index());
      const roots = ca.roots();
      return { body: roots, index: roots.index };
    }),
  );
  r.add(
    "POST",
    "/v1/ca/sign",
    tok(async (ctx) => {
      const req = parseBody(signRequestSchema, await ctx.body());
      const csr = await checkCsr(req.csr, ca.roots().trustDomain);
      const perm = servicePermission(csr.identity.service, "write");
      if (!can(ctx.identity, perm)) {
        throw weftError("WEFT_ERR_IDENTITY_DENIED", {
          service: csr.identity.service,
          permission: grantedBy(perm),
        });
      }
      return { body: await ca.sign(csr, { ttlMs: req.ttl, instanceId: req.instanceId }) };
    }),
  );
  r.add(
    "POST",
    "/v1/ca/rotate",
    tok(async (ctx) => {
      authorize(ctx.identity, PERMISSIONS.caWrite);
      return { body: await ca.rotate() };
    }),
  );

  // --- ACL ---
  r.add(
    "GET",
    "/v1/acl/token/self",
    tok(async (ctx) => ({
      body: {
        accessorId: ctx.identity.accessorId,
        description: ctx.identity.description,
        policies: [...ctx.identity.policies],
      },
    })),
  );
  r.add(
    "POST",
    "/v1/acl/tokens",
    tok(async (ctx) => {
      authorize(ctx.identity, PERMISSIONS.aclWrite);
      const req = parseBody(tokenCreateSchema, await ctx.body());
      return { body: await acl.create(req) };
    }),
  );
  r.add(
    "GET",
    "/v1/acl/tokens",
    tok(async (ctx) => {
      authorize(ctx.identity, PERMISSIONS.aclRead);
      return { body: acl.list() };
    }),
  );
  r.add(
    "DELETE",
    "/v1/acl/tokens/:accessorId",
    tok(async (ctx) => {
      const id = accessorIdParam(ctx.params);
      authorize(ctx.identity, PERMISSIONS.aclWrite);
      if (!(await acl.revoke(id))) throw weftError("WEFT_ERR_NOT_FOUND", { what: `token "${id}"` });
      return { body: { deleted: true } };
    }),
  );
  return r;
}

/** The `node:http` request listener for the API. */
export function createApiHandler(d: ApiDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const router = buildRoutes(d);
  const limit = d.maxBodyBytes ?? MAX_BODY_BYTES;
  const log = d.logger;

  const serve = async (req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const query = new URLSearchParams(q < 0 ? "" : url.slice(q + 1));
    const method = req.method ?? "GET";
    const match = router.match(method, path);
    let identity: Identity = DEV_ANONYMOUS;
    if (match.handler.auth === "token") {
      const secret = bearer(req);
      if (secret === undefined) {
        if (!d.dev) {
          throw weftError("WEFT_ERR_UNAUTHENTICATED", {
            detail: "missing ACL token: send Authorization: Bearer <secret> (or X-Weft-Token)",
          });
        }
      } else {
        const id = d.acl.resolve(secret);
        if (!id) throw weftError("WEFT_ERR_UNAUTHENTICATED", { detail: "unknown or revoked ACL token" });
        identity = id;
      }
    }
    const ctx: RequestContext = {
      req,
      params: match.params,
      query,
      identity,
      signal,
      body: () => readJsonBody(req, limit),
    };
    const reply = await match.handler.handle(ctx);
    if (reply.stream) {
      reply.stream(res, signal);
      return;
    }
    const headers: Record<string, string | number> = {};
    if (reply.index !== undefined) headers["x-weft-index"] = reply.index;
    if (method === "HEAD") {
      res.writeHead(reply.status ?? 200, headers);
      res.end();
      return;
    }
    sendJson(res, reply.status ?? 200, reply.body, headers);
  };

  return (req, res) => {
    const ac = new AbortController();
    res.on("close", () => ac.abort());
    // An answer sent before the body was read (413 and friends) closes the connection and
    // drains the rest: respond.ts does that for every such answer.
    serve(req, res, ac.signal).catch((err: unknown) => sendError(res, err, log));
  };
}
