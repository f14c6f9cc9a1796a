/**
 * Store backends register by URL scheme (habit 6: registries with typed
 * config), so `weft server --store <spec>` and the etcd backend (later) need
 * no change here. Accepted specs:
 *
 *   memory | memory://                      in-memory, nothing persisted
 *   sqlite:///abs/path.db[?historyLimit=N]  one SQLite file
 *   /path/to/dir | ./dir                    a data dir (see data-dir.ts)
 *   etcd://host:port[,host:port...][?...]   etcd (see etcd-url.ts for the options)
 *
 * Query parameters are the backend's typed config: each factory parses and
 * validates its own and refuses unknown ones.
 */

import { weftError } from "@weft/core";
import { z } from "zod";
import { openDataDir } from "./data-dir.js";
import { MemoryStore } from "./memory.js";
import { SqliteStore } from "./sqlite.js";
import type { Store, StoreFactory } from "./store.js";

const factories = new Map<string, StoreFactory>();

/** Registers (or replaces) the factory for `scheme` ("etcd", without the colon). */
export function registerStoreBackend(scheme: string, factory: StoreFactory): void {
  if (!/^[a-z][a-z0-9+.-]*$/.test(scheme)) {
    throw weftError("WEFT_ERR_VALIDATION", { detail: `invalid store scheme "${scheme}"` });
  }
  factories.set(scheme, factory);
}

export function registeredStoreBackends(): string[] {
  return [...factories.keys()].sort();
}

/** A scheme needs two or more letters so that a Windows drive ("C:") reads as a path. */
const SCHEME = /^([a-z][a-z0-9+.-]+):/i;

/** Opens the store described by `spec`; see the file comment for the forms. */
export async function openStore(spec: string): Promise<Store> {
  const trimmed = spec.trim();
  if (trimmed === "") throw weftError("WEFT_ERR_CONFIG_INVALID", { detail: "store spec is empty" });
  if (trimmed === "memory") return new MemoryStore();
  const scheme = SCHEME.exec(trimmed)?.[1]?.toLowerCase();
  if (scheme === undefined) return openDataDir(trimmed);
  const factory = factories.get(scheme);
  if (!factory) {
    throw weftError("WEFT_ERR_CONFIG_INVALID", {
      detail: `unknown store backend "${scheme}"; registered: ${registeredStoreBackends().join(", ")}`,
    });
  }
  let url: URL;
  try {
    url = new URL(hostListToParam(trimmed));
  } catch {
    throw weftError("WEFT_ERR_CONFIG_INVALID", { detail: `store spec "${trimmed}" is not a valid URL` });
  }
  return factory(url);
}

/**
 * A host list ("etcd://h1:2379,h2:2379/...") is no valid URL authority: the
 * URL keeps the first host and the whole list moves to a `hosts` parameter.
 */
function hostListToParam(spec: string): string {
  const m = /^([a-z][a-z0-9+.-]+:\/\/)([^/?#@]*@)?([^/?#,]*)(,[^/?#]*)([^?#]*)(\?[^#]*)?$/i.exec(spec);
  if (!m) return spec;
  const [, scheme, userinfo = "", first = "", rest = "", path = "", query = ""] = m;
  const hosts = `hosts=${encodeURIComponent(first + rest)}`;
  return `${scheme}${userinfo}${first}${path}${query === "" ? "?" : `${query}&`}${hosts}`;
}

const historyLimit = z.coerce.number().int().positive().optional();

/** Parses a backend's query parameters against `shape`, refusing unknown ones. */
export function storeParams<T extends z.ZodRawShape>(url: URL, shape: T): z.infer<z.ZodObject<T>> {
  const result = z.strictObject(shape).safeParse(Object.fromEntries(url.searchParams));
  if (!result.success) {
    const detail = result.error.issues
      .map((i) => (i.path.length > 0 ? `${i.path.join(".")}: ${i.message}` : i.message))
      .join("; ");
    throw weftError("WEFT_ERR_CONFIG_INVALID", { detail: `store ${url.protocol}// options: ${detail}` });
  }
  return result.data;
}

registerStoreBackend("memory", async (url) => {
  if (url.host !== "" || (url.pathname !== "" && url.pathname !== "/")) {
    throw weftError("WEFT_ERR_CONFIG_INVALID", { detail: "memory:// takes no path" });
  }
  return new MemoryStore(storeParams(url, { historyLimit }));
});

registerStoreBackend("sqlite", async (url) => {
  if (url.host !== "" || !url.pathname.startsWith("/") || url.pathname === "/") {
    throw weftError("WEFT_ERR_CONFIG_INVALID", {
      detail: 'sqlite store needs an absolute path: "sqlite:///var/lib/weft/store.db"',
    });
  }
  return SqliteStore.open(decodeURIComponent(url.pathname), storeParams(url, { historyLimit }));
});

// Loaded on first use: embedded deployments never load the etcd client (gRPC).
registerStoreBackend("etcd", async (url) => (await import("./etcd-url.js")).openEtcdUrl(url));
