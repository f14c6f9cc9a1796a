/**
 * Traffic splitting across real sidecars: `api` v1 (replicas a, b) and v2
 * (replica c), told apart by the `version` meta their sidecars register. A
 * Resolver names the subsets; a Split sends a share of each request to each
 * subset. Checked by counting 1,000 requests through the `web` sidecar, then
 * moved with `weft apply`, as an operator does a canary.
 */
import type { ProxySnapshot } from "@weft/api";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "./helpers/http.js";
import {
  adminJson,
  applyResources,
  meshCleanup,
  type SidecarProc,
  startClientMesh,
  waitFor,
} from "./helpers/mesh.js";
import { startWeftServer, type WeftServer } from "./helpers/weft.js";

const REPLICAS = { a: "v1", b: "v1", c: "v2" } as const;

let cp: WeftServer;
let web: SidecarProc;
let apiLocal: number;

beforeAll(async () => {
  cp = await startWeftServer({ store: "memory", dev: true });
  apiLocal = await freePort();
  await applyResources(cp.addr, [
    { kind: "Intention", name: "api", sources: [{ name: "web", action: "allow" }] },
    {
      kind: "Resolver",
      name: "api",
      subsets: { v1: { meta: { version: "v1" } }, v2: { meta: { version: "v2" } } },
    },
  ]);
  const mesh = await startClientMesh(
    cp.addr,
    Object.entries(REPLICAS).map(([replica, version]) => ({
      service: "api",
      replica,
      script: "http-app.mjs",
      meta: { version },
    })),
    { api: apiLocal },
  );
  web = mesh.web;
}, 60_000);

afterAll(meshCleanup);

/** Applies resources, then waits until the web sidecar's snapshot satisfies `ready`. */
async function applyAndWait(
  resources: Record<string, unknown>[],
  ready: (snapshot: ProxySnapshot | undefined) => boolean,
  what: string,
): Promise<void> {
  await applyResources(cp.addr, resources);
  await waitFor(async () => ready((await adminJson(web.adminPort, "/config")).snapshot), 10_000, {
    what,
    intervalMs: 50,
  });
}

/** 1,000 requests, 8 at a time: answers by version. */
async function versions(n = 1_000): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < n) {
        next++;
        const r = await http(`http://127.0.0.1:${apiLocal}`, "/whoami", { timeoutMs: 5_000 });
        const replica = r.status === 200 ? String(r.body?.replica) : `status ${r.status}`;
        const key = REPLICAS[replica as keyof typeof REPLICAS] ?? replica;
        counts[key] = (counts[key] ?? 0) + 1;
      }
    }),
  );
  return counts;
}

describe("splits between subsets", () => {
  it("90/10 between v1 and v2 is honoured within a few percent over 1,000 requests; 50/50 after an apply", async () => {
    const split = (v1: number, v2: number) => ({
      kind: "Split",
      name: "api",
      splits: [
        { weight: v1, subset: "v1" },
        { weight: v2, subset: "v2" },
      ],
    });
    const endpointsOf = (s: ProxySnapshot | undefined, c: string) => s?.clusters?.[c]?.endpoints?.length ?? 0;
    await applyAndWait(
      [split(90, 10)],
      (s) =>
        s?.upstreams?.[0]?.splits?.[1]?.weight === 10 &&
        endpointsOf(s, "api.v1") === 2 &&
        endpointsOf(s, "api.v2") === 1,
      "the 90/10 split with both subsets' endpoints",
    );
    const canary = await versions();
    console.log(`split 90/10 over 1,000 requests: ${JSON.stringify(canary)}`);
    expect((canary.v1 ?? 0) + (canary.v2 ?? 0)).toBe(1_000);
    expect(canary.v2).toBeGreaterThanOrEqual(70);
    expect(canary.v2).toBeLessThanOrEqual(130);

    await applyAndWait(
      [split(50, 50)],
      (s) => s?.upstreams?.[0]?.splits?.[1]?.weight === 50,
      "the 50/50 split",
    );
    const half = await versions();
    console.log(`split 50/50 over 1,000 requests: ${JSON.stringify(half)}`);
    expect((half.v1 ?? 0) + (half.v2 ?? 0)).toBe(1_000);
    expect(half.v2).toBeGreaterThanOrEqual(450);
    expect(half.v2).toBeLessThanOrEqual(550);
  }, 60_000);

  it("without a Split, the Resolver's default subset takes all the traffic", async () => {
    await deleteSplit();
    await applyAndWait(
      [
        {
          kind: "Resolver",
          name: "api",
          subsets: { v1: { meta: { version: "v1" } }, v2: { meta: { version: "v2" } } },
          defaultSubset: "v2",
        },
      ],
      (s) => s?.upstreams?.[0]?.cluster === "api.v2" && s?.upstreams?.[0]?.splits === undefined,
      "the default subset v2 and no split",
    );
    const all = await versions(200);
    console.log(`default subset v2, no split, 200 requests: ${JSON.stringify(all)}`);
    expect(all).toEqual({ v2: 200 });
  }, 60_000);
});

/** `weft delete split api` through the API. */
async function deleteSplit(): Promise<void> {
  const r = await fetch(`http://${cp.addr}/v1/config/Split/api`, { method: "DELETE" });
  expect(r.status).toBe(200);
}
