import { type InvalidCase, runTable, type ValidCase } from "./table.suite.js";

const base = { kind: "Workload", name: "web", command: ["node", "web.js"] };

const valid: ValidCase[] = [
  {
    name: "the minimal workload, with every default",
    input: base,
    expected: {
      ...base,
      service: "web",
      replicas: 1,
      protocol: "tcp",
      upstreams: [],
      env: {},
      tags: [],
      meta: {},
    },
  },
  {
    name: "the PRODUCT.md example",
    input: {
      ...base,
      service: "web",
      replicas: 2,
      protocol: "http",
      health: { http: "/healthz" },
      upstreams: [{ service: "api", localPort: 9101 }],
      env: { KEY: "value" },
      tags: ["v1"],
      meta: { version: "v1" },
    },
    expected: {
      ...base,
      service: "web",
      replicas: 2,
      protocol: "http",
      health: { http: "/healthz", interval: 10_000, timeout: 2_000 },
      upstreams: [{ service: "api", localPort: 9101 }],
      env: { KEY: "value" },
      tags: ["v1"],
      meta: { version: "v1" },
    },
  },
  {
    name: "a second version of a service",
    input: { ...base, name: "api-v2", service: "api" },
    match: { name: "api-v2", service: "api" },
  },
  {
    name: "tcp health with interval and timeout",
    input: { ...base, health: { tcp: true, interval: "5s", timeout: "500ms" } },
    match: { health: { tcp: true, interval: 5000, timeout: 500 } },
  },
  {
    name: "grpc health (server)",
    input: { ...base, health: { grpc: true } },
    match: { health: { grpc: true } },
  },
  {
    name: "grpc health (named service)",
    input: { ...base, protocol: "grpc", health: { grpc: "reviews.v1.Reviews" } },
    match: { health: { grpc: "reviews.v1.Reviews" } },
  },
  {
    name: "fixed port, cwd and locality",
    input: { ...base, port: 3000, cwd: "./web", locality: { region: "eu", zone: "a" } },
    match: { port: 3000, cwd: "./web", locality: { region: "eu", zone: "a" } },
  },
];

const invalid: InvalidCase[] = [
  {
    name: "unknown top-level field",
    input: { ...base, replica: 2 },
    path: ["replica"],
    message: 'unknown field "replica"',
  },
  {
    name: "unknown nested field",
    input: { ...base, upstreams: [{ service: "api", localPort: 9101, host: "x" }] },
    path: ["upstreams", 0, "host"],
    message: 'unknown field "host"',
  },
  { name: "bad name", input: { ...base, name: "Web_1" }, path: ["name"], message: "lowercase DNS label" },
  {
    name: "missing command",
    input: { kind: "Workload", name: "web" },
    path: ["command"],
    message: "required",
  },
  {
    name: "empty command",
    input: { ...base, command: [] },
    path: ["command"],
    message: "at least the program",
  },
  {
    name: "command not a list",
    input: { ...base, command: "node web.js" },
    path: ["command"],
    message: "expected a list, got string",
  },
  {
    name: "replicas as a string",
    input: { ...base, replicas: "2" },
    path: ["replicas"],
    message: "expected a number, got string",
  },
  { name: "too many replicas", input: { ...base, replicas: 65 }, path: ["replicas"], message: "<= 64" },
  { name: "zero replicas", input: { ...base, replicas: 0 }, path: ["replicas"], message: ">= 1" },
  {
    name: "unknown protocol",
    input: { ...base, protocol: "udp" },
    path: ["protocol"],
    message: 'expected one of "tcp"',
  },
  { name: "bad port", input: { ...base, port: 70000 }, path: ["port"], message: "<= 65535" },
  {
    name: "bad upstream port",
    input: { ...base, upstreams: [{ service: "api", localPort: 0 }] },
    path: ["upstreams", 0, "localPort"],
    message: ">= 1",
  },
  {
    name: "fixed port with replicas",
    input: { ...base, port: 3000, replicas: 2 },
    path: ["port"],
    message: "cannot be shared",
  },
  {
    name: "duplicate upstream localPort",
    input: {
      ...base,
      upstreams: [
        { service: "api", localPort: 9101 },
        { service: "db", localPort: 9101 },
      ],
    },
    path: ["upstreams", 1, "localPort"],
    message: "already used by upstreams[0]",
  },
  {
    name: "health with two kinds",
    input: { ...base, health: { http: "/h", tcp: true } },
    path: ["health", "tcp"],
    message: "cannot be combined",
  },
  {
    name: "health with no kind",
    input: { ...base, health: { interval: "5s" } },
    path: ["health"],
    message: "exactly one of http, tcp, grpc",
  },
  {
    name: "health tcp false",
    input: { ...base, health: { tcp: false } },
    path: ["health", "tcp"],
    message: "tcp must be true",
  },
  {
    name: "health path without slash",
    input: { ...base, health: { http: "healthz" } },
    path: ["health", "http"],
    message: 'starting with "/"',
  },
  {
    name: "bad duration",
    input: { ...base, health: { tcp: true, interval: "5 seconds" } },
    path: ["health", "interval"],
    message: "invalid duration",
  },
  {
    name: "timeout longer than interval",
    input: { ...base, health: { tcp: true, interval: "1s", timeout: "2s" } },
    path: ["health", "timeout"],
    message: "not be longer than interval",
  },
  {
    name: "env PORT",
    input: { ...base, env: { PORT: "1" } },
    path: ["env", "PORT"],
    message: "PORT is set by weft",
  },
  {
    name: "env value not a string",
    input: { ...base, env: { DEBUG: 1 } },
    path: ["env", "DEBUG"],
    message: "expected a string, got number",
  },
  {
    name: "env bad key",
    input: { ...base, env: { "A-B": "x" } },
    path: ["env", "A-B"],
    message: "environment variable names",
  },
  {
    name: "bad meta key",
    input: { ...base, meta: { "-x": "1" } },
    path: ["meta", "-x"],
    message: "meta keys",
  },
];

runTable("Workload", valid, invalid);
