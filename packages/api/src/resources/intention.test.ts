import { type InvalidCase, runTable, type ValidCase } from "./table.suite.js";

const base = { kind: "Intention", name: "api" };

const valid: ValidCase[] = [
  {
    name: "the PRODUCT.md example",
    input: {
      ...base,
      sources: [
        { name: "web", action: "allow" },
        {
          name: "admin",
          permissions: [{ action: "allow", http: { pathPrefix: "/admin", methods: ["GET"] } }],
        },
        { name: "*", action: "deny" },
      ],
    },
    expected: {
      ...base,
      sources: [
        { name: "web", action: "allow" },
        {
          name: "admin",
          permissions: [{ action: "allow", http: { pathPrefix: "/admin", methods: ["GET"] } }],
        },
        { name: "*", action: "deny" },
      ],
    },
  },
  {
    name: "header matches, lower-cased names and upper-cased methods",
    input: {
      ...base,
      sources: [
        {
          name: "web",
          description: "reads only",
          permissions: [
            {
              action: "deny",
              http: {
                pathRegex: "^/internal/[a-z]+$",
                methods: ["post", "Delete"],
                headers: [
                  { name: "X-Debug", present: true },
                  { name: "x-env", exact: "prod", invert: true },
                  { name: "user-agent", prefix: "curl/" },
                  { name: "host", suffix: ".internal" },
                  { name: "x-id", regex: "^[0-9]{1,8}$" },
                ],
              },
            },
          ],
        },
      ],
    },
    expected: {
      ...base,
      sources: [
        {
          name: "web",
          description: "reads only",
          permissions: [
            {
              action: "deny",
              http: {
                pathRegex: "^/internal/[a-z]+$",
                methods: ["POST", "DELETE"],
                headers: [
                  { name: "x-debug", present: true, invert: false },
                  { name: "x-env", exact: "prod", invert: true },
                  { name: "user-agent", prefix: "curl/", invert: false },
                  { name: "host", suffix: ".internal", invert: false },
                  { name: "x-id", regex: "^[0-9]{1,8}$", invert: false },
                ],
              },
            },
          ],
        },
      ],
    },
  },
];

const invalid: InvalidCase[] = [
  {
    name: "unknown top-level field",
    input: { ...base, sources: [{ name: "web", action: "allow" }], source: [] },
    path: ["source"],
    message: 'unknown field "source"',
  },
  {
    name: "unknown nested field",
    input: { ...base, sources: [{ name: "web", action: "allow", precedence: 9 }] },
    path: ["sources", 0, "precedence"],
    message: 'unknown field "precedence"',
  },
  { name: "missing sources", input: base, path: ["sources"], message: "required: expected a list" },
  { name: "empty sources", input: { ...base, sources: [] }, path: ["sources"], message: "at least 1" },
  {
    name: "bad action",
    input: { ...base, sources: [{ name: "web", action: "permit" }] },
    path: ["sources", 0, "action"],
    message: 'expected one of "allow", "deny"',
  },
  {
    name: "bad source name",
    input: { ...base, sources: [{ name: "Web!", action: "allow" }] },
    path: ["sources", 0, "name"],
    message: '"*" for every source',
  },
  {
    name: "both action and permissions",
    input: {
      ...base,
      sources: [
        { name: "web", action: "allow", permissions: [{ action: "allow", http: { pathPrefix: "/" } }] },
      ],
    },
    path: ["sources", 0, "permissions"],
    message: "cannot be combined",
  },
  {
    name: "neither action nor permissions",
    input: { ...base, sources: [{ name: "web" }] },
    path: ["sources", 0],
    message: "exactly one of action, permissions",
  },
  {
    name: "duplicate source",
    input: {
      ...base,
      sources: [
        { name: "web", action: "allow" },
        { name: "web", action: "deny" },
      ],
    },
    path: ["sources", 1, "name"],
    message: "already listed at sources[0]",
  },
  {
    name: "two path matches",
    input: {
      ...base,
      sources: [
        { name: "web", permissions: [{ action: "allow", http: { pathPrefix: "/a", pathExact: "/a" } }] },
      ],
    },
    path: ["sources", 0, "permissions", 0, "http", "pathPrefix"],
    message: "cannot be combined",
  },
  {
    name: "empty http match",
    input: { ...base, sources: [{ name: "web", permissions: [{ action: "allow", http: {} }] }] },
    path: ["sources", 0, "permissions", 0, "http"],
    message: "at least one of",
  },
  {
    name: "costly regex",
    input: {
      ...base,
      sources: [{ name: "web", permissions: [{ action: "allow", http: { pathRegex: "^(a+)+$" } }] }],
    },
    path: ["sources", 0, "permissions", 0, "http", "pathRegex"],
    message: "nested quantifiers",
  },
  {
    name: "header match without a criterion",
    input: {
      ...base,
      sources: [{ name: "web", permissions: [{ action: "allow", http: { headers: [{ name: "x" }] } }] }],
    },
    path: ["sources", 0, "permissions", 0, "http", "headers", 0],
    message: "a header match needs one of exact, prefix, suffix, regex, present",
  },
  {
    name: "header value with CRLF",
    input: {
      ...base,
      sources: [
        {
          name: "web",
          permissions: [{ action: "allow", http: { headers: [{ name: "x", exact: "a\r\nb: c" }] } }],
        },
      ],
    },
    path: ["sources", 0, "permissions", 0, "http", "headers", 0, "exact"],
    message: "control characters",
  },
];

runTable("Intention", valid, invalid);
