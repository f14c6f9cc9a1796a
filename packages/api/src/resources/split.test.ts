import { type InvalidCase, runTable, type ValidCase } from "./table.suite.js";

const base = { kind: "Split", name: "api" };

const valid: ValidCase[] = [
  {
    name: "the PRODUCT.md canary",
    input: {
      ...base,
      splits: [
        { weight: 90, subset: "v1" },
        { weight: 10, subset: "v2" },
      ],
    },
    expected: {
      ...base,
      splits: [
        { weight: 90, subset: "v1", service: "api" },
        { weight: 10, subset: "v2", service: "api" },
      ],
    },
  },
  {
    name: "thirds within tolerance, across services, with header ops",
    input: {
      ...base,
      splits: [
        { weight: 33.33, service: "api-next" },
        { weight: 33.33, subset: "v1", requestHeaders: { set: { "X-Canary": "1" } } },
        { weight: 33.34, subset: "v2", responseHeaders: { remove: ["Server"] } },
      ],
    },
    expected: {
      ...base,
      splits: [
        { weight: 33.33, service: "api-next" },
        { weight: 33.33, subset: "v1", service: "api", requestHeaders: { set: { "x-canary": "1" } } },
        { weight: 33.34, subset: "v2", service: "api", responseHeaders: { remove: ["server"] } },
      ],
    },
  },
  {
    name: "a single entry",
    input: { ...base, splits: [{ weight: 100 }] },
    expected: { ...base, splits: [{ weight: 100, service: "api" }] },
  },
];

const invalid: InvalidCase[] = [
  {
    name: "unknown top-level field",
    input: { ...base, splits: [{ weight: 100 }], total: 100 },
    path: ["total"],
    message: 'unknown field "total"',
  },
  {
    name: "unknown nested field",
    input: { ...base, splits: [{ weight: 100, serviceSubset: "v1" }] },
    path: ["splits", 0, "serviceSubset"],
    message: 'unknown field "serviceSubset"',
  },
  {
    name: "weights not summing to 100",
    input: {
      ...base,
      splits: [
        { weight: 90, subset: "v1" },
        { weight: 20, subset: "v2" },
      ],
    },
    path: ["splits"],
    message: "sum to 100, got 110",
  },
  { name: "no entries", input: { ...base, splits: [] }, path: ["splits"], message: "at least one entry" },
  {
    name: "weight as a string",
    input: {
      ...base,
      splits: [
        { weight: 90, subset: "v1" },
        { weight: "10", subset: "v2" },
      ],
    },
    path: ["splits", 1, "weight"],
    message: "expected a number, got string",
  },
  {
    name: "negative weight",
    input: { ...base, splits: [{ weight: -1 }] },
    path: ["splits", 0, "weight"],
    message: ">= 0",
  },
  {
    name: "bad subset name",
    input: { ...base, splits: [{ weight: 100, subset: "V1" }] },
    path: ["splits", 0, "subset"],
    message: "lowercase DNS label",
  },
  {
    name: "same target twice",
    input: {
      ...base,
      splits: [
        { weight: 50, subset: "v1" },
        { weight: 50, subset: "v1" },
      ],
    },
    path: ["splits", 1],
    message: "same target as splits[0]",
  },
  {
    name: "missing name",
    input: { kind: "Split", splits: [{ weight: 100 }] },
    path: ["name"],
    message: "required",
  },
];

runTable("Split", valid, invalid);
