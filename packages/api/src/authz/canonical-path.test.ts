import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalPath, MAX_TARGET_LENGTH } from "./canonical-path.js";

/** A canonical path and query, or a refusal whose reason contains the given words. */
type Want = { path: string; query?: string } | { refused: string };

// The HARDENING.md list ("Authorization bypass by normalization") first, then the rest.
const CASES: [target: string, want: Want][] = [
  // repeated slashes
  ["//admin", { path: "/admin" }],
  ["/a//b///c", { path: "/a/b/c" }],
  ["///", { path: "/" }],
  ["/a//", { path: "/a/" }],
  // dot segments
  ["/x/../admin", { path: "/admin" }],
  ["/./admin", { path: "/admin" }],
  ["/admin/.", { path: "/admin/" }],
  ["/admin/./", { path: "/admin/" }],
  ["/a/b/..", { path: "/a/" }],
  ["/a/b/../", { path: "/a/" }],
  ["/a/./b/../../c", { path: "/c" }],
  ["/x//../admin", { path: "/admin" }],
  ["/..", { refused: "above the root" }],
  ["/../admin", { refused: "above the root" }],
  ["/a/../../admin", { refused: "above the root" }],
  // encoded dot segments are decoded first, then resolved
  ["/%2e%2e/admin", { refused: "above the root" }],
  ["/x/%2E%2E/admin", { path: "/admin" }],
  ["/x/.%2e/admin", { path: "/admin" }],
  ["/x/%2e./admin", { path: "/admin" }],
  ["/%2e/admin", { path: "/admin" }],
  ["/x/%252e%252e/admin", { path: "/x/%252e%252e/admin" }], // decoded once only,
  // dot segments with parameters (Tomcat strips ";x" and then resolves "..")
  ["/x/..;/admin", { refused: "dot-segment with parameters" }],
  ["/x/..;a=b/admin", { refused: "dot-segment with parameters" }],
  ["/x/.;/admin", { refused: "dot-segment with parameters" }],
  ["/x/%2e%2e;/admin", { refused: "dot-segment with parameters" }],
  ["/x/...;/admin", { path: "/x/...;/admin" }],
  ["/.well-known;x", { path: "/.well-known;x" }],
  // escaped slashes and backslashes: refused (Envoy's "reject")
  ["/admin%2Fsecret", { refused: "encoded slash" }],
  ["/x%2f..%2fadmin", { refused: "encoded slash" }],
  ["/admin%5Csecret", { refused: "encoded backslash" }],
  ["/x%5c..%5cadmin", { refused: "encoded backslash" }],
  ["/x\\..\\admin", { refused: "backslash" }],
  ["\\admin", { refused: 'start with "/"' }],
  // case is kept
  ["/ADMIN", { path: "/ADMIN" }],
  ["/Admin/X", { path: "/Admin/X" }],
  // fragment dropped, query split off verbatim
  ["/admin#frag", { path: "/admin", query: "" }],
  ["/admin#frag?x=1", { path: "/admin", query: "" }],
  ["/admin?x=1#frag", { path: "/admin", query: "?x=1" }],
  ["/admin?", { path: "/admin", query: "?" }],
  ["/a?b=/../c&d=%2F%zz", { path: "/a", query: "?b=/../c&d=%2F%zz" }],
  ["/x/../a?q", { path: "/a", query: "?q" }],
  // matrix parameters stay in the path
  ["/admin;params", { path: "/admin;params" }],
  ["/admin;x/secret", { path: "/admin;x/secret" }],
  // NUL and control characters, raw or encoded
  ["/admin%00", { refused: "NUL" }],
  ["/admin\u0000", { refused: "NUL" }],
  ["/admin%0d%0aX-Injected:1", { refused: "control character" }],
  ["/admin%7F", { refused: "control character" }],
  ["/admin\r\nX: y", { refused: "control character" }],
  ["/admin\tx", { refused: "control character" }],
  ["/admin x", { refused: "space" }],
  ["/admin\u007f", { refused: "control character" }],
  ["/admin?x=\u0001", { refused: "control character" }],
  ["/caf\u00e9", { refused: "non-ASCII" }],
  ["/\u{1F600}", { refused: "non-ASCII" }],
  // percent-encoding: unreserved decoded, others uppercased, invalid refused
  ["/%61dmin", { path: "/admin" }],
  ["/%41DMIN", { path: "/ADMIN" }],
  ["/%7euser/%2D%5F%2E%30", { path: "/~user/-_.0" }],
  ["/a%3bb", { path: "/a%3Bb" }],
  ["/a%3fb", { path: "/a%3Fb" }],
  ["/caf%c3%a9", { path: "/caf%C3%A9" }],
  ["/100%25", { path: "/100%25" }],
  ["/a%20b", { path: "/a%20b" }],
  ["/a%", { refused: "percent-encoding" }],
  ["/a%4", { refused: "percent-encoding" }],
  ["/a%zz", { refused: "percent-encoding" }],
  ["/a%4g", { refused: "percent-encoding" }],
  ["/a%%41", { refused: "percent-encoding" }],
  ["/a%4?x", { refused: "percent-encoding" }],
  // forms other than origin-form
  ["", { refused: "empty" }],
  ["*", { refused: "asterisk-form" }],
  ["http://evil.example/admin", { refused: "absolute-form" }],
  ["HTTPS://h/admin", { refused: "absolute-form" }],
  ["api.internal:443", { refused: 'start with "/"' }],
  ["admin", { refused: 'start with "/"' }],
  // plain paths pass unchanged
  ["/", { path: "/" }],
  ["/api/v1/users", { path: "/api/v1/users" }],
  ["/api/v1/users/", { path: "/api/v1/users/" }],
  ["/a.b/c..d/...", { path: "/a.b/c..d/..." }],
  ["/a|b{c}", { path: "/a|b{c}" }],
];

describe("canonicalPath", () => {
  it.each(CASES)("%j", (target, want) => {
    const got = canonicalPath(target);
    if ("refused" in want) {
      expect(got.ok).toBe(false);
      if (!got.ok) expect(got.reason).toContain(want.refused);
    } else {
      expect(got).toEqual({ ok: true, path: want.path, query: want.query ?? "" });
    }
  });

  it("refuses a request-target longer than 8 KiB and accepts one of exactly 8 KiB", () => {
    const exact = "/" + "a".repeat(MAX_TARGET_LENGTH - 1);
    expect(canonicalPath(exact)).toEqual({ ok: true, path: exact, query: "" });
    const over = canonicalPath(exact + "a");
    expect(over.ok).toBe(false);
    if (!over.ok) expect(over.reason).toContain("longer than");
    // The query counts too: it is part of the request-target.
    expect(canonicalPath(`/a?${"q".repeat(MAX_TARGET_LENGTH)}`).ok).toBe(false);
  });

  it("handles a long run of dot segments without blowing up", () => {
    const deep = "/a".repeat(1300) + "/..".repeat(1300) + "/admin";
    expect(canonicalPath(deep)).toEqual({ ok: true, path: "/admin", query: "" });
    expect(canonicalPath(deep.replace("/admin", "/../admin")).ok).toBe(false);
  });

  // Building blocks biased towards the tricky bits: dots, slashes, escapes, ";".
  const piece = fc.oneof(
    fc.constantFrom(
      "/",
      "//",
      ".",
      "..",
      "/./",
      "/../",
      ";",
      ";x",
      "%2e",
      "%2E",
      "%2f",
      "%5c",
      "%00",
      "%25",
      "%",
    ),
    fc.constantFrom(
      "%41",
      "%7e",
      "%7E",
      "%3b",
      "%3F",
      "%c3%a9",
      "%20",
      "?",
      "#",
      "\\",
      "a",
      "admin",
      "~",
      "-",
    ),
    fc.string({ maxLength: 4 }),
    fc.stringMatching(/^%[0-9A-Fa-f]{2}$/),
  );
  const target = fc.array(piece, { maxLength: 24 }).map((ps) => "/" + ps.join(""));
  const anyString = fc.oneof(
    target,
    fc.string({ maxLength: 64 }),
    fc.string({ unit: "binary", maxLength: 32 }),
  );

  it("property: never throws, and an ok result is canonical and idempotent", () => {
    fc.assert(
      fc.property(anyString, (raw) => {
        const got = canonicalPath(raw);
        if (!got.ok) {
          expect(got.reason.length).toBeGreaterThan(0);
          return;
        }
        const p = got.path;
        expect(p.startsWith("/")).toBe(true);
        expect(p).not.toContain("//");
        expect(p).not.toMatch(/\/\.\.?(\/|$)/); // no "/./", "/../", trailing "/." or "/.."
        expect(p).not.toMatch(/[?#\\]/);
        // Escapes left are of reserved or unsafe bytes only, in uppercase hex.
        for (const m of p.matchAll(/%(.{0,2})/g)) {
          const hex = m[1] as string;
          expect(hex).toMatch(/^[0-9A-F]{2}$/);
          expect(String.fromCharCode(Number.parseInt(hex, 16))).not.toMatch(/[A-Za-z0-9\-._~/\\]/);
          expect(Number.parseInt(hex, 16)).toBeGreaterThanOrEqual(0x20);
        }
        expect(canonicalPath(p)).toEqual({ ok: true, path: p, query: "" });
        // The query is verbatim: what followed the first "?" up to any "#".
        if (got.query !== "") expect(raw).toContain(got.query);
      }),
      { numRuns: 5000 },
    );
  });

  it("property: decoding an unreserved escape never changes the outcome", () => {
    // `/a%62c` and `/abc` are the same resource, so they must get the same answer.
    const unreserved = fc.constantFrom(..."abcXYZ019-._~");
    fc.assert(
      fc.property(target, fc.nat(64), unreserved, (raw, at, ch) => {
        const i = Math.min(at, raw.length);
        // Only in the path (the query is kept verbatim), and not inside an escape.
        const pathEnd = raw.search(/[?#]/);
        fc.pre(i >= 1 && (pathEnd < 0 || i <= pathEnd) && !raw.slice(Math.max(0, i - 2), i).includes("%"));
        const plain = raw.slice(0, i) + ch + raw.slice(i);
        const hex = ch.charCodeAt(0).toString(16);
        const encoded = raw.slice(0, i) + "%" + (at % 2 === 0 ? hex.toUpperCase() : hex) + raw.slice(i);
        expect(canonicalPath(encoded)).toEqual(canonicalPath(plain));
      }),
      { numRuns: 3000 },
    );
  });
});
