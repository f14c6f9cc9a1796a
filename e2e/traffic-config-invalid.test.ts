/**
 * Invalid traffic config is refused at `weft apply` (and `weft delete`),
 * through the real CLI against a running control plane, with a message
 * naming the resource and the field; a connected sidecar never receives it
 * (its snapshot version does not move) and the stored resources stay as
 * they were. Cases from issue #7: a split that does not sum to 100, a route
 * to an unknown subset, a regex that is too costly, a circular
 * redirect/failover; and the reverse reference: a Resolver change (or
 * delete) that would strand a stored Split's subset.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "@weft/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  adminJson,
  allowFrom,
  applyResources,
  meshCleanup,
  type SidecarProc,
  startApp,
  startProxy,
  waitFor,
} from "./helpers/mesh.js";
import { cleanup, runWeft, startWeftServer, tempDir, type WeftServer } from "./helpers/weft.js";

let cp: WeftServer;
let web: SidecarProc;
const dir = tempDir("weft-invalid-traffic-");

beforeAll(async () => {
  cp = await startWeftServer({ store: "memory", dev: true });
  await applyResources(cp.addr, [
    allowFrom("api"),
    {
      kind: "Resolver",
      name: "api",
      subsets: { v1: { meta: { version: "v1" } }, v2: { meta: { version: "v2" } } },
    },
    {
      kind: "Split",
      name: "api",
      splits: [
        { weight: 90, subset: "v1" },
        { weight: 10, subset: "v2" },
      ],
    },
  ]);
  const app = await startApp("http-app.mjs", { env: { NAME: "web", REPLICA: "w" } });
  web = await startProxy({
    service: "web",
    appPort: app.port,
    protocol: "http",
    health: { http: "/healthz" },
    upstreams: { api: await freePort() },
    server: cp.addr,
  });
  await waitFor(async () => (await snapshotOfWeb())?.upstreams?.[0]?.splits?.length === 2, 10_000, {
    what: "web's snapshot with the split",
  });
}, 60_000);

afterAll(async () => {
  await meshCleanup();
  await cleanup();
});

// biome-ignore lint/suspicious/noExplicitAny: test code reads arbitrary JSON fields
async function snapshotOfWeb(): Promise<any> {
  return (await adminJson(web.adminPort, "/config")).snapshot;
}

async function weft(...args: string[]) {
  return runWeft(args, { env: { WEFT_ADDR: cp.addr } });
}

/** `weft apply -f` of `yaml`; the stored Split and Resolver and web's snapshot must not change. */
async function refused(name: string, yaml: string): Promise<string> {
  const before = (await snapshotOfWeb()).version;
  const stored = (await weft("get", "Resolver", "api", "-o", "json")).stdout;
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, yaml);
  const r = await weft("apply", "-f", file);
  expect(r.code, r.stdout + r.stderr).toBe(2);
  // Time for a push that should not happen.
  await new Promise((res) => setTimeout(res, 300));
  expect((await snapshotOfWeb()).version).toBe(before);
  expect((await weft("get", "Resolver", "api", "-o", "json")).stdout).toBe(stored);
  return r.stderr;
}

describe("invalid traffic config is refused at apply, and proxies never see it", () => {
  it("a split whose weights do not sum to 100", async () => {
    const err = await refused(
      "split-90",
      "kind: Split\nname: api\nsplits: [{weight: 80, subset: v1}, {weight: 10, subset: v2}]\n",
    );
    expect(err).toMatch(/split-90\.yaml:\d+:\d+: Split "api": splits: weights must sum to 100, got 90/);
    expect(err).toContain("nothing was applied");
  });

  it("a route to a subset the Resolver does not define", async () => {
    const err = await refused(
      "route-subset",
      "kind: Route\nname: api\nroutes:\n  - match: {pathPrefix: /beta}\n    destination: {subset: v3}\n",
    );
    expect(err).toMatch(
      /Route "api": routes\[0\]\.destination\.subset: subset "v3" is not defined by Resolver "api"; it defines "v1", "v2"/,
    );
  });

  it("a regex that is too costly", async () => {
    const err = await refused(
      "route-regex",
      'kind: Route\nname: api\nroutes:\n  - match: {pathRegex: "(a+)+$"}\n',
    );
    expect(err).toMatch(/Route "api": routes\[0\]\.match\.pathRegex: nested quantifiers/);
  });

  it("a circular redirect/failover", async () => {
    const err = await refused(
      "cycle",
      "kind: Resolver\nname: a\nfailover: {targets: [{service: b}]}\n---\nkind: Resolver\nname: b\nredirect: {service: a}\n",
    );
    expect(err).toMatch(
      /Resolver "a": failover\.targets\[0\]\.service: redirect\/failover cycle: a -> b -> a/,
    );
    expect(err).toMatch(/Resolver "b": redirect\.service: redirect\/failover cycle: b -> a -> b/);
  });

  it("a Resolver that drops a subset the stored Split still sends 10 % to", async () => {
    const err = await refused(
      "drop-subset",
      "kind: Resolver\nname: api\nsubsets: {v1: {meta: {version: v1}}}\n",
    );
    expect(err).toMatch(
      /Resolver "api"\)?\.?:? ?subsets: subset "v2" is still used by Split "api" \(splits\[1\]\.subset\)/,
    );
  });

  it("deleting that Resolver is refused too (409), and nothing changes", async () => {
    const before = (await snapshotOfWeb()).version;
    const r = await weft("delete", "Resolver", "api");
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stderr).toContain('still used by Split "api" (splits[0].subset)');
    expect((await weft("get", "Resolver", "api")).code).toBe(0);
    expect((await snapshotOfWeb()).version).toBe(before);
  });

  it("the same change is accepted when the Split moves off the subset in the same apply", async () => {
    const file = join(dir, "together.yaml");
    writeFileSync(
      file,
      "kind: Resolver\nname: api\nsubsets: {v1: {meta: {version: v1}}}\n---\nkind: Split\nname: api\nsplits: [{weight: 100, subset: v1}]\n",
    );
    const r = await weft("apply", "-f", file);
    expect(r.code, r.stderr).toBe(0);
    await waitFor(async () => (await snapshotOfWeb()).upstreams[0].splits?.length === 1, 10_000, {
      what: "web's snapshot with the new split",
    });
  });
});
