// The store folder's public surface; helpers shared between backends
// (txn execution, watch hub, input checks) stay internal.
export { BaseStore, type BaseStoreOptions, DEFAULT_HISTORY_LIMIT } from "./base-store.js";
export {
  DATA_DIR_LOCK,
  DATA_DIR_MARKER,
  DATA_DIR_STORE,
  type DataDirMarker,
  type DataDirOptions,
  openDataDir,
  readDataDirMarker,
} from "./data-dir.js";
// Types only: the etcd client (gRPC) is loaded on first use of an etcd:// spec (open-store.ts).
export type { EtcdFence, EtcdStore, EtcdStoreOptions } from "./etcd.js";
export { compareKeys, prefixEnd } from "./keys.js";
export { MemoryStore, type MemoryStoreOptions } from "./memory.js";
export { openStore, registeredStoreBackends, registerStoreBackend, storeParams } from "./open-store.js";
export {
  SQLITE_APPLICATION_ID,
  SQLITE_FORMAT_VERSION,
  SqliteStore,
  type SqliteStoreOptions,
} from "./sqlite.js";
export * from "./store.js";
