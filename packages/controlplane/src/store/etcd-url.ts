/**
 * `etcd://` store specs (registered in open-store.ts, loaded on first use):
 *
 *   etcd://[user[:password]@]host[:port][,host[:port]...][/][?options]
 *
 * Options (query parameters; unknown ones are refused):
 *   prefix=/weft/        root of this store's keys (meshes sharing an etcd use different ones)
 *   timeout=5000         bound on each etcd call and on connecting, ms (100..600000)
 *   ca=FILE              CA bundle (PEM): talk TLS (https) to every host
 *   cert=FILE&key=FILE   client certificate and key (PEM) for mTLS; needs ca
 *   username=U           etcd user (or in the userinfo)
 *   password=P           its password (or in the userinfo); prefer:
 *   passwordFile=FILE    read the password from a file (keeps it out of argv and logs)
 *
 * The port defaults to 2379. A host list is not a valid URL authority, so
 * openStore moves it to a `hosts` parameter before parsing.
 */

import { readFileSync } from "node:fs";
import { weftError } from "@weft/core";
import { z } from "zod";
import { EtcdStore, type EtcdStoreOptions } from "./etcd.js";
import { storeParams } from "./open-store.js";

const file = z.string().min(1).optional();

export async function openEtcdUrl(url: URL): Promise<EtcdStore> {
  const p = storeParams(url, {
    prefix: z.string().min(1).optional(),
    timeout: z.coerce.number().int().min(100).max(600_000).optional(),
    ca: file,
    cert: file,
    key: file,
    username: z.string().min(1).optional(),
    password: z.string().optional(),
    passwordFile: file,
    hosts: z.string().min(1).optional(),
  });
  const bad = (detail: string) => weftError("WEFT_ERR_CONFIG_INVALID", { detail: `etcd store: ${detail}` });
  if (url.pathname !== "" && url.pathname !== "/") throw bad(`unexpected path "${url.pathname}"`);
  if ((p.cert === undefined) !== (p.key === undefined)) throw bad("cert and key go together");
  if (p.cert !== undefined && p.ca === undefined) throw bad("a client certificate needs ca= as well");
  const tls = p.ca !== undefined;
  const hosts = (p.hosts ?? url.host).split(",").map((h) => h.trim());
  if (hosts.some((h) => h === "")) throw bad("an empty host in the host list");
  const endpoints = hosts.map((h) => {
    const withPort = /:\d+$/.test(h) ? h : `${h}:2379`;
    return `${tls ? "https" : "http"}://${withPort}`;
  });

  const username = p.username ?? (url.username === "" ? undefined : decodeURIComponent(url.username));
  const sources = [p.password, url.password === "" ? undefined : url.password, p.passwordFile].filter(
    (x) => x !== undefined,
  );
  if (sources.length > 1) throw bad("give the password once (userinfo, password= or passwordFile=)");
  let password: string | undefined;
  if (p.passwordFile !== undefined) password = read(p.passwordFile, "passwordFile").toString("utf8").trim();
  else if (p.password !== undefined) password = p.password;
  else if (url.password !== "") password = decodeURIComponent(url.password);
  if ((username === undefined) !== (password === undefined)) throw bad("username and password go together");

  const opts: EtcdStoreOptions = { hosts: endpoints };
  if (p.prefix !== undefined) opts.root = p.prefix;
  if (p.timeout !== undefined) opts.timeoutMs = p.timeout;
  if (p.ca !== undefined) {
    opts.tls = { ca: read(p.ca, "ca") };
    if (p.cert !== undefined && p.key !== undefined) {
      opts.tls.cert = read(p.cert, "cert");
      opts.tls.key = read(p.key, "key");
    }
  }
  if (username !== undefined && password !== undefined) opts.auth = { username, password };
  return EtcdStore.open(opts);
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw weftError("WEFT_ERR_CONFIG_INVALID", {
      detail: `etcd store: cannot read ${what} file "${path}": ${(e as Error).message}`,
    });
  }
}
