/** The Gateway's `jwtProviders`, made runnable: one key set each, loaded before the listeners serve. */
import type { Clock } from "@weft/core";
import type { JwtProviderConfig } from "../types.js";
import { JwksKeySet, type JwksLogger } from "./jwks.js";
import type { JwtProviderRuntime } from "./jwt-auth.js";

export interface Providers {
  byName: ReadonlyMap<string, JwtProviderRuntime>;
  /** Loads every key set; the names of those whose first load failed (their tokens are refused until one succeeds). */
  start(): Promise<string[]>;
  dispose(): void;
}

export function buildProviders(
  configs: readonly JwtProviderConfig[] | undefined,
  o: { clock?: Clock; logger?: JwksLogger; minRefreshMs?: number },
): Providers {
  const byName = new Map<string, JwtProviderRuntime>();
  for (const c of configs ?? []) {
    const keys = new JwksKeySet({
      source: c.jwks.file !== undefined ? { file: c.jwks.file } : { url: c.jwks.url as string },
      cacheMs: c.jwks.cacheDuration,
      ...(o.minRefreshMs !== undefined ? { minRefreshMs: o.minRefreshMs } : {}),
      ...(o.clock ? { clock: o.clock } : {}),
      ...(o.logger ? { logger: o.logger } : {}),
    });
    byName.set(c.name, {
      name: c.name,
      issuer: c.issuer,
      audiences: c.audiences,
      algorithms: c.algorithms,
      clockSkewMs: c.clockSkew,
      claimToHeaders: c.claimToHeaders,
      forwardToken: c.forwardToken,
      keys,
    });
  }
  return {
    byName,
    async start() {
      const failed: string[] = [];
      await Promise.all(
        [...byName.values()].map(async (p) => {
          if (!(await p.keys.start())) failed.push(p.name);
        }),
      );
      return failed;
    },
    dispose() {
      for (const p of byName.values()) p.keys.dispose();
    },
  };
}
