/**
 * `weft server`: runs the control plane in this process (the one place the
 * CLI imports the control plane instead of using the API client). Prints
 * `weft server listening on <url>` once it accepts connections (tests and
 * scripts wait for that line), and on the first start of a data dir the
 * bootstrap management token. SIGINT/SIGTERM close it gracefully (exit 0);
 * a second signal, or a close that takes over 10 s, exits at once (1).
 */
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { BOOTSTRAP_TOKEN_FILE, DEFAULT_DATA_DIR } from "../client-options.js";
import type { Io } from "../io.js";
import { onStopSignals } from "../stop-signals.js";

const CLOSE_TIMEOUT_MS = 10_000;
/** A store spec with a scheme of two or more letters (as in open-store.ts; "C:" stays a path). */
const STORE_URL = /^[a-z][a-z0-9+.-]+:/i;

/**
 * The built web UI's directory (`@weft/web`'s dist/), served by the control
 * plane at /ui/. Resolved through the package (installed layouts), else by
 * the repository layout: packages/cli/dist/commands/server.js ->
 * packages/web/dist. The fallback exists while @weft/web is not yet a
 * dependency in packages/cli/package.json; once it is, the first branch
 * always answers.
 */
export function webUiDir(): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve("@weft/web/package.json")), "dist");
  } catch {
    // A missing build is still returned: /ui/ then answers a clear 503, not a silent 404.
    return fileURLToPath(new URL("../../../web/dist", import.meta.url));
  }
}

interface ServerFlags {
  listen: string;
  dataDir: string;
  store?: string;
  dev?: boolean;
  xdsListen?: string;
}

export function registerServerCommand(program: Command, io: Io): void {
  program
    .command("server")
    .summary("run the control plane")
    .description(
      "Run the control plane: catalog, health, config, ACL and the HTTP API.\n" +
        "State is kept in --data-dir (SQLite) unless --store memory or an etcd URL is given.\n" +
        `The first start of a data dir prints a bootstrap management token and saves it (0600)\n` +
        `as DIR/${BOOTSTRAP_TOKEN_FILE}; weft commands run from the directory that holds\n` +
        `./${DEFAULT_DATA_DIR} pick it up automatically. On etcd, several servers (replicas)\n` +
        "share one store: the first to start on an empty store prints the token (not saved),\n" +
        "the others none.",
    )
    .option("--listen <addr>", "address for the HTTP API (port 0 picks a free port)", "127.0.0.1:7400")
    .option("--data-dir <dir>", "directory for the store and the bootstrap token", DEFAULT_DATA_DIR)
    .option(
      "--store <spec>",
      "store backend: memory, a data directory, or etcd://host:port[,host:port...][?prefix=/weft/&ca=FILE&cert=FILE&key=FILE&username=U&passwordFile=FILE&timeout=MS] (default: --data-dir)",
    )
    .option(
      "--xds-listen <addr>",
      "also serve xDS (ADS, gRPC) for proxyless gRPC clients and Envoy on this address",
    )
    .option("--dev", "development mode: anonymous requests on loopback act as operator (insecure)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft server\n  $ weft server --listen 0.0.0.0:7400 --data-dir /var/lib/weft\n  $ weft server --store memory --dev\n" +
        "  $ weft server --store 'etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379?prefix=/weft/prod/'\n",
    )
    .action(async (opts: ServerFlags) => {
      const dataDir = resolve(io.cwd, opts.dataDir);
      // A spec with a scheme (etcd://, sqlite://, memory://) is a URL and stays as is; anything
      // else is a data dir path, relative to the working directory.
      const isUrl = opts.store !== undefined && STORE_URL.test(opts.store.trim());
      const storeSpec =
        opts.store === undefined || opts.store === "memory" || isUrl
          ? opts.store
          : resolve(io.cwd, opts.store);
      const savesToken = storeSpec === undefined || (storeSpec !== "memory" && !isUrl);

      // Signal handlers go in first: a SIGTERM that arrives while starting, or
      // right after the listening line was read by a supervisor, still closes cleanly.
      const stop = onStopSignals(io);

      // Loaded here, not at the top: client commands then start without the
      // control plane's dependencies (SQLite, logger) being loaded at all.
      // startServer validates --listen and names listen failures itself.
      const cp = await import("@weft/controlplane");
      const server = await cp.startServer({
        listen: opts.listen,
        storeSpec: storeSpec ?? dataDir,
        dataDir,
        dev: opts.dev === true,
        uiDir: webUiDir(),
        ...(opts.xdsListen !== undefined ? { xdsListen: opts.xdsListen } : {}),
      });

      io.out.write(`weft server listening on ${server.url}\n`);
      if (server.xds) io.out.write(`weft xds listening on port ${server.xds.port}\n`);
      if (opts.dev) {
        io.err.write(
          "WARNING: dev mode: anonymous requests from loopback are treated as operator. Do not use in production.\n",
        );
      }
      if (server.bootstrapToken) {
        io.out.write(`bootstrap management token: ${server.bootstrapToken}\n`);
        // The control plane saves it in a data dir; a memory store has none (and a token file
        // there would outlive the server it belongs to).
        const file = join(dataDir, BOOTSTRAP_TOKEN_FILE);
        if (savesToken) io.out.write(`saved to ${file} (mode 0600); it is shown only this once\n`);
        else if (isUrl)
          io.out.write(
            "not saved (the store is not a local data dir); it is shown only this once, and only by the first server on this store\n",
          );
        else io.out.write("not saved (memory store); it is shown only this once\n");
      }

      io.out.write(`web UI at ${server.url}/ui/\n`);

      const signal = await stop.requested;
      io.err.write(`received ${signal}; shutting down\n`);
      const force = setTimeout(() => {
        io.err.write(`shutdown took longer than ${CLOSE_TIMEOUT_MS} ms; exiting\n`);
        process.exit(1);
      }, CLOSE_TIMEOUT_MS);
      force.unref();
      try {
        await server.close();
      } finally {
        clearTimeout(force);
      }
      io.err.write("weft server stopped\n");
    });
}
