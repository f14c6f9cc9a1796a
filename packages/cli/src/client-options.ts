/**
 * The options every command that talks to the control plane shares:
 * `--addr` (env WEFT_ADDR) and `--token` (env WEFT_TOKEN, else the
 * bootstrap token file a local `weft server` wrote). Commands get a
 * WeftClient from here and never build URLs themselves.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { WeftClient } from "@weft/api/client";
import { type Command, Option } from "commander";

export const DEFAULT_ADDR = "127.0.0.1:7400";
export const DEFAULT_DATA_DIR = ".weft/server";
/** Where `weft server` keeps the bootstrap management token, relative to its data dir. */
export const BOOTSTRAP_TOKEN_FILE = "bootstrap-token";
export const DEFAULT_TOKEN_PATH = `${DEFAULT_DATA_DIR}/${BOOTSTRAP_TOKEN_FILE}`;

export interface ClientFlags {
  addr: string;
  token?: string | undefined;
}

/** Adds --addr and --token to a command, with their environment variables shown in help. */
export function withClientOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        "--addr <addr>",
        "control plane address: host:port or URL; several, comma-separated, to fail over between replicas",
      )
        .env("WEFT_ADDR")
        .default(DEFAULT_ADDR),
    )
    .addOption(
      new Option(
        "--token <secret>",
        `ACL token secret (falls back to ./${DEFAULT_TOKEN_PATH} when that file exists)`,
      ).env("WEFT_TOKEN"),
    );
}

/** The token to use: the flag or env, else the local bootstrap token file, else none. */
export function resolveToken(flag: string | undefined, cwd = process.cwd()): string | undefined {
  if (flag !== undefined && flag.length > 0) return flag;
  try {
    const t = readFileSync(resolve(cwd, DEFAULT_TOKEN_PATH), "utf8").trim();
    return t.length > 0 ? t : undefined;
  } catch {
    return undefined;
  }
}

export function clientFrom(flags: ClientFlags, cwd = process.cwd()): WeftClient {
  return new WeftClient({ addr: flags.addr, token: resolveToken(flags.token, cwd) });
}
