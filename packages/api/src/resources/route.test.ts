import { type InvalidCase, runTable, type ValidCase } from "./table.suite.js";

const base = { kind: "Route", name: "api" };

const valid: ValidCase[] = [
  {
    name: "a prefix route to a subset, filled with the route's service",
    input: { ...base, routes: [{ match: { pathPrefix: "/v2" }, destination: { subset: "v2" } }] },
    expected: {
      ...base,
      routes: [{ match: { pathPrefix: "/v2" }, destination: { subset: "v2", service: "api" } }],
    },
  },
  {
    name: "a route with no match and no action forwards to the service",
    input: { ...base, routes: [{}] },
    expected: { ...base, routes: [{ match: {}, destination: { service: "api" } }] },
  },
  {
    name: "every match and destination option",
    input: {
      ...base,
      routes: [
        {
          name: "admin-writes",
          match: {
            pathRegex: "^/admin/[0-9]+$",
            methods: ["put"],
            headers: [{ name: "x-tenant", exact: "a" }],
            query: [
              { name: "debug", present: true },
              { name: "v", regex: "^[0-9]$" },
            ],
          },
          destination: {
            service: "admin",
            subset: "blue",
            rewrite: { prefix: "/", host: "admin.internal" },
            timeout: "3s",
            idleTimeout: "30s",
            retries: { numRetries: 1, retryOn: ["retriable-status-codes"], retryOnStatusCodes: [503] },
            fault: { delay: { percent: 10, duration: "100ms" }, abort: { percent: 5, httpStatus: 503 } },
            mirror: { service: "shadow", percent: 10 },
            requestHeaders: { add: { "x-a": "1" }, set: { "x-b": "2" }, remove: ["x-c"] },
            responseHeaders: { set: { "cache-control": "no-store" } },
          },
        },
      ],
    },
    expected: {
      ...base,
      routes: [
        {
          name: "admin-writes",
          match: {
            pathRegex: "^/admin/[0-9]+$",
            methods: ["PUT"],
            headers: [{ name: "x-tenant", exact: "a", invert: false }],
            query: [
              { name: "debug", present: true },
              { name: "v", regex: "^[0-9]$" },
            ],
          },
          destination: {
            service: "admin",
            subset: "blue",
            rewrite: { prefix: "/", host: "admin.internal" },
            timeout: 3000,
            idleTimeout: 30_000,
            retries: {
              numRetries: 1,
              retryOn: ["retriable-status-codes"],
              retryOnStatusCodes: [503],
              backoff: { baseInterval: 25, maxInterval: 250 },
              budget: { percent: 20, minRetriesPerSecond: 10 },
              retryNonIdempotent: false,
            },
            fault: { delay: { percent: 10, duration: 100 }, abort: { percent: 5, httpStatus: 503 } },
            mirror: { service: "shadow", percent: 10 },
            requestHeaders: { add: { "x-a": "1" }, set: { "x-b": "2" }, remove: ["x-c"] },
            responseHeaders: { set: { "cache-control": "no-store" } },
          },
        },
      ],
    },
  },
  {
    name: "a redirect and a direct response",
    input: {
      ...base,
      routes: [
        { match: { pathExact: "/old" }, redirect: { path: "/new", statusCode: 301 } },
        { match: { pathPrefix: "/teapot" }, directResponse: { status: 418, body: "short and stout" } },
        { match: { pathPrefix: "/s" }, redirect: { scheme: "https" } },
      ],
    },
    expected: {
      ...base,
      routes: [
        { match: { pathExact: "/old" }, redirect: { path: "/new", statusCode: 301 } },
        { match: { pathPrefix: "/teapot" }, directResponse: { status: 418, body: "short and stout" } },
        { match: { pathPrefix: "/s" }, redirect: { scheme: "https", statusCode: 302 } },
      ],
    },
  },
  {
    name: "a gRPC abort fault",
    input: { ...base, routes: [{ destination: { fault: { abort: { percent: 100, grpcStatus: 14 } } } }] },
    match: { routes: [{ destination: { fault: { abort: { percent: 100, grpcStatus: 14 } } } }] },
  },
];

const r = (route: unknown) => ({ ...base, routes: [route] });

const invalid: InvalidCase[] = [
  {
    name: "unknown top-level field",
    input: { ...base, routes: [{}], http: [] },
    path: ["http"],
    message: 'unknown field "http"',
  },
  {
    name: "unknown nested field",
    input: r({ match: { path: "/x" } }),
    path: ["routes", 0, "match", "path"],
    message: 'unknown field "path"',
  },
  { name: "no routes", input: { ...base, routes: [] }, path: ["routes"], message: "at least 1" },
  {
    name: "two path matches",
    input: r({ match: { pathExact: "/a", pathRegex: "^/a$" } }),
    path: ["routes", 0, "match", "pathRegex"],
    message: "cannot be combined",
  },
  {
    name: "path without slash",
    input: r({ match: { pathPrefix: "api" } }),
    path: ["routes", 0, "match", "pathPrefix"],
    message: 'starting with "/"',
  },
  {
    name: "costly regex (nested quantifier)",
    input: r({ match: { pathRegex: "^/(a|a)*$" } }),
    path: ["routes", 0, "match", "pathRegex"],
    message: "exponential",
  },
  {
    name: "regex with a backreference",
    input: r({ match: { headers: [{ name: "x", regex: "(a)\\1" }] } }),
    path: ["routes", 0, "match", "headers", 0, "regex"],
    message: "backreferences",
  },
  {
    name: "regex that does not compile",
    input: r({ match: { query: [{ name: "q", regex: "([" }] } }),
    path: ["routes", 0, "match", "query", 0, "regex"],
    message: "invalid regular expression",
  },
  {
    name: "destination and redirect",
    input: r({ destination: {}, redirect: { path: "/x" } }),
    path: ["routes", 0, "redirect"],
    message: "cannot be combined",
  },
  {
    name: "bad timeout",
    input: r({ destination: { timeout: "soon" } }),
    path: ["routes", 0, "destination", "timeout"],
    message: "invalid duration",
  },
  {
    name: "retries above the cap",
    input: r({ destination: { retries: { numRetries: 50 } } }),
    path: ["routes", 0, "destination", "retries", "numRetries"],
    message: "<= 10",
  },
  {
    name: "fault with neither delay nor abort",
    input: r({ destination: { fault: {} } }),
    path: ["routes", 0, "destination", "fault"],
    message: "delay or abort",
  },
  {
    name: "abort with both statuses",
    input: r({ destination: { fault: { abort: { percent: 1, httpStatus: 503, grpcStatus: 14 } } } }),
    path: ["routes", 0, "destination", "fault", "abort", "grpcStatus"],
    message: "cannot be combined",
  },
  {
    name: "fault percent above 100",
    input: r({ destination: { fault: { delay: { percent: 101, duration: "1s" } } } }),
    path: ["routes", 0, "destination", "fault", "delay", "percent"],
    message: "<= 100",
  },
  {
    name: "empty rewrite",
    input: r({ destination: { rewrite: {} } }),
    path: ["routes", 0, "destination", "rewrite"],
    message: "prefix or host",
  },
  {
    name: "redirect with a bad status",
    input: r({ redirect: { path: "/x", statusCode: 200 } }),
    path: ["routes", 0, "redirect", "statusCode"],
    message: "301, 302",
  },
  {
    name: "empty redirect",
    input: r({ redirect: {} }),
    path: ["routes", 0, "redirect"],
    message: "at least one of",
  },
  {
    name: "direct response with a bad status",
    input: r({ directResponse: { status: 99 } }),
    path: ["routes", 0, "directResponse", "status"],
    message: ">= 200",
  },
  {
    name: "header op with a bad name",
    input: r({ destination: { requestHeaders: { set: { "bad header": "x" } } } }),
    path: ["routes", 0, "destination", "requestHeaders", "set", "bad header"],
    message: "HTTP header name",
  },
  {
    name: "mirror to a bad service",
    input: r({ destination: { mirror: { service: "Shadow" } } }),
    path: ["routes", 0, "destination", "mirror", "service"],
    message: "lowercase DNS label",
  },
  {
    name: "bad method",
    input: r({ match: { methods: ["GET /"] } }),
    path: ["routes", 0, "match", "methods", 0],
    message: "HTTP method",
  },
];

runTable("Route", valid, invalid);
