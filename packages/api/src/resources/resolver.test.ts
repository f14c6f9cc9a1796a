import { type InvalidCase, runTable, type ValidCase } from "./table.suite.js";

const base = { kind: "Resolver", name: "api" };

const valid: ValidCase[] = [
  { name: "the minimal resolver", input: base, expected: { ...base, subsets: {}, connectTimeout: 5000 } },
  {
    name: "the PRODUCT.md subsets",
    input: { ...base, subsets: { v1: { meta: { version: "v1" } }, v2: { meta: { version: "v2" } } } },
    expected: {
      ...base,
      subsets: {
        v1: { meta: { version: "v1" }, onlyPassing: true },
        v2: { meta: { version: "v2" }, onlyPassing: true },
      },
      connectTimeout: 5000,
    },
  },
  {
    name: "tags, default subset, connect timeout and failover targets",
    input: {
      ...base,
      subsets: { v1: { tags: ["v1"] }, v2: { tags: ["v2"], onlyPassing: false } },
      defaultSubset: "v1",
      connectTimeout: "250ms",
      failover: {
        targets: [
          { subset: "v2" },
          { service: "api-backup" },
          { datacenter: "dc2" },
          { locality: { region: "us" } },
        ],
      },
    },
    expected: {
      ...base,
      subsets: { v1: { tags: ["v1"], onlyPassing: true }, v2: { tags: ["v2"], onlyPassing: false } },
      defaultSubset: "v1",
      connectTimeout: 250,
      failover: {
        targets: [
          { subset: "v2" },
          { service: "api-backup" },
          { datacenter: "dc2" },
          { locality: { region: "us" } },
        ],
      },
    },
  },
  {
    name: "a redirect",
    input: { ...base, redirect: { service: "api-v2", subset: "blue" } },
    match: { redirect: { service: "api-v2", subset: "blue" } },
  },
];

const invalid: InvalidCase[] = [
  {
    name: "unknown top-level field",
    input: { ...base, loadBalancer: {} },
    path: ["loadBalancer"],
    message: 'unknown field "loadBalancer"',
  },
  {
    name: "unknown nested field",
    input: { ...base, subsets: { v1: { filter: "x" } } },
    path: ["subsets", "v1", "filter"],
    message: 'unknown field "filter"',
  },
  {
    name: "bad subset name",
    input: { ...base, subsets: { V1: {} } },
    path: ["subsets", "V1"],
    message: 'invalid key "V1"',
  },
  {
    name: "bad duration",
    input: { ...base, connectTimeout: 5 },
    path: ["connectTimeout"],
    message: "expected a string, got number",
  },
  {
    name: "unknown default subset",
    input: { ...base, subsets: { v1: {} }, defaultSubset: "v3" },
    path: ["defaultSubset"],
    message: 'subset "v3" is not defined',
  },
  {
    name: "failover to an unknown own subset",
    input: { ...base, failover: { targets: [{ subset: "v9" }] } },
    path: ["failover", "targets", 0, "subset"],
    message: 'subset "v9" is not defined',
  },
  {
    name: "failover to itself",
    input: { ...base, failover: { targets: [{ service: "api" }] } },
    path: ["failover", "targets", 0],
    message: "fails over to itself",
  },
  {
    name: "redirect to itself",
    input: { ...base, redirect: { service: "api" } },
    path: ["redirect"],
    message: "redirects to itself",
  },
  {
    name: "empty target",
    input: { ...base, failover: { targets: [{}] } },
    path: ["failover", "targets", 0],
    message: "a target needs",
  },
  {
    name: "redirect and failover",
    input: { ...base, redirect: { service: "b" }, failover: { targets: [{ service: "c" }] } },
    path: ["failover"],
    message: "a redirecting resolver",
  },
];

runTable("Resolver", valid, invalid);
