import { describe, expect, it } from "vitest";
import type { AuthzPermission, AuthzSource, InboundAuthz, SnapshotHttpMatch } from "../snapshot.js";
import { type AuthzCode, type AuthzDecision, compileAuthz, type HttpRequestFacts } from "./authorizer.js";
import { canonicalPath } from "./canonical-path.js";

const DEST = "api";

function authz(
  sources: AuthzSource[],
  defaultAction: "allow" | "deny" = "deny",
  intention = true,
): InboundAuthz {
  return { defaultAction, intention, sources };
}
const allow = (http: SnapshotHttpMatch): AuthzPermission => ({ action: "allow", http });
const deny = (http: SnapshotHttpMatch): AuthzPermission => ({ action: "deny", http });

/** A request; `target` goes through canonicalPath first, as the listener does. */
function req(method: string, target: string, headers: Record<string, string> = {}): HttpRequestFacts {
  const c = canonicalPath(target);
  if (!c.ok) throw new Error(`test request ${target} refused: ${c.reason}`);
  return { method, path: c.path, headers: (name) => headers[name] };
}

interface HttpCase {
  name: string;
  authz: InboundAuthz;
  source: string;
  req: HttpRequestFacts;
  code: AuthzCode;
}

const ADMIN_ONLY_GET = authz([
  { name: "web", permissions: [allow({ pathPrefix: "/admin", methods: ["GET"] })] },
]);

const HTTP_CASES: HttpCase[] = [
  // exact source vs "*" vs default
  {
    name: "exact source allows",
    authz: authz([{ name: "web", action: "allow" }]),
    source: "web",
    req: req("GET", "/"),
    code: "intention-allow",
  },
  {
    name: "exact source deny beats a '*' allow",
    authz: authz([
      { name: "*", action: "allow" },
      { name: "web", action: "deny" },
    ]),
    source: "web",
    req: req("GET", "/"),
    code: "intention-deny",
  },
  {
    name: "exact source allow beats a '*' deny",
    authz: authz([
      { name: "*", action: "deny" },
      { name: "web", action: "allow" },
    ]),
    source: "web",
    req: req("GET", "/"),
    code: "intention-allow",
  },
  {
    name: "'*' applies to an unlisted source",
    authz: authz([
      { name: "web", action: "allow" },
      { name: "*", action: "deny" },
    ]),
    source: "batch",
    req: req("GET", "/"),
    code: "intention-deny",
  },
  {
    name: "'*' allow overrides a default deny",
    authz: authz([{ name: "*", action: "allow" }], "deny"),
    source: "batch",
    req: req("GET", "/"),
    code: "intention-allow",
  },
  {
    name: "a deny beats a default allow",
    authz: authz([{ name: "web", action: "deny" }], "allow"),
    source: "web",
    req: req("GET", "/"),
    code: "intention-deny",
  },
  {
    name: "unlisted source, no '*': default deny",
    authz: authz([{ name: "web", action: "allow" }], "deny"),
    source: "batch",
    req: req("GET", "/"),
    code: "default-deny",
  },
  {
    name: "unlisted source, no '*': default allow",
    authz: authz([{ name: "web", action: "deny" }], "allow"),
    source: "batch",
    req: req("GET", "/"),
    code: "default-allow",
  },
  {
    name: "no intention at all: default deny",
    authz: authz([], "deny", false),
    source: "web",
    req: req("GET", "/"),
    code: "default-deny",
  },
  {
    name: "source names are exact (no prefix or case folding)",
    authz: authz([{ name: "web", action: "allow" }]),
    source: "web2",
    req: req("GET", "/"),
    code: "default-deny",
  },
  {
    name: "a prototype key is just an unknown source",
    authz: authz([{ name: "web", action: "allow" }]),
    source: "__proto__",
    req: req("GET", "/"),
    code: "default-deny",
  },
  // permissions: first match wins, no match denies
  {
    name: "permissions: first match wins (deny listed before allow)",
    authz: authz([
      {
        name: "web",
        permissions: [deny({ pathPrefix: "/admin" }), allow({ pathPrefix: "/" })],
      },
    ]),
    source: "web",
    req: req("GET", "/admin/users"),
    code: "permission-deny",
  },
  {
    name: "permissions: first match wins (allow listed before deny)",
    authz: authz([
      {
        name: "web",
        permissions: [allow({ pathPrefix: "/" }), deny({ pathPrefix: "/admin" })],
      },
    ]),
    source: "web",
    req: req("GET", "/admin/users"),
    code: "permission-allow",
  },
  {
    name: "permissions: later permission matches when the first does not",
    authz: authz([
      {
        name: "web",
        permissions: [deny({ pathPrefix: "/admin" }), allow({ pathPrefix: "/" })],
      },
    ]),
    source: "web",
    req: req("GET", "/public"),
    code: "permission-allow",
  },
  {
    name: "permissions: no match denies, even under default allow",
    authz: authz([{ name: "web", permissions: [allow({ pathExact: "/health" })] }], "allow"),
    source: "web",
    req: req("GET", "/other"),
    code: "no-permission-matched",
  },
  {
    name: "permissions via '*'",
    authz: authz([{ name: "*", permissions: [allow({ methods: ["GET", "HEAD"] })] }]),
    source: "batch",
    req: req("HEAD", "/x"),
    code: "permission-allow",
  },
  // paths
  {
    name: "pathExact matches",
    authz: authz([{ name: "web", permissions: [allow({ pathExact: "/admin" })] }]),
    source: "web",
    req: req("GET", "/admin"),
    code: "permission-allow",
  },
  {
    name: "pathExact: trailing slash is another path",
    authz: authz([{ name: "web", permissions: [allow({ pathExact: "/admin" })] }]),
    source: "web",
    req: req("GET", "/admin/"),
    code: "no-permission-matched",
  },
  {
    name: "pathExact: matrix params do not match",
    authz: authz([{ name: "web", permissions: [allow({ pathExact: "/admin" })] }]),
    source: "web",
    req: req("GET", "/admin;x"),
    code: "no-permission-matched",
  },
  {
    name: "pathExact ignores the query",
    authz: authz([{ name: "web", permissions: [allow({ pathExact: "/admin" })] }]),
    source: "web",
    req: req("GET", "/admin?x=1"),
    code: "permission-allow",
  },
  {
    name: "pathPrefix /admin matches /admin;x (plain prefix)",
    authz: authz([
      { name: "web", permissions: [deny({ pathPrefix: "/admin" }), allow({ pathPrefix: "/" })] },
    ]),
    source: "web",
    req: req("GET", "/admin;x/secret"),
    code: "permission-deny",
  },
  {
    name: "pathPrefix /admin matches /administrator (plain string prefix, as Consul)",
    authz: authz([
      { name: "web", permissions: [deny({ pathPrefix: "/admin" }), allow({ pathPrefix: "/" })] },
    ]),
    source: "web",
    req: req("GET", "/administrator"),
    code: "permission-deny",
  },
  {
    name: "pathPrefix /admin/ does not match /administrator",
    authz: authz([
      { name: "web", permissions: [deny({ pathPrefix: "/admin/" }), allow({ pathPrefix: "/" })] },
    ]),
    source: "web",
    req: req("GET", "/administrator"),
    code: "permission-allow",
  },
  {
    name: "paths are case-sensitive",
    authz: authz([{ name: "web", permissions: [allow({ pathPrefix: "/admin" })] }]),
    source: "web",
    req: req("GET", "/ADMIN"),
    code: "no-permission-matched",
  },
  {
    name: "deny prefix still applies through //, ./, ../ and %2e%2e",
    authz: authz([
      { name: "web", permissions: [deny({ pathPrefix: "/admin" }), allow({ pathPrefix: "/" })] },
    ]),
    source: "web",
    req: req("GET", "/x/%2E%2E//./admin/users"),
    code: "permission-deny",
  },
  {
    name: "config paths are canonicalised like requests (%7E, //)",
    authz: authz([{ name: "web", permissions: [allow({ pathExact: "/%7euser//home" })] }]),
    source: "web",
    req: req("GET", "/~user/home"),
    code: "permission-allow",
  },
  {
    name: "pathRegex is a full match (no match inside the path)",
    authz: authz([{ name: "web", permissions: [allow({ pathRegex: "/api/v[0-9]+" })] }]),
    source: "web",
    req: req("GET", "/x/api/v1"),
    code: "no-permission-matched",
  },
  {
    name: "pathRegex is a full match (no trailing extra)",
    authz: authz([{ name: "web", permissions: [allow({ pathRegex: "/api/v[0-9]+" })] }]),
    source: "web",
    req: req("GET", "/api/v1/users"),
    code: "no-permission-matched",
  },
  {
    name: "pathRegex alternation is anchored as a whole",
    authz: authz([{ name: "web", permissions: [allow({ pathRegex: "/a|/b" })] }]),
    source: "web",
    req: req("GET", "/a/../b/c"),
    code: "no-permission-matched",
  },
  {
    name: "pathRegex already anchored with ^...$ still matches",
    authz: authz([{ name: "web", permissions: [allow({ pathRegex: "^/api/v[0-9]+$" })] }]),
    source: "web",
    req: req("GET", "/api/v2"),
    code: "permission-allow",
  },
  // methods
  {
    name: "method in list",
    authz: ADMIN_ONLY_GET,
    source: "web",
    req: req("GET", "/admin/x"),
    code: "permission-allow",
  },
  {
    name: "method not in list",
    authz: ADMIN_ONLY_GET,
    source: "web",
    req: req("POST", "/admin/x"),
    code: "no-permission-matched",
  },
  {
    name: "method compared in upper case",
    authz: ADMIN_ONLY_GET,
    source: "web",
    req: req("get", "/admin/x"),
    code: "permission-allow",
  },
  {
    name: "all conditions must hold: right method, wrong path",
    authz: ADMIN_ONLY_GET,
    source: "web",
    req: req("GET", "/public"),
    code: "no-permission-matched",
  },
  // headers
  ...headerCases(),
];

function headerCases(): HttpCase[] {
  const h = (
    header: SnapshotHttpMatch["headers"],
    headers: Record<string, string>,
    code: AuthzCode,
    name: string,
  ): HttpCase => ({
    name: `header: ${name}`,
    authz: authz([{ name: "web", permissions: [allow({ headers: header })] }]),
    source: "web",
    req: req("GET", "/", headers),
    code,
  });
  const env = (m: Partial<NonNullable<SnapshotHttpMatch["headers"]>[number]>) => [
    { name: "x-env", invert: false, ...m },
  ];
  return [
    h(env({ exact: "prod" }), { "x-env": "prod" }, "permission-allow", "exact matches"),
    h(env({ exact: "prod" }), { "x-env": "Prod" }, "no-permission-matched", "exact is case-sensitive"),
    h(env({ exact: "prod" }), {}, "no-permission-matched", "exact on an absent header"),
    h(
      env({ exact: "prod", invert: true }),
      { "x-env": "dev" },
      "permission-allow",
      "inverted exact, other value",
    ),
    h(
      env({ exact: "prod", invert: true }),
      { "x-env": "prod" },
      "no-permission-matched",
      "inverted exact, same",
    ),
    h(
      env({ exact: "prod", invert: true }),
      {},
      "permission-allow",
      "inverted exact matches an absent header",
    ),
    h(env({ prefix: "pr" }), { "x-env": "prod" }, "permission-allow", "prefix"),
    h(env({ prefix: "pr" }), { "x-env": "xprod" }, "no-permission-matched", "prefix is anchored"),
    h(env({ suffix: "od" }), { "x-env": "prod" }, "permission-allow", "suffix"),
    h(env({ suffix: "od" }), { "x-env": "prodx" }, "no-permission-matched", "suffix is anchored"),
    h(env({ regex: "prod|stage" }), { "x-env": "stage" }, "permission-allow", "regex full match"),
    h(
      env({ regex: "prod|stage" }),
      { "x-env": "preprod" },
      "no-permission-matched",
      "regex is anchored at start",
    ),
    h(
      env({ regex: "prod|stage" }),
      { "x-env": "stage-2" },
      "no-permission-matched",
      "regex is anchored at end",
    ),
    h(env({ regex: "p.*" }), { "x-env": "p1,p2" }, "permission-allow", "regex sees joined values"),
    h(env({ present: true }), { "x-env": "" }, "permission-allow", "present with an empty value"),
    h(env({ present: true }), {}, "no-permission-matched", "present, absent"),
    h(env({ present: true, invert: true }), {}, "permission-allow", "inverted present = absent"),
    h(
      env({ present: true, invert: true }),
      { "x-env": "x" },
      "no-permission-matched",
      "inverted present, there",
    ),
    h(
      [
        { name: "x-env", exact: "prod", invert: false },
        { name: "x-team", exact: "ops", invert: false },
      ],
      { "x-env": "prod" },
      "no-permission-matched",
      "all headers must match",
    ),
    h(
      [{ name: "X-Env", exact: "prod", invert: false }],
      { "x-env": "prod" },
      "permission-allow",
      "config header names are lowercased",
    ),
  ];
}

const ALLOW_CODES = new Set<AuthzCode>(["intention-allow", "permission-allow", "default-allow"]);

describe("compileAuthz: http", () => {
  it.each(HTTP_CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const d = compileAuthz(DEST, c.authz).http(c.source, c.req);
    expect(d.code).toBe(c.code);
    expect(d.allow).toBe(ALLOW_CODES.has(c.code));
    expect(Object.isFrozen(d)).toBe(true);
  });
});

describe("compileAuthz: l4 and tcp", () => {
  const az = compileAuthz(
    DEST,
    authz(
      [
        { name: "web", action: "allow" },
        { name: "evil", action: "deny" },
        { name: "admin", permissions: [allow({ pathPrefix: "/admin" })] },
        { name: "*", permissions: [allow({ methods: ["GET"] })] },
      ],
      "allow",
    ),
  );
  const noStar = compileAuthz(DEST, authz([{ name: "web", action: "allow" }], "deny"));

  const cases: [string, ReturnType<typeof compileAuthz>, string, AuthzCode | "per-request", AuthzCode][] = [
    ["action allow", az, "web", "intention-allow", "intention-allow"],
    ["action deny", az, "evil", "intention-deny", "intention-deny"],
    ["permissions source", az, "admin", "per-request", "no-permission-matched"],
    ["'*' permissions source", az, "batch", "per-request", "no-permission-matched"],
    ["default deny", noStar, "batch", "default-deny", "default-deny"],
  ];
  it.each(cases)("%s", (_name, a, source, l4, tcp) => {
    const d = a.l4(source);
    expect(d === "per-request" ? d : d.code).toBe(l4);
    const t = a.tcp(source);
    expect(t.code).toBe(tcp);
    expect(t.allow).toBe(ALLOW_CODES.has(tcp));
  });

  it("a TCP denial of an L7 source says why", () => {
    expect(az.tcp("admin").reason).toBe(
      'intention "api": source "admin" has only L7 (HTTP) permissions, which a TCP connection cannot meet: denied',
    );
  });

  it("l4 agrees with http for wholly allowed or denied sources", () => {
    for (const source of ["web", "evil", "nobody"]) {
      const l4 = noStar.l4(source) as AuthzDecision;
      expect(noStar.http(source, req("POST", "/anything"))).toEqual(l4);
    }
  });
});

describe("compileAuthz: reasons", () => {
  const az = compileAuthz(
    DEST,
    authz([
      { name: "web", action: "allow" },
      { name: "evil", action: "deny" },
      {
        name: "admin",
        permissions: [
          allow({ pathExact: "/health" }),
          deny({ pathPrefix: "/admin", methods: ["GET"] }),
          allow({
            pathRegex: "/v[0-9]+/.*",
            headers: [
              { name: "x-env", exact: "prod", invert: false },
              { name: "x-debug", present: true, invert: true },
            ],
          }),
        ],
      },
    ]),
  );

  const cases: [string, string, HttpRequestFacts, string][] = [
    ["action allow", "web", req("GET", "/"), 'intention "api": source "web" allows'],
    ["action deny", "evil", req("GET", "/"), 'intention "api": source "evil" denies'],
    [
      "permission allow",
      "admin",
      req("GET", "/health"),
      'intention "api": source "admin" permission[0] (pathExact /health) allows',
    ],
    [
      "permission deny",
      "admin",
      req("GET", "/admin/x"),
      'intention "api": source "admin" permission[1] (pathPrefix /admin, methods GET) denies',
    ],
    [
      "permission with headers",
      "admin",
      req("PUT", "/v1/x", { "x-env": "prod" }),
      'intention "api": source "admin" permission[2] (pathRegex /v[0-9]+/.*, header x-env exact "prod", ' +
        "header x-debug !present) allows",
    ],
    [
      "no permission matched",
      "admin",
      req("POST", "/x"),
      'intention "api": source "admin": no permission matches POST /x',
    ],
    [
      "default with an intention",
      "batch",
      req("GET", "/"),
      'intention "api" names neither "batch" nor "*" (default policy deny)',
    ],
  ];
  it.each(cases)("%s", (_name, source, r, reason) => {
    expect(az.http(source, r).reason).toBe(reason);
  });

  it("default without an intention, deny and allow", () => {
    expect(compileAuthz(DEST, authz([], "deny", false)).http("web", req("GET", "/")).reason).toBe(
      'no intention allows "web" to call "api" (default policy deny)',
    );
    expect(compileAuthz(DEST, authz([], "allow", false)).l4("web")).toEqual({
      allow: true,
      code: "default-allow",
      reason: 'no intention denies "web" calling "api" (default policy allow)',
    });
  });

  it("clips a long path quoted in a no-match reason", () => {
    const long = "/" + "a".repeat(5000);
    const reason = az.http("admin", req("POST", long)).reason;
    expect(reason.length).toBeLessThan(400);
    expect(reason.endsWith("...")).toBe(true);
  });

  it("returns the same precomputed decision object for a matched rule (no allocation per request)", () => {
    expect(az.http("admin", req("GET", "/health"))).toBe(az.http("admin", req("GET", "/health")));
    expect(az.http("web", req("GET", "/"))).toBe(az.l4("web"));
  });
});

describe("compileAuthz: compile-time behaviour", () => {
  it("is immutable and unaffected by later changes to its input", () => {
    const input = authz([{ name: "web", permissions: [allow({ pathPrefix: "/a" })] }]);
    const az = compileAuthz(DEST, input);
    expect(Object.isFrozen(az)).toBe(true);
    (input.sources[0] as AuthzSource).permissions = [allow({ pathPrefix: "/" })];
    input.sources.push({ name: "evil", action: "allow" });
    input.defaultAction = "allow";
    expect(az.http("web", req("GET", "/b")).code).toBe("no-permission-matched");
    expect(az.http("evil", req("GET", "/a")).code).toBe("default-deny");
  });

  it("the first of duplicate source names counts", () => {
    const az = compileAuthz(
      DEST,
      authz([
        { name: "web", action: "deny" },
        { name: "web", action: "allow" },
      ]),
    );
    expect(az.l4("web")).toMatchObject({ code: "intention-deny" });
  });

  it("throws on a regex that does not compile (the snapshot check refuses those first)", () => {
    expect(() =>
      compileAuthz(DEST, authz([{ name: "web", permissions: [allow({ pathRegex: "(" })] }])),
    ).toThrow(SyntaxError);
  });

  it("a permission with no condition matches every request", () => {
    const az = compileAuthz(DEST, authz([{ name: "web", permissions: [deny({})] }], "allow"));
    const d = az.http("web", req("GET", "/anything"));
    expect(d.code).toBe("permission-deny");
    expect(d.reason).toContain("(any request)");
  });
});

describe("normalization bypasses (HARDENING.md) against a deny on /admin", () => {
  const az = compileAuthz(
    DEST,
    authz(
      [{ name: "web", permissions: [deny({ pathPrefix: "/admin" }), allow({ pathPrefix: "/" })] }],
      "allow",
    ),
  );
  const ATTEMPTS = [
    "/admin",
    "//admin",
    "///admin/x",
    "/x/../admin",
    "/x/./../admin",
    "/%2e%2e/admin",
    "/x/%2E%2E/admin",
    "/x/.%2e/admin",
    "/%2e/admin",
    "/%61dmin",
    "/%61%64%6d%69%6e/",
    "/admin%2Fx",
    "/x%2F..%2Fadmin",
    "/x%5C..%5Cadmin",
    "/x\\..\\admin",
    "/admin#frag",
    "/admin;params",
    "/x/..;/admin",
    "/admin%00",
    "/admin%00.png",
    "/./admin",
    "/admin/.",
    "/admin?x=../public",
    "/public/../admin?x",
    "http://api/admin",
  ];
  it(`${ATTEMPTS.length} hostile paths: 0 bypasses (each refused with 400 or denied)`, () => {
    const outcomes = ATTEMPTS.map((target) => {
      const c = canonicalPath(target);
      if (!c.ok) return "refused";
      const d = az.http("web", { method: "GET", path: c.path, headers: () => undefined });
      return d.allow ? `ALLOWED as ${c.path}` : "denied";
    });
    const bypasses = ATTEMPTS.filter((_, i) => outcomes[i]?.startsWith("ALLOWED"));
    expect(bypasses).toEqual([]);
  });

  it("a fragment is dropped before authorizing, so what is forwarded is what was allowed", () => {
    const c = canonicalPath("/public#/../admin");
    expect(c).toEqual({ ok: true, path: "/public", query: "" });
  });

  it("case is not folded: /ADMIN is another resource (paths are case-sensitive)", () => {
    expect(az.http("web", req("GET", "/ADMIN")).allow).toBe(true);
  });
});
