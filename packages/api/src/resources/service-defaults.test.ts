import { type InvalidCase, runTable, type ValidCase } from "./table.suite.js";

const base = { kind: "ServiceDefaults", name: "api" };

const valid: ValidCase[] = [
  {
    name: "the minimal defaults",
    input: base,
    expected: {
      ...base,
      loadBalancer: { policy: "round_robin" },
      timeouts: { connect: 5000, idle: 3_600_000 },
    },
  },
  {
    name: "everything set",
    input: {
      ...base,
      protocol: "http",
      loadBalancer: { policy: "ring_hash", hashOn: [{ header: "X-User" }, { sourceIp: true }] },
      timeouts: { connect: "1s", request: "15s", idle: "5m" },
      circuitBreaker: { maxConnections: 100, maxRequests: 50 },
      outlierDetection: { consecutive5xx: 3, baseEjectionTime: "10s" },
      rateLimit: { requestsPerSecond: 100, routes: [{ pathPrefix: "/search", requestsPerSecond: 2.5 }] },
      retries: {
        numRetries: 3,
        retryOn: ["5xx", "unavailable"],
        perTryTimeout: "2s",
        budget: { percent: 10 },
      },
      accessLogs: { sampling: 0.1 },
      maxRequestBodyBytes: 1024,
    },
    expected: {
      ...base,
      protocol: "http",
      loadBalancer: { policy: "ring_hash", hashOn: [{ header: "x-user" }, { sourceIp: true }] },
      timeouts: { connect: 1000, request: 15_000, idle: 300_000 },
      circuitBreaker: { maxConnections: 100, maxPendingRequests: 1024, maxRequests: 50, maxRetries: 1024 },
      outlierDetection: {
        consecutive5xx: 3,
        consecutiveGatewayErrors: 5,
        interval: 10_000,
        baseEjectionTime: 10_000,
        maxEjectionTime: 300_000,
        maxEjectionPercent: 10,
      },
      rateLimit: {
        requestsPerSecond: 100,
        burst: 100,
        routes: [{ pathPrefix: "/search", requestsPerSecond: 2.5, burst: 3 }],
      },
      retries: {
        numRetries: 3,
        retryOn: ["5xx", "unavailable"],
        perTryTimeout: 2000,
        backoff: { baseInterval: 25, maxInterval: 250 },
        budget: { percent: 10, minRetriesPerSecond: 10 },
        retryNonIdempotent: false,
      },
      accessLogs: { enabled: true, sampling: 0.1 },
      maxRequestBodyBytes: 1024,
    },
  },
  {
    name: "least_request with a choice count",
    input: { ...base, loadBalancer: { policy: "least_request", choiceCount: 3 } },
    match: { loadBalancer: { policy: "least_request", choiceCount: 3 } },
  },
  {
    name: "weighted and random policies",
    input: { ...base, loadBalancer: { policy: "weighted" } },
    match: { loadBalancer: { policy: "weighted" } },
  },
];

const invalid: InvalidCase[] = [
  {
    name: "unknown top-level field",
    input: { ...base, connectTimeout: "5s" },
    path: ["connectTimeout"],
    message: 'unknown field "connectTimeout"',
  },
  {
    name: "unknown nested field",
    input: { ...base, circuitBreaker: { maxConn: 1 } },
    path: ["circuitBreaker", "maxConn"],
    message: 'unknown field "maxConn"',
  },
  {
    name: "unknown policy",
    input: { ...base, loadBalancer: { policy: "maglev" } },
    path: ["loadBalancer", "policy"],
    message: '"ring_hash"',
  },
  {
    name: "hashOn without ring_hash",
    input: { ...base, loadBalancer: { hashOn: [{ sourceIp: true }] } },
    path: ["loadBalancer", "hashOn"],
    message: 'needs policy "ring_hash"',
  },
  {
    name: "hashOn entry with two inputs",
    input: { ...base, loadBalancer: { policy: "ring_hash", hashOn: [{ header: "a", cookie: "b" }] } },
    path: ["loadBalancer", "hashOn", 0, "cookie"],
    message: "cannot be combined",
  },
  {
    name: "bad duration",
    input: { ...base, timeouts: { connect: "fast" } },
    path: ["timeouts", "connect"],
    message: "invalid duration",
  },
  {
    name: "circuit breaker not an integer",
    input: { ...base, circuitBreaker: { maxConnections: 1.5 } },
    path: ["circuitBreaker", "maxConnections"],
    message: "integer",
  },
  {
    name: "ejection percent above 100",
    input: { ...base, outlierDetection: { maxEjectionPercent: 150 } },
    path: ["outlierDetection", "maxEjectionPercent"],
    message: "<= 100",
  },
  {
    name: "unknown retryOn",
    input: { ...base, retries: { retryOn: ["timeout"] } },
    path: ["retries", "retryOn", 0],
    message: "expected one of",
  },
  {
    name: "backoff max below base",
    input: { ...base, retries: { backoff: { baseInterval: "1s", maxInterval: "10ms" } } },
    path: ["retries", "backoff", "maxInterval"],
    message: "baseInterval",
  },
  {
    name: "rate limit with no rate",
    input: { ...base, rateLimit: {} },
    path: ["rateLimit"],
    message: "requestsPerSecond or routes",
  },
  {
    name: "route rate limit with a costly regex",
    input: { ...base, rateLimit: { routes: [{ pathRegex: "(x*)*", requestsPerSecond: 1 }] } },
    path: ["rateLimit", "routes", 0, "pathRegex"],
    message: "nested quantifiers",
  },
  {
    name: "bad protocol",
    input: { ...base, protocol: "https" },
    path: ["protocol"],
    message: "expected one of",
  },
];

runTable("ServiceDefaults", valid, invalid);
