/**
 * Once-only duties of a replicated control plane: on an etcd store, a
 * LeaderElection decides which replica runs them, and a `LeaderGate` hands
 * that decision (and a store fenced on the current term) to the services
 * that have such duties (the catalog's TTL expiry and reaping today).
 * Embedded stores have one server per store: no election, no gate.
 *
 * `WEFT_LEADER_TTL_MS` (2000..600000, default 10000) sets the lease TTL: a
 * dead leader's duties resume on another replica within about that long.
 * `WEFT_ADVERTISE_URL` is the API URL other replicas use to reach this one
 * (forwarded CA requests); default: the listen URL, which is only right when
 * it is not a wildcard address (0.0.0.0, ::).
 */

import { hostname } from "node:os";
import { type Disposable, weftError } from "@weft/core";
import type { Logger } from "pino";
import type { LeaderGate } from "../catalog/catalog.js";
import type { EtcdStore } from "../store/etcd.js";
import type { Store } from "../store/store.js";
import { DEFAULT_LEASE_TTL_MS, LeaderElection } from "./leader.js";

export interface Duties {
  readonly election: LeaderElection;
  readonly gate: LeaderGate;
}

/** Starts the duty election when `store` is etcd; undefined otherwise. */
export function startDuties(
  store: Store,
  opts: { logger?: Logger; env?: NodeJS.ProcessEnv } = {},
): Duties | undefined {
  if (store.backend !== "etcd") return undefined;
  const etcd = store as EtcdStore;
  const election = LeaderElection.start({
    client: etcd.client,
    key: `${etcd.layout.leaderPrefix}duties`,
    id: `${hostname()}:${process.pid}`,
    ttlMs: leaderTtlMs(opts.env ?? process.env),
    ...(opts.logger ? { logger: opts.logger } : {}),
  });
  const gate: LeaderGate = {
    isLeader: () => election.isLeader(),
    onChange: (fn): Disposable => election.onChange(fn),
    dutyStore: () => {
      const fence = election.fence();
      return fence ? etcd.fenced(fence) : undefined;
    },
  };
  return { election, gate };
}

export function leaderTtlMs(env: NodeJS.ProcessEnv): number {
  const raw = env.WEFT_LEADER_TTL_MS;
  if (raw === undefined || raw === "") return DEFAULT_LEASE_TTL_MS;
  const n = /^\d{1,6}$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN;
  if (!(n >= 2_000 && n <= 600_000)) {
    throw weftError("WEFT_ERR_USAGE", {
      detail: `WEFT_LEADER_TTL_MS="${raw.slice(0, 20)}": expected 2000..600000 (ms)`,
    });
  }
  return n;
}

/** The API URL this replica publishes to the others: WEFT_ADVERTISE_URL, else the listen URL. */
export function advertiseUrl(listenUrl: string, env: NodeJS.ProcessEnv = process.env): string {
  const raw = env.WEFT_ADVERTISE_URL?.trim();
  if (!raw) return listenUrl;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw weftError("WEFT_ERR_USAGE", { detail: `WEFT_ADVERTISE_URL="${raw.slice(0, 80)}": not a URL` });
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw weftError("WEFT_ERR_USAGE", {
      detail: `WEFT_ADVERTISE_URL="${raw.slice(0, 80)}": expected http(s)://host:port`,
    });
  }
  return u.origin;
}
