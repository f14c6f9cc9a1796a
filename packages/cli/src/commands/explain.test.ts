/**
 * `weft explain` in-process against a real control plane (memory store,
 * dev mode): the text output puts the decision first, `--json` prints the
 * API answer, a denied request still exits 0, usage errors exit 2.
 * e2e/explain.test.ts checks the explanations against real sidecars.
 */
import { tmpdir } from "node:os";
import { WeftClient } from "@weft/api/client";
import { type RunningServer, startServer } from "@weft/controlplane";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "../exit-codes.js";
import { runCaptured } from "../run-captured.suite.js";
import { parseHeaderFlag } from "./explain.js";

let srv: RunningServer;
let addr: string;

beforeAll(async () => {
  srv = await startServer({
    listen: "127.0.0.1:0",
    storeSpec: "memory",
    dev: true,
    logger: pino({ level: "silent" }),
  });
  addr = srv.url;
  const client = new WeftClient({ addr });
  await client.applyConfig([
    { kind: "Intention", name: "api", sources: [{ name: "web", action: "allow" }] },
    {
      kind: "Resolver",
      name: "api",
      subsets: { v1: { meta: { version: "v1" } }, v2: { meta: { version: "v2" } } },
    },
    {
      kind: "Split",
      name: "api",
      splits: [
        { weight: 75, subset: "v1" },
        { weight: 25, subset: "v2" },
      ],
    },
  ]);
  await client.applyConfig([
    { kind: "Intention", name: "shop", sources: [{ name: "web", action: "allow" }] },
    {
      kind: "Resolver",
      name: "shop",
      subsets: { v1: { meta: { version: "v1" } }, v2: { meta: { version: "v2" } } },
      defaultSubset: "v1",
      failover: { targets: [{ subset: "v2" }] },
    },
    {
      kind: "Route",
      name: "shop",
      routes: [
        {
          name: "canary",
          match: { headers: [{ name: "x-canary", exact: "1" }] },
          destination: { subset: "v2", timeout: "2s" },
        },
        { name: "old", match: { pathExact: "/old" }, redirect: { path: "/new", statusCode: 301 } },
      ],
    },
  ]);
  // shop-1 (v1) has a TTL check never reported: critical, so shop.v1 fails over to shop.v2.
  await client.registerInstance({
    id: "shop-1",
    service: "shop",
    address: "127.0.0.1",
    port: 2001,
    meta: { version: "v1" },
    checks: [{ ttl: "30s", name: "app" }],
    proxy: { protocol: "http" },
  });
  await client.registerInstance({
    id: "shop-2",
    service: "shop",
    address: "127.0.0.1",
    port: 2002,
    meta: { version: "v2" },
    proxy: { protocol: "http" },
  });
  await client.registerInstance({
    id: "api-1",
    service: "api",
    address: "127.0.0.1",
    port: 1001,
    meta: { version: "v1" },
    proxy: { protocol: "http" },
  });
  await client.registerInstance({
    id: "api-2",
    service: "api",
    address: "127.0.0.1",
    port: 1002,
    meta: { version: "v2" },
    proxy: { protocol: "http" },
  });
});
afterAll(async () => {
  await srv.close();
});

const explain = (...args: string[]) => runCaptured(["explain", "--addr", addr, ...args], tmpdir());

describe("weft explain", () => {
  it("an allowed request: the decision first, then the split with weights and each subset's candidates", async () => {
    const r = await explain("--from", "web", "--to", "api", "--path", "/x");
    expect(r.err).toBe("");
    expect(r.code).toBe(EXIT.OK);
    const lines = r.out.split("\n");
    expect(lines[0]).toBe('ALLOWED by intention "api": source "web" allows');
    expect(r.out).toContain('request: GET /x from "web" to "api"');
    expect(r.out).toContain("split (random per request, by weight):");
    expect(r.out).toMatch(/api\.v1 {2}75%/);
    expect(r.out).toMatch(/cluster api\.v2 \(weight 25%\)\n {2}subset v2: meta version=v2/);
    expect(r.out).toMatch(
      /cluster api\.v1 \(weight 75%\)[\s\S]*?candidates \(1\):\n {4}api-1 {2}127\.0\.0\.1:1001/,
    );
    expect(r.out).toContain('routes: none (no Route "api")');
    expect(r.out).toContain(
      '  routes: no Route "api": every request goes to the split or the default cluster',
    );
  });

  it("routes: each route tried with the one taken and its action; the cluster it names", async () => {
    const r = await explain("--from", "web", "--to", "shop", "--path", "/a", "--header", "x-canary=1");
    expect(r.code).toBe(EXIT.OK);
    expect(r.out).toContain(
      'routes (Route "shop": 2, first match wins):\n  => route[0] "canary" (header x-canary exact "1")\n     forward to shop.v2\n     request timeout 2s (the route\'s)\n',
    );
    expect(r.out).toMatch(/\ncluster shop\.v2\n {2}subset v2: meta version=v2\n/);
    expect(r.out).not.toContain("\ncluster shop.v1");
    expect(r.out).toContain("failover: these clusters have no failover clusters");

    const old = await explain("--from", "web", "--to", "shop", "--path", "/old");
    expect(old.out.split("\n")[0]).toBe(
      'ANSWERED by the calling sidecar: 301 redirect to http://shop/new (route[1] "old" (pathExact /old))',
    );
    expect(old.out).toContain(
      '  were the request to reach "shop": ALLOWED by intention "shop": source "web" allows\n',
    );
    expect(old.out).toContain(
      '   - route[0] "canary" (header x-canary exact "1"): no match\n  => route[1] "old" (pathExact /old)\n     redirect: the calling sidecar answers 301, Location http://shop/new\n',
    );
    expect(old.out).not.toContain("\ncluster ");
  });

  it("failover: the default cluster lists its failover clusters and who serves its traffic now", async () => {
    const r = await explain("--from", "web", "--to", "shop", "--path", "/a");
    expect(r.code).toBe(EXIT.OK);
    expect(r.out).toContain("  no route matched: the split or the default cluster takes the request");
    expect(r.out).toMatch(
      /\ncluster shop\.v1\n[\s\S]*?excluded, critical \(1\):\n {4}shop-1 [\s\S]*?\n {2}failover: shop\.v2\n {2}traffic now served by shop\.v2 \(failover\)\n/,
    );
    expect(r.out).toMatch(/\ncluster shop\.v2 \(failover of shop\.v1\)\n/);
    expect(r.out).toContain(
      "failover: cluster shop.v1 has no healthy instance: its traffic goes to shop.v2 (failover)",
    );
  });

  it("a denied request exits 0 and names the reason", async () => {
    const r = await explain("--from", "stranger", "--to", "api", "--method", "POST");
    expect(r.code).toBe(EXIT.OK);
    expect(r.out.split("\n")[0]).toMatch(
      /^DENIED: intention "api" names neither "stranger" nor "\*".*answers 403\)$/,
    );
  });

  it("--json prints the API response; --header is sent as a header", async () => {
    const r = await explain(
      "--from",
      "web",
      "--to",
      "api",
      "--header",
      "X-Trace=abc",
      "--header",
      "x-trace:def",
      "--json",
    );
    expect(r.code).toBe(EXIT.OK);
    const body = JSON.parse(r.out);
    expect(body.decision).toMatchObject({ allow: true, code: "intention-allow" });
    expect(body.request.headers).toEqual({ "x-trace": "abc, def" });
    expect(body.listener.split.targets).toEqual([
      { cluster: "api.v1", weight: 75 },
      { cluster: "api.v2", weight: 25 },
    ]);
  });

  it("usage errors exit 2: a missing --to, a malformed --header, a bad name refused by the server", async () => {
    const noTo = await explain("--from", "web");
    expect(noTo.code).toBe(EXIT.USAGE);
    expect(noTo.err).toContain("--to");
    const badHeader = await explain("--from", "web", "--to", "api", "--header", "novalue");
    expect(badHeader.code).toBe(EXIT.USAGE);
    expect(badHeader.err).toContain("(WEFT_ERR_USAGE)");
    const badName = await explain("--from", "Web", "--to", "api");
    expect(badName.code).toBe(EXIT.USAGE);
    expect(badName.err).toContain("(WEFT_ERR_BAD_QUERY)");
  });

  it("parseHeaderFlag splits at the first = or :", () => {
    expect(parseHeaderFlag("a=b:c")).toEqual(["a", "b:c"]);
    expect(parseHeaderFlag("a: b=c")).toEqual(["a", "b=c"]);
    expect(() => parseHeaderFlag("=x")).toThrow(/expected name=value/);
  });
});
