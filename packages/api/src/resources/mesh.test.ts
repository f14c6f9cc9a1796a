import { type InvalidCase, runTable, type ValidCase } from "./table.suite.js";

const base = { kind: "Mesh", name: "mesh" };

const valid: ValidCase[] = [
  {
    name: "the PRODUCT.md example, with every default",
    input: { ...base, defaultPolicy: "deny" },
    expected: {
      ...base,
      trustDomain: "weft.local",
      defaultPolicy: "deny",
      certificates: { leafTtl: 86_400_000, maxLeafTtl: 259_200_000, rootTtl: 315_360_000_000 },
      accessLogs: { enabled: true, sampling: 1 },
    },
  },
  {
    name: "short leaves, tracing and sampled access logs",
    input: {
      ...base,
      trustDomain: "example.org",
      defaultPolicy: "allow",
      certificates: { leafTtl: "5s", maxLeafTtl: "1h", rootTtl: "24h" },
      tracing: { endpoint: "http://127.0.0.1:4318/v1/traces", sampling: 0.25 },
      accessLogs: { enabled: false },
    },
    expected: {
      ...base,
      trustDomain: "example.org",
      defaultPolicy: "allow",
      certificates: { leafTtl: 5000, maxLeafTtl: 3_600_000, rootTtl: 86_400_000 },
      tracing: { endpoint: "http://127.0.0.1:4318/v1/traces", sampling: 0.25 },
      accessLogs: { enabled: false, sampling: 1 },
    },
  },
];

const invalid: InvalidCase[] = [
  {
    name: "a name other than mesh",
    input: { ...base, name: "prod" },
    path: ["name"],
    message: 'always named "mesh"',
  },
  {
    name: "unknown top-level field",
    input: { ...base, mtls: true },
    path: ["mtls"],
    message: 'unknown field "mtls"',
  },
  {
    name: "unknown nested field",
    input: { ...base, tracing: { endpoint: "http://x:4318", rate: 1 } },
    path: ["tracing", "rate"],
    message: 'unknown field "rate"',
  },
  {
    name: "bad policy",
    input: { ...base, defaultPolicy: "block" },
    path: ["defaultPolicy"],
    message: 'expected one of "allow", "deny"',
  },
  {
    name: "trust domain with a port",
    input: { ...base, trustDomain: "weft.local:8443" },
    path: ["trustDomain"],
    message: "no scheme, port or path",
  },
  {
    name: "leaf longer than the maximum",
    input: { ...base, certificates: { leafTtl: "100h" } },
    path: ["certificates", "leafTtl"],
    message: "maxLeafTtl",
  },
  {
    name: "bad duration",
    input: { ...base, certificates: { leafTtl: "1d" } },
    path: ["certificates", "leafTtl"],
    message: "invalid duration",
  },
  {
    name: "sampling above 1",
    input: { ...base, tracing: { endpoint: "http://x:4318", sampling: 5 } },
    path: ["tracing", "sampling"],
    message: "<= 1",
  },
  {
    name: "tracing endpoint not a URL",
    input: { ...base, tracing: { endpoint: "collector" } },
    path: ["tracing", "endpoint"],
    message: "http(s) URL",
  },
  {
    name: "tracing endpoint with another scheme",
    input: { ...base, tracing: { endpoint: "file:///tmp/x" } },
    path: ["tracing", "endpoint"],
    message: "http(s) URL",
  },
];

runTable("Mesh", valid, invalid);
