/**
 * `weft proxy`: runs a sidecar for one instance of a service. Flags are
 * parsed and checked here (exit 2 on a bad one, before anything starts);
 * the sidecar itself is @weft/dataplane, loaded only for this command.
 * Logs are JSON lines (pino) on stderr; "weft proxy ready" with the bound
 * ports goes to stdout once it serves, for supervisors and tests. Access
 * logs go where --access-log says (stdout or a file; none without it).
 * SIGTERM/SIGINT drain gracefully; a second signal exits at once.
 */

import { closeSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import { parseDuration, weftError } from "@weft/core";
import type { Command } from "commander";
import { Option } from "commander";
import { resolveToken } from "../client-options.js";
import type { Io } from "../io.js";
import { onStopSignals } from "../stop-signals.js";

const PROTOCOLS = ["tcp", "http", "http2", "grpc"] as const;
type Protocol = (typeof PROTOCOLS)[number];
const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

interface ProxyFlags {
  service: string;
  appPort: string;
  appHost: string;
  inbound: string;
  admin: string;
  advertise?: string;
  upstream: string[];
  protocol: Protocol;
  healthHttp?: string;
  healthTcp?: boolean;
  healthGrpc?: string | boolean;
  healthInterval: string;
  healthTimeout: string;
  tag: string[];
  meta: string[];
  datacenter?: string;
  locality?: string;
  instanceId?: string;
  certTtl?: string;
  drainTimeout: string;
  server: string;
  token?: string;
  logLevel: string;
  accessLog?: string;
}

function usage(detail: string): never {
  throw weftError("WEFT_ERR_USAGE", { detail });
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

export function parsePort(flag: string, v: string, allowZero = false): number {
  const n = /^\d{1,5}$/.test(v) ? Number(v) : Number.NaN;
  if (!(n >= (allowZero ? 0 : 1) && n <= 65535)) usage(`${flag} "${v}": expected a port number 1-65535`);
  return n;
}

/** `host:port`, `[v6]:port` or `:port` (loopback). */
export function parseHostPort(flag: string, v: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(v.trim());
  if (!m) usage(`${flag} "${v}": expected host:port (e.g. 127.0.0.1:15001; port 0 picks a free one)`);
  const host = m[1] ?? (m[2] === undefined || m[2] === "" ? "127.0.0.1" : m[2]);
  return { host, port: parsePort(flag, m[3] as string, true) };
}

function durationMs(flag: string, v: string, minMs: number): number {
  const r = parseDuration(v);
  if (!r.ok) usage(`${flag} "${v}": ${r.error}`);
  if (r.ms < minMs) usage(`${flag} "${v}": must be at least ${minMs} ms`);
  return r.ms;
}

export function parseUpstreams(values: string[]): { service: string; localPort: number }[] {
  const seenPorts = new Map<number, string>();
  const seenServices = new Set<string>();
  return values.map((v) => {
    const m = /^([^=]+)=(\d{1,5})$/.exec(v);
    if (!m) usage(`--upstream "${v}": expected SERVICE=LOCALPORT (e.g. api=9101)`);
    const service = m[1] as string;
    if (!NAME.test(service))
      usage(`--upstream "${v}": "${service}" is not a service name (lowercase DNS label)`);
    if (seenServices.has(service)) usage(`--upstream "${v}": service "${service}" is listed twice`);
    const localPort = parsePort("--upstream", m[2] as string);
    const other = seenPorts.get(localPort);
    if (other) usage(`--upstream "${v}": local port ${localPort} is already used by upstream "${other}"`);
    seenPorts.set(localPort, service);
    seenServices.add(service);
    return { service, localPort };
  });
}

/** fd 1 for "stdout" / "-", else a file opened now (append), so a path that cannot be written is a usage error. */
function accessLogDestination(v: string): number | string {
  if (v === "stdout" || v === "-") return 1;
  if (v === "") usage('--access-log "": expected "stdout" or a file path');
  try {
    mkdirSync(dirname(v), { recursive: true });
    closeSync(openSync(v, "a"));
  } catch (e) {
    usage(`--access-log "${v}": cannot write: ${(e as Error).message}`);
  }
  return v;
}

function parseMeta(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf("=");
    if (eq <= 0) usage(`--meta "${v}": expected KEY=VALUE`);
    out[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return out;
}

export function registerProxyCommand(program: Command, io: Io): void {
  const [server, token, logLevel] = proxyConnectionOptions() as [Option, Option, Option];
  program
    .command("proxy")
    .summary("run a sidecar proxy for one service instance")
    .description(
      "Run the sidecar for one instance of a service: obtains its certificate, registers the\n" +
        "instance with a health check of the app, streams its config from the control plane,\n" +
        "accepts mTLS on --inbound (authorized by intentions, forwarded to the app) and gives\n" +
        "the app one plain loopback port per --upstream.",
    )
    .requiredOption("--service <name>", "the service this instance belongs to")
    .requiredOption("--app-port <port>", "the port the app listens on (loopback)")
    .option("--app-host <host>", "where the app listens", "127.0.0.1")
    .option("--inbound <addr>", "inbound mTLS listener (port 0 picks a free one)", "127.0.0.1:0")
    .option("--admin <addr>", "admin listener: /ready, /config, /metrics", "127.0.0.1:0")
    .option("--advertise <host>", "address peers use to reach --inbound (default: its host)")
    .option(
      "--upstream <service=port>",
      "an upstream the app reaches at 127.0.0.1:PORT (repeatable)",
      collect,
      [],
    )
    .addOption(
      new Option("--protocol <protocol>", "what the app speaks (ServiceDefaults.protocol overrides it)")
        .choices(PROTOCOLS)
        .default("tcp"),
    )
    .option("--health-http <path>", "health check: HTTP GET this path on the app")
    .option("--health-tcp", "health check: TCP connect to the app (the default)")
    .option("--health-grpc [service]", "health check: grpc.health.v1 Check on the app")
    .option("--health-interval <duration>", "time between health checks", "2s")
    .option("--health-timeout <duration>", "time a health check may take", "1s")
    .option("--tag <tag>", "instance tag (repeatable)", collect, [])
    .option("--meta <key=value>", "instance metadata (repeatable; weight=N sets the LB weight)", collect, [])
    .option("--datacenter <name>", "datacenter of the instance")
    .option("--locality <region[/zone]>", "locality of the instance (Resolver locality failover)")
    .option("--instance-id <id>", "instance id (default: <service>-<random>)")
    .option("--cert-ttl <duration>", "certificate lifetime to ask for (default: the mesh's)")
    .option("--drain-timeout <duration>", "how long SIGTERM waits for in-flight requests", "10s")
    .addOption(server)
    .addOption(token)
    .option(
      "--access-log <dest>",
      'write access logs (JSON lines) to "stdout" or a file; the mesh config turns them on/off per service',
    )
    .addOption(logLevel)
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft proxy --service web --app-port 8080 --upstream api=9101 --protocol http --health-http /healthz\n  $ weft proxy --service api --app-port 8081 --inbound 0.0.0.0:15001 --admin 127.0.0.1:19001 --token $TOKEN --server 10.0.0.5:7400\n",
    )
    .action(async (flags: ProxyFlags) => {
      if (!NAME.test(flags.service)) usage(`--service "${flags.service}": expected a lowercase DNS label`);
      const appPort = parsePort("--app-port", flags.appPort);
      const inbound = parseHostPort("--inbound", flags.inbound);
      const admin = parseHostPort("--admin", flags.admin);
      const upstreams = parseUpstreams(flags.upstream);
      const checks = [
        flags.healthHttp !== undefined,
        flags.healthTcp === true,
        flags.healthGrpc !== undefined,
      ];
      if (checks.filter(Boolean).length > 1)
        usage("choose one of --health-http, --health-tcp, --health-grpc");
      if (flags.healthHttp !== undefined && !flags.healthHttp.startsWith("/")) {
        usage(`--health-http "${flags.healthHttp}": expected a path starting with /`);
      }
      const health =
        flags.healthHttp !== undefined
          ? ({ kind: "http", path: flags.healthHttp } as const)
          : flags.healthGrpc !== undefined
            ? ({
                kind: "grpc",
                ...(typeof flags.healthGrpc === "string" ? { service: flags.healthGrpc } : {}),
              } as const)
            : ({ kind: "tcp" } as const);
      const healthIntervalMs = durationMs("--health-interval", flags.healthInterval, 100);
      const healthTimeoutMs = durationMs("--health-timeout", flags.healthTimeout, 10);
      const drainTimeoutMs = durationMs("--drain-timeout", flags.drainTimeout, 0);
      if (flags.certTtl !== undefined) durationMs("--cert-ttl", flags.certTtl, 1000);
      const meta = parseMeta(flags.meta);
      const accessLogDest = flags.accessLog === undefined ? undefined : accessLogDestination(flags.accessLog);

      const [{ WeftClient }, { Sidecar }, { pino }] = await Promise.all([
        import("@weft/api/client"),
        import("@weft/dataplane"),
        import("pino"),
      ]);
      const logger = pino(
        { name: "weft-proxy", level: flags.logLevel, base: { service: flags.service } },
        pino.destination({ dest: 2, sync: false }),
      );
      // Its own asynchronous destination: a slow disk or reader never holds up a request.
      let accessLog: ReturnType<typeof pino> | undefined;
      if (accessLogDest !== undefined) {
        const dest = pino.destination({ dest: accessLogDest, sync: false, mkdir: true });
        // A write error (disk full) costs log lines, never the proxy.
        dest.on("error", (e: Error) => logger.warn({ err: e.message }, "access log write failed"));
        accessLog = pino({ base: null, level: "info", timestamp: pino.stdTimeFunctions.isoTime }, dest);
      }
      const client = new WeftClient({ addr: flags.server, token: resolveToken(flags.token, io.cwd) });
      const sidecar = new Sidecar({
        client,
        service: flags.service,
        app: { host: flags.appHost, port: appPort },
        inbound,
        admin,
        ...(flags.advertise ? { advertise: flags.advertise } : {}),
        upstreams,
        protocol: flags.protocol,
        health,
        healthIntervalMs,
        healthTimeoutMs,
        tags: flags.tag,
        meta,
        ...(flags.datacenter ? { datacenter: flags.datacenter } : {}),
        ...(flags.locality ? { locality: parseLocality(flags.locality) } : {}),
        ...(flags.instanceId ? { instanceId: flags.instanceId } : {}),
        ...(flags.certTtl ? { certTtl: flags.certTtl } : {}),
        logger,
        ...(accessLog !== undefined ? { accessLog } : {}),
        drainTimeoutMs,
      });

      const stop = onStopSignals(io, (sig) => logger.info({ signal: sig }, "draining"));

      const started = sidecar.start().then(
        () => {
          if (stop.signalled()) return;
          const p = sidecar.ports;
          io.out.write(
            `weft proxy ready service=${flags.service} instance=${sidecar.instanceId} inbound=${p.inbound} admin=${p.admin}\n`,
          );
        },
        async (e: unknown) => {
          if (stop.signalled()) return;
          // Undo what did start (the registration above all), then report why.
          await sidecar.stop().catch(() => {});
          throw e;
        },
      );
      await Promise.race([started, stop.requested]);
      await stop.requested;
      await sidecar.stop();
      logger.info({}, "stopped");
      logger.flush();
      accessLog?.flush();
    });
}

/** `region` or `region/zone`, as the catalog's locality; a bad one is a usage error naming the flag. */
export function parseLocality(text: string): { region: string; zone?: string } {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]{0,62})(?:\/([A-Za-z0-9][A-Za-z0-9._-]{0,62}))?$/.exec(text.trim());
  if (!m) {
    throw weftError("WEFT_ERR_USAGE", {
      detail: `--locality "${text.slice(0, 64)}": expected region or region/zone (letters, digits, . _ -)`,
    });
  }
  return m[2] !== undefined ? { region: m[1] as string, zone: m[2] } : { region: m[1] as string };
}

/**
 * The options every proxy process (`weft proxy`, `weft gateway`) takes to
 * reach the control plane and to log: --server (several addresses fail
 * over), --token, --log-level.
 */
export function proxyConnectionOptions(): Option[] {
  return [
    new Option(
      "--server <addrs>",
      "control plane address; several, comma-separated (a:7400,b:7400), for failover between replicas",
    )
      .env("WEFT_ADDR")
      .default("127.0.0.1:7400"),
    new Option("--token <secret>", "ACL token (needs service:<name>:write)").env("WEFT_TOKEN"),
    new Option("--log-level <level>", "log level")
      .choices(["debug", "info", "warn", "error"])
      .default("info"),
  ];
}
