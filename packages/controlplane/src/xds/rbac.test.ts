/**
 * The RBAC a proxyless server enforces decides as the sidecar's authorizer
 * does: random Intentions (named sources, "*", duplicates, actions and
 * ordered L7 permissions on paths, methods and headers), default policies,
 * callers and requests; the compiled RBAC goes through the wire and is
 * evaluated by @grpc/grpc-js-xds's own RBAC filter parser and evaluator
 * (node_modules, the code an XdsServer runs), the same Intention by
 * compileAuthz (api/authz/authorizer.ts); the two must agree every time.
 */
import {
  type AuthzPermission,
  type AuthzSource,
  compileAuthz,
  type InboundAuthz,
  type ProxySnapshot,
  SERVER_LISTENER_TEMPLATE,
  type SnapshotHeaderMatch,
  type SnapshotHttpMatch,
} from "@weft/api";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeContext,
  decodeServerListener,
  type GrpcRbacInfo,
  newMetadata,
} from "./grpc-xds-check.suite.js";
import { compileRbac, sourcePrincipal } from "./rbac.js";
import { serverListener } from "./translate-server.js";

const TD = "weft.local";
const SERVICES = ["web", "api", "admin", "batch"];
const HEADER_NAMES = ["x-env", "x-user"];
const PATHS = ["/", "/admin", "/admin/x", "/administrator", "/v1/items", "/pkg.Svc/Get", "/a/~b", "/a/~b/c"];
const CONFIG_PATHS = ["/admin", "/v1/", "/pkg.Svc/", "/pkg.Svc/Get", "/a/%7Eb", "/a/./b/../%7eb", "/"];
const PATH_REGEXES = ["/admin.*", "/v1/[a-z]+", "/a|/b", ".*Get", "^/admin$", "/pkg\\.Svc/(Get|Put)"];
const VALUE_REGEXES = ["prod|dev", "[0-9]+", "p.*", ""];
const VALUES = ["prod", "dev", "1", "", "production"];
const METHODS = ["GET", "POST", "PUT"];

const header: fc.Arbitrary<SnapshotHeaderMatch> = fc
  .tuple(
    fc.constantFrom(...HEADER_NAMES),
    fc.oneof(
      fc.record({ exact: fc.constantFrom(...VALUES) }),
      fc.record({ prefix: fc.constantFrom("p", "d", "prod", "1") }),
      fc.record({ suffix: fc.constantFrom("d", "v", "tion") }),
      fc.record({ regex: fc.constantFrom(...VALUE_REGEXES) }),
      fc.constant({ present: true as const }),
    ),
    fc.boolean(),
  )
  .map(([name, kind, invert]) => ({ name, ...kind, invert }));

/** Small matches (0-2 conditions) over small pools, so that rules overlap and requests often match. */
const condition: fc.Arbitrary<SnapshotHttpMatch> = fc.oneof(
  fc.record({ pathExact: fc.constantFrom(...CONFIG_PATHS) }),
  fc.record({ pathPrefix: fc.constantFrom(...CONFIG_PATHS) }),
  fc.record({ pathRegex: fc.constantFrom(...PATH_REGEXES) }),
  fc.record({ methods: fc.uniqueArray(fc.constantFrom(...METHODS), { minLength: 1, maxLength: 2 }) }),
  fc.record({ headers: fc.array(header, { minLength: 1, maxLength: 2 }) }),
);
const httpMatch: fc.Arbitrary<SnapshotHttpMatch> = fc
  .array(condition, { maxLength: 2 })
  .map((cs) => Object.assign({}, ...cs) as SnapshotHttpMatch);

const permission: fc.Arbitrary<AuthzPermission> = fc.record({
  action: fc.constantFrom("allow" as const, "deny" as const),
  http: httpMatch,
});

const source: fc.Arbitrary<AuthzSource> = fc.oneof(
  fc.record({
    name: fc.constantFrom(...SERVICES, "*"),
    action: fc.constantFrom("allow" as const, "deny" as const),
  }),
  fc.record({
    name: fc.constantFrom(...SERVICES, "*"),
    permissions: fc.array(permission, { minLength: 1, maxLength: 4 }),
  }),
);

const authzArb: fc.Arbitrary<InboundAuthz> = fc.record({
  defaultAction: fc.constantFrom("allow" as const, "deny" as const),
  intention: fc.boolean(),
  sources: fc.array(source, { maxLength: 5 }),
});

type Peer = { kind: "svc"; name: string; ns: string } | { kind: "foreign"; name: string } | { kind: "none" };

const peerArb: fc.Arbitrary<Peer> = fc.oneof(
  fc.record({
    kind: fc.constant("svc" as const),
    name: fc.constantFrom(...SERVICES, "other"),
    ns: fc.constantFrom("default", "team"),
  }),
  fc.record({ kind: fc.constant("foreign" as const), name: fc.constantFrom(...SERVICES) }),
  fc.constant({ kind: "none" as const }),
);

interface Req {
  method: string;
  path: string;
  headers: Record<string, string[]>;
}

const reqArb: fc.Arbitrary<Req> = fc.record({
  method: fc.constantFrom(...METHODS),
  path: fc.constantFrom(...PATHS),
  headers: fc.record(
    Object.fromEntries(
      HEADER_NAMES.map((h) => [h, fc.array(fc.constantFrom(...VALUES), { minLength: 1, maxLength: 2 })]),
    ),
    { requiredKeys: [] },
  ) as fc.Arbitrary<Record<string, string[]>>,
});

/** What grpc-js-xds's RBAC filter hands its evaluator for this call (rbac-filter.js). */
function grpcInfo(req: Req, peer: Peer): GrpcRbacInfo {
  const md = newMetadata();
  for (const [k, vs] of Object.entries(req.headers)) for (const v of vs) md.add(k, v);
  md.set(":method", req.method);
  md.set(":authority", "api.test");
  md.set(":path", req.path);
  const san =
    peer.kind === "svc"
      ? `URI:spiffe://${TD}/ns/${peer.ns}/svc/${peer.name}`
      : peer.kind === "foreign"
        ? `URI:spiffe://other.example/ns/default/svc/${peer.name}`
        : undefined;
  return {
    headers: md,
    urlPath: req.path,
    tls: san !== undefined,
    peerCertificate: san === undefined ? null : { subjectaltname: san, subject: { CN: "workload" } },
  };
}

/** The sidecar's verdict: a peer it would not accept (no or a foreign identity) never reaches the authorizer. */
function sidecarAllows(authz: InboundAuthz, req: Req, peer: Peer, mtls: boolean): boolean {
  const a = compileAuthz("api", authz);
  const facts = {
    method: req.method,
    path: req.path,
    headers: (n: string) => req.headers[n]?.join(","),
  };
  if (!mtls) return a.http("", facts).allow; // nobody is named on a plaintext server
  if (peer.kind !== "svc") return false;
  return a.http(peer.name, facts).allow;
}

function snapshotWith(authz: InboundAuthz): ProxySnapshot {
  return {
    proxy: {
      service: "api",
      instanceId: "api-1",
      datacenter: "dc1",
      spiffeId: `spiffe://${TD}/ns/default/svc/api`,
    },
    mesh: { trustDomain: TD, defaultPolicy: authz.defaultAction },
    inbound: { protocol: "grpc", authz },
  } as unknown as ProxySnapshot;
}

const NAME = SERVER_LISTENER_TEMPLATE.replace("%s", "127.0.0.1:50051");

describe("compiled RBAC decides as the sidecar's authorizer (grpc-js-xds's own evaluator)", () => {
  it.each([
    { mtls: true, runs: 600 },
    { mtls: false, runs: 200 },
  ])("mtls=$mtls", ({ mtls, runs }) => {
    fc.assert(
      fc.property(
        authzArb,
        fc.array(fc.tuple(reqArb, mtls ? peerArb : fc.constant<Peer>({ kind: "none" })), {
          minLength: 1,
          maxLength: 8,
        }),
        (authz, calls) => {
          const listener = serverListener(
            NAME,
            { host: "127.0.0.1", port: 50051 },
            snapshotWith(authz),
            mtls ? { certificateProvider: "weft" } : {},
          );
          const d = decodeServerListener(listener, decodeContext(mtls ? ["weft"] : []));
          expect(d.error).toBeUndefined();
          const rbac = d.rbac;
          if (!rbac) throw new Error("grpc-js-xds did not parse the RBAC filter");
          for (const [req, peer] of calls) {
            expect(rbac.apply(grpcInfo(req, peer)), JSON.stringify({ req, peer })).toBe(
              sidecarAllows(authz, req, peer, mtls),
            );
          }
        },
      ),
      { numRuns: runs },
    );
  });

  it('would catch a wrong precedence (an exact name must win over "*")', () => {
    // The property above fails if named sources do not shadow "*": checked on one case by hand.
    const authz: InboundAuthz = {
      defaultAction: "allow",
      intention: true,
      sources: [
        { name: "*", action: "allow" },
        { name: "web", action: "deny" },
      ],
    };
    const d = decodeServerListener(
      serverListener(NAME, { host: "127.0.0.1", port: 50051 }, snapshotWith(authz), {
        certificateProvider: "weft",
      }),
      decodeContext(["weft"]),
    );
    const call = (name: string) =>
      d.rbac?.apply(
        grpcInfo({ method: "POST", path: "/pkg.Svc/Get", headers: {} }, { kind: "svc", name, ns: "default" }),
      );
    expect(call("web")).toBe(false);
    expect(call("api")).toBe(true);
  });
});

describe("compileRbac", () => {
  it("compiles default deny without an Intention to no policy at all (ALLOW with none denies everything)", () => {
    expect(
      compileRbac({ defaultAction: "deny", intention: false, sources: [] }, { trustDomain: TD, mtls: true }),
    ).toEqual({
      action: "ALLOW",
      policies: {},
    });
  });

  it("names a source by its service in any namespace of the trust domain, escaped", () => {
    const p = sourcePrincipal("prod.example.com", "web") as {
      authenticated: { principal_name: { safe_regex: { regex: string } } };
    };
    const re = new RegExp(`^${p.authenticated.principal_name.safe_regex.regex}$`);
    expect(re.test("spiffe://prod.example.com/ns/default/svc/web")).toBe(true);
    expect(re.test("spiffe://prod.example.com/ns/team/svc/web")).toBe(true);
    expect(re.test("spiffe://prodXexample.com/ns/default/svc/web")).toBe(false);
    expect(re.test("spiffe://prod.example.com/ns/default/svc/web2")).toBe(false);
    expect(re.test("spiffe://prod.example.com/ns/a/b/svc/web")).toBe(false);
  });
});
