/**
 * `weft gateway`: runs the gateway NAME (@weft/gateway, loaded only for this
 * command). Its Gateway resource comes from `-f FILE|DIR` (validated locally
 * as `weft validate` does; relative certificate and JWKS paths are taken
 * from the file's directory) or, without -f, from the control plane. The
 * resource is checked here, at the config boundary (zod); the gateway
 * itself gets the parsed, frozen result. "weft gateway ready" with the bound
 * ports goes to stdout once it serves; logs are JSON lines on stderr.
 * SIGTERM/SIGINT drain gracefully.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import type { Gateway } from "@weft/api";
import { parseDuration, weftError } from "@weft/core";
import type { Command, Option } from "commander";
import { resolveToken } from "../client-options.js";
import type { Io } from "../io.js";
import { onStopSignals } from "../stop-signals.js";
import { parseHostPort, proxyConnectionOptions } from "./proxy.js";

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const GATEWAY_FIELDS = ["kind", "name", "type", "listeners", "services", "jwtProviders", "trustedHops"];

interface GatewayFlags {
  name: string;
  file?: string;
  admin: string;
  advertise?: string;
  bind: string;
  certTtl?: string;
  drainTimeout: string;
  server: string;
  token?: string;
  logLevel: string;
}

function usage(detail: string): never {
  throw weftError("WEFT_ERR_USAGE", { detail });
}

/** Certificate, key, CA and JWKS paths relative to `base` (the resource file's directory). */
export function resolveGatewayPaths(g: Gateway, base: string): Gateway {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  return {
    ...g,
    listeners: g.listeners.map((l) =>
      l.tls === undefined
        ? l
        : {
            ...l,
            tls: {
              ...l.tls,
              certFile: abs(l.tls.certFile),
              keyFile: abs(l.tls.keyFile),
              ...(l.tls.sni
                ? {
                    sni: l.tls.sni.map((s) => ({ ...s, certFile: abs(s.certFile), keyFile: abs(s.keyFile) })),
                  }
                : {}),
            },
          },
    ),
    ...(g.jwtProviders
      ? {
          jwtProviders: g.jwtProviders.map((p) =>
            p.jwks.file === undefined ? p : { ...p, jwks: { ...p.jwks, file: abs(p.jwks.file) } },
          ),
        }
      : {}),
    ...(g.services
      ? {
          services: g.services.map((s) =>
            s.tls?.caFile === undefined ? s : { ...s, tls: { ...s.tls, caFile: abs(s.tls.caFile) } },
          ),
        }
      : {}),
  };
}

/** Parses a Gateway document (as written or as stored) into the validated resource. */
export async function parseGateway(doc: unknown, where: string): Promise<Gateway> {
  const { gatewaySchema } = await import("@weft/api");
  return parseGatewayWith(gatewaySchema, doc, where);
}

function parseGatewayWith(
  gatewaySchema: typeof import("@weft/api").gatewaySchema,
  doc: unknown,
  where: string,
): Gateway {
  const picked: Record<string, unknown> = {};
  if (typeof doc === "object" && doc !== null) {
    for (const k of GATEWAY_FIELDS) if (k in doc) picked[k] = (doc as Record<string, unknown>)[k];
  }
  const r = gatewaySchema.safeParse(picked);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    usage(`${where}: invalid Gateway: ${issues}`);
  }
  return r.data;
}

/** The Gateway NAME from -f: validated like `weft validate`, then picked by name. */
export async function loadGatewayFile(path: string, name: string): Promise<Gateway> {
  const { loadResources } = await import("../files.js");
  const loaded = loadResources(path);
  if (loaded.errors.length > 0) usage(`invalid resources:\n${loaded.errors.join("\n")}`);
  const doc = loaded.documents.find(
    (d) =>
      typeof d === "object" &&
      d !== null &&
      (d as { kind?: unknown }).kind === "Gateway" &&
      (d as { name?: unknown }).name === name,
  );
  if (doc === undefined) usage(`${path}: no Gateway named "${name}"`);
  const file = loaded.files.length === 1 ? (loaded.files[0] as string) : path;
  const base = loaded.files.length === 1 ? dirname(file) : resolve(path);
  return resolveGatewayPaths(await parseGateway(doc, file), base);
}

export function registerGatewayCommand(program: Command, io: Io): void {
  const [server, token, logLevel] = proxyConnectionOptions() as [Option, Option, Option];
  program
    .command("gateway")
    .summary("run an ingress or terminating gateway")
    .description(
      "Run the gateway NAME as a mesh member with its own identity. An ingress gateway serves\n" +
        "its listeners (HTTP, HTTPS with SNI) and routes by host and path to mesh services over\n" +
        "mTLS, with JWT, CORS, rate limits and request limits; a terminating gateway lets mesh\n" +
        "services reach its external services under intentions. The Gateway resource comes from\n" +
        "-f (read once), or from the control plane when -f is not given; an ingress gateway then\n" +
        "applies later changes of its routes, JWT, CORS and rate limits while it runs (changes of\n" +
        "a listener's port, protocol, TLS files or limits need a restart).",
    )
    .requiredOption("--name <name>", "the Gateway resource to run")
    .option("-f, --file <path>", "read the Gateway from this file or directory")
    .option("--admin <addr>", "admin listener: /ready, /config, /metrics", "127.0.0.1:0")
    .option("--advertise <host>", "address registered in the catalog")
    .option("--bind <host>", "terminating: where the per-service mTLS listeners bind", "127.0.0.1")
    .option("--cert-ttl <duration>", "certificate lifetime to ask for (default: the mesh's)")
    .option("--drain-timeout <duration>", "how long SIGTERM waits for in-flight requests", "10s")
    .addOption(server)
    .addOption(token)
    .addOption(logLevel)
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft gateway --name edge -f gateway.yaml\n  $ weft gateway --name egress --server 10.0.0.5:7400 --token $TOKEN\n",
    )
    .action(async (flags: GatewayFlags) => {
      if (!NAME.test(flags.name)) usage(`--name "${flags.name}": expected a lowercase DNS label`);
      const admin = parseHostPort("--admin", flags.admin);
      const drain = parseDuration(flags.drainTimeout);
      if (!drain.ok) usage(`--drain-timeout "${flags.drainTimeout}": ${drain.error}`);
      if (flags.certTtl !== undefined && !parseDuration(flags.certTtl).ok) {
        usage(`--cert-ttl "${flags.certTtl}": not a duration`);
      }
      const [{ WeftClient }, gw, { pino }] = await Promise.all([
        import("@weft/api/client"),
        import("@weft/gateway"),
        import("pino"),
      ]);
      const client = new WeftClient({ addr: flags.server, token: resolveToken(flags.token, io.cwd) });
      const config =
        flags.file !== undefined
          ? await loadGatewayFile(resolve(io.cwd, flags.file), flags.name)
          : await parseGateway(await client.getConfig("Gateway", flags.name), `Gateway "${flags.name}"`);
      if (config.type === "mesh") usage(`Gateway "${flags.name}": mesh gateways are not supported yet`);
      const logger = pino(
        { name: "weft-gateway", level: flags.logLevel, base: { gateway: flags.name } },
        pino.destination({ dest: 2, sync: false }),
      );
      const common = {
        client,
        config,
        logger,
        admin,
        ...(flags.advertise ? { advertise: flags.advertise } : {}),
        ...(flags.certTtl ? { certTtl: flags.certTtl } : {}),
        drainTimeoutMs: drain.ms,
      };
      const { gatewaySchema } = await import("@weft/api");
      // From the control plane: later changes of the resource are applied while running.
      const watch =
        flags.file === undefined
          ? {
              watch: {
                parse: (doc: unknown) => parseGatewayWith(gatewaySchema, doc, `Gateway "${flags.name}"`),
              },
            }
          : {};
      const running =
        config.type === "ingress"
          ? new gw.IngressGateway({ ...common, ...watch })
          : new gw.TerminatingGateway({ ...common, bind: flags.bind });
      const stop = onStopSignals(io, (sig) => logger.info({ signal: sig }, "draining"));
      const started = running.start().then(
        () => {
          if (stop.signalled()) return;
          const ports =
            running instanceof gw.IngressGateway
              ? `listeners=${running.ports.listeners.join(",")} admin=${running.ports.admin}`
              : `services=${running.endpoints.map((e) => `${e.service}:${e.port}`).join(",")} admin=${running.endpoints[0]?.admin ?? 0}`;
          io.out.write(`weft gateway ready name=${flags.name} type=${config.type} ${ports}\n`);
        },
        async (e: unknown) => {
          if (stop.signalled()) return;
          await running.stop().catch(() => {});
          throw e;
        },
      );
      await Promise.race([started, stop.requested]);
      await stop.requested;
      await running.stop();
      logger.info({}, "stopped");
      logger.flush();
    });
}
