import { type InvalidCase, runTable, type ValidCase } from "./table.suite.js";

const base = { kind: "Gateway", name: "edge", type: "ingress" };
const limits = {
  maxRequestBodyBytes: 1_048_576,
  maxHeaderBytes: 16_384,
  maxHeaders: 100,
  headersTimeout: 10_000,
  requestTimeout: 30_000,
  idleTimeout: 60_000,
  maxConnections: 10_000,
};
const jwtProvider = {
  name: "auth0",
  issuer: "https://issuer.example/",
  audiences: ["api"],
  jwks: { url: "https://issuer.example/.well-known/jwks.json" },
  algorithms: ["RS256", "ES256"],
};

const valid: ValidCase[] = [
  {
    name: "the PRODUCT.md ingress",
    input: {
      ...base,
      listeners: [{ port: 8080, protocol: "http", routes: [{ host: "*", pathPrefix: "/", service: "web" }] }],
    },
    expected: {
      ...base,
      listeners: [
        {
          port: 8080,
          address: "0.0.0.0",
          protocol: "http",
          routes: [{ host: "*", pathPrefix: "/", service: "web" }],
          limits,
        },
      ],
      trustedHops: 0,
    },
  },
  {
    name: "https with SNI, JWT, CORS, rate limits and trusted hops",
    input: {
      ...base,
      trustedHops: 1,
      jwtProviders: [
        { ...jwtProvider, claimToHeaders: [{ claim: "sub", header: "X-User" }] },
        { ...jwtProvider, name: "local", jwks: { file: "./jwks.json", cacheDuration: "1m" } },
      ],
      listeners: [
        {
          port: 8443,
          protocol: "https",
          tls: {
            certFile: "certs/default.pem",
            keyFile: "certs/default-key.pem",
            sni: [{ hosts: ["Shop.Example.com"], certFile: "certs/shop.pem", keyFile: "certs/shop-key.pem" }],
          },
          jwt: { providers: ["auth0", "local"] },
          cors: { allowOrigins: ["https://shop.example.com"], allowCredentials: true, maxAge: "10m" },
          rateLimit: { requestsPerSecond: 50, perClient: true },
          limits: { maxHeaderBytes: 8192, headersTimeout: "5s" },
          routes: [
            { host: "shop.example.com", pathPrefix: "/api", service: "api", subset: "v2", timeout: "10s" },
            { host: "*.example.com", service: "web", jwt: { providers: ["local"], optional: true } },
          ],
        },
      ],
    },
    expected: {
      ...base,
      trustedHops: 1,
      jwtProviders: [
        {
          ...jwtProvider,
          jwks: { url: "https://issuer.example/.well-known/jwks.json", cacheDuration: 300_000 },
          clockSkew: 30_000,
          claimToHeaders: [{ claim: "sub", header: "x-user" }],
          forwardToken: false,
        },
        {
          ...jwtProvider,
          name: "local",
          jwks: { file: "./jwks.json", cacheDuration: 60_000 },
          clockSkew: 30_000,
          claimToHeaders: [],
          forwardToken: false,
        },
      ],
      listeners: [
        {
          port: 8443,
          address: "0.0.0.0",
          protocol: "https",
          tls: {
            certFile: "certs/default.pem",
            keyFile: "certs/default-key.pem",
            sni: [{ hosts: ["shop.example.com"], certFile: "certs/shop.pem", keyFile: "certs/shop-key.pem" }],
            minVersion: "TLSv1.2",
          },
          jwt: { providers: ["auth0", "local"], optional: false },
          cors: {
            allowOrigins: ["https://shop.example.com"],
            allowMethods: ["GET", "HEAD", "POST"],
            allowHeaders: [],
            exposeHeaders: [],
            maxAge: 600_000,
            allowCredentials: true,
          },
          rateLimit: { requestsPerSecond: 50, burst: 50, perClient: true },
          limits: { ...limits, maxHeaderBytes: 8192, headersTimeout: 5000 },
          routes: [
            { host: "shop.example.com", pathPrefix: "/api", service: "api", subset: "v2", timeout: 10_000 },
            { host: "*.example.com", service: "web", jwt: { providers: ["local"], optional: true } },
          ],
        },
      ],
    },
  },
  {
    name: "a terminating gateway with TLS origination",
    input: {
      kind: "Gateway",
      name: "egress",
      type: "terminating",
      services: [
        { name: "payments", host: "api.payments.example", port: 443, tls: { sni: "api.payments.example" } },
        { name: "legacy", host: "10.0.0.7", port: 8080 },
      ],
    },
    expected: {
      kind: "Gateway",
      name: "egress",
      type: "terminating",
      listeners: [],
      trustedHops: 0,
      services: [
        {
          name: "payments",
          host: "api.payments.example",
          port: 443,
          tls: { sni: "api.payments.example" },
          connectTimeout: 5000,
        },
        { name: "legacy", host: "10.0.0.7", port: 8080, connectTimeout: 5000 },
      ],
    },
  },
  {
    name: "a mesh gateway",
    input: { kind: "Gateway", name: "dc1-mesh", type: "mesh", listeners: [{ port: 8443, protocol: "tcp" }] },
    match: { type: "mesh", listeners: [{ port: 8443, protocol: "tcp", routes: [] }] },
  },
];

const listener = (l: Record<string, unknown>) => ({
  ...base,
  listeners: [{ port: 8080, routes: [{ service: "web" }], ...l }],
});

const invalid: InvalidCase[] = [
  {
    name: "unknown top-level field",
    input: { ...listener({}), tls: {} },
    path: ["tls"],
    message: 'unknown field "tls"',
  },
  {
    name: "unknown nested field",
    input: listener({ routes: [{ service: "web", prefix: "/" }] }),
    path: ["listeners", 0, "routes", 0, "prefix"],
    message: 'unknown field "prefix"',
  },
  { name: "unknown type", input: { ...base, type: "egress" }, path: ["type"], message: '"terminating"' },
  { name: "missing type", input: { kind: "Gateway", name: "edge" }, path: ["type"], message: "required" },
  {
    name: "bad port",
    input: listener({ port: "8080" }),
    path: ["listeners", 0, "port"],
    message: "expected a number, got string",
  },
  {
    name: "port out of range",
    input: listener({ port: 0 }),
    path: ["listeners", 0, "port"],
    message: ">= 1",
  },
  {
    name: "duplicate listener ports",
    input: {
      ...base,
      listeners: [
        { port: 8080, routes: [{ service: "a" }] },
        { port: 8080, routes: [{ service: "b" }] },
      ],
    },
    path: ["listeners", 1, "port"],
    message: "already used by listeners[0]",
  },
  {
    name: "https without tls",
    input: listener({ protocol: "https" }),
    path: ["listeners", 0, "tls"],
    message: "needs tls",
  },
  {
    name: "tls on http",
    input: listener({ tls: { certFile: "a", keyFile: "b" } }),
    path: ["listeners", 0, "tls"],
    message: 'needs protocol "https"',
  },
  {
    name: "tls without a key",
    input: listener({ protocol: "https", tls: { certFile: "a" } }),
    path: ["listeners", 0, "tls", "keyFile"],
    message: "required",
  },
  { name: "ingress without listeners", input: base, path: ["listeners"], message: "needs listeners" },
  {
    name: "listener without routes",
    input: listener({ routes: [] }),
    path: ["listeners", 0, "routes"],
    message: "needs routes",
  },
  {
    name: "bad host pattern",
    input: listener({ routes: [{ host: "shop.*", service: "web" }] }),
    path: ["listeners", 0, "routes", 0, "host"],
    message: "host name",
  },
  {
    name: "unknown jwt provider",
    input: listener({ jwt: { providers: ["nope"] } }),
    path: ["listeners", 0, "jwt", "providers", 0],
    message: 'no jwtProviders entry named "nope"',
  },
  {
    name: "jwt algorithm none",
    input: { ...listener({}), jwtProviders: [{ ...jwtProvider, algorithms: ["none"] }] },
    path: ["jwtProviders", 0, "algorithms", 0],
    message: '"RS256"',
  },
  {
    name: "jwt HMAC algorithm",
    input: { ...listener({}), jwtProviders: [{ ...jwtProvider, algorithms: ["HS256"] }] },
    path: ["jwtProviders", 0, "algorithms", 0],
    message: "expected one of",
  },
  {
    name: "jwks with url and file",
    input: {
      ...listener({}),
      jwtProviders: [{ ...jwtProvider, jwks: { url: "https://x/jwks", file: "j.json" } }],
    },
    path: ["jwtProviders", 0, "jwks", "file"],
    message: "cannot be combined",
  },
  {
    name: "cors credentials with any origin",
    input: listener({ cors: { allowOrigins: ["*"], allowCredentials: true } }),
    path: ["listeners", 0, "cors", "allowCredentials"],
    message: 'origin "*"',
  },
  {
    name: "too many trusted hops",
    input: { ...listener({}), trustedHops: 11 },
    path: ["trustedHops"],
    message: "<= 10",
  },
  {
    name: "terminating without services",
    input: { kind: "Gateway", name: "egress", type: "terminating" },
    path: ["services"],
    message: "needs services",
  },
  {
    name: "external service with a bad host",
    input: {
      kind: "Gateway",
      name: "egress",
      type: "terminating",
      services: [{ name: "p", host: "http://x", port: 443 }],
    },
    path: ["services", 0, "host"],
    message: "host name or an IP",
  },
  {
    name: "mesh gateway with an http listener",
    input: { kind: "Gateway", name: "m", type: "mesh", listeners: [{ port: 8443 }] },
    path: ["listeners", 0, "protocol"],
    message: 'must be "tcp"',
  },
  {
    name: "services on an ingress",
    input: { ...listener({}), services: [{ name: "p", host: "x", port: 1 }] },
    path: ["services"],
    message: "terminating gateways",
  },
];

runTable("Gateway", valid, invalid);
