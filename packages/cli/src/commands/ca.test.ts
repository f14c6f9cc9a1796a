/**
 * `weft ca` in-process: the pure helpers (time left, short serial and
 * fingerprint, the tables), reading the CSR, and the three commands against
 * a stub HTTP server answering the wire contract of packages/api/src/ca.ts.
 * The real server and the real executable are covered in e2e/ca-cli.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { CaRoot, CaRootsResponse, RotateResponse, SignResponse } from "@weft/api";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { EXIT } from "../exit-codes.js";
import { runCaptured } from "../run-captured.suite.js";
import {
  certExpiresCell,
  humanTimeLeft,
  isoSeconds,
  readCsr,
  rootsPem,
  rootsTable,
  rotateSummary,
  shortFingerprint,
  shortSerial,
  signSummary,
  timeLeft,
} from "./ca.js";
import { instanceTable } from "./catalog.js";

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;

describe("humanTimeLeft", () => {
  it.each([
    [10 * 365 * D - 1, "9y 364d"],
    [10 * 365 * D, "10y 0d"],
    [24 * H - 1, "23h 59m"],
    [23 * H + 12 * M + 59 * S, "23h 12m"],
    [24 * H, "1d 0h"],
    [3 * D + 4 * H + 59 * M, "3d 4h"],
    [45 * M + 10 * S, "45m 10s"],
    [M, "1m 0s"],
    [45 * S + 999, "45s"],
    [S, "1s"],
    [999, "<1s"],
    [1, "<1s"],
    [0, "expired"],
    [-5 * M, "expired"],
    [Number.NaN, "?"],
  ])("%i ms -> %s", (ms, text) => {
    expect(humanTimeLeft(ms)).toBe(text);
  });

  it("rounds down, so it never shows more time than is left", () => {
    expect(humanTimeLeft(59 * S + 999)).toBe("59s");
    expect(humanTimeLeft(59 * M + 59 * S + 999)).toBe("59m 59s");
    expect(humanTimeLeft(364 * D + 23 * H + 59 * M)).toBe("364d 23h");
  });
});

describe("timeLeft / certExpiresCell / isoSeconds", () => {
  const now = Date.parse("2026-03-01T12:00:00.000Z");

  it("counts from now to an ISO timestamp", () => {
    expect(timeLeft("2026-03-02T11:12:30Z", now)).toBe("23h 12m");
    expect(timeLeft("2026-03-01T11:59:59Z", now)).toBe("expired");
    expect(timeLeft("not a date", now)).toBe("?");
  });

  it("is '-' without a certificate, red 'expired' only with colour", () => {
    const cert = { serialNumber: "01", rootId: "r1", notAfter: "2026-03-01T11:00:00Z" };
    expect(certExpiresCell(undefined, now, true)).toBe("-");
    expect(certExpiresCell(cert, now, false)).toBe("expired");
    expect(certExpiresCell(cert, now, true)).toBe("\u001b[31mexpired\u001b[0m");
    expect(certExpiresCell({ ...cert, notAfter: "2026-03-02T12:00:00Z" }, now, true)).toBe("1d 0h");
  });

  it("prints timestamps to the second, or as given when they do not parse", () => {
    expect(isoSeconds("2036-02-27T12:00:00.123Z")).toBe("2036-02-27T12:00:00Z");
    expect(isoSeconds("2036-02-27T13:00:00+01:00")).toBe("2036-02-27T12:00:00Z");
    expect(isoSeconds("soon")).toBe("soon");
  });

  it("shortens serials and fingerprints", () => {
    expect(shortSerial("3a:f0:11:22:33:44:55:66:77:88")).toBe("3af011223344");
    expect(shortSerial("1F2E")).toBe("1F2E");
    expect(shortFingerprint("AB:CD:EF:01:23:45:67:89:AA")).toBe("AB:CD:EF:01:23:45");
  });
});

const NOW = Date.parse("2026-03-01T12:00:00.000Z");

function root(over: Partial<CaRoot>): CaRoot {
  return {
    id: "root-1",
    certificatePem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    serialNumber: "7c3e9a0b11d24f56a8",
    fingerprintSha256: "AB:CD:EF:01:23:45:67:89",
    notBefore: "2026-03-01T11:59:00.000Z",
    notAfter: new Date(NOW + 10 * 365 * D - M).toISOString(),
    state: "active",
    leavesOutstanding: 0,
    ...over,
  };
}

const ROTATED: CaRootsResponse = {
  trustDomain: "weft.local",
  activeRootId: "root-2",
  index: 7,
  roots: [
    root({ id: "root-1", state: "retiring", leavesOutstanding: 3, certificatePem: "OLD-PEM" }),
    root({
      id: "root-2",
      state: "active",
      serialNumber: "01:02:03:04:05:06:07:08",
      fingerprintSha256: "11:22:33:44:55:66:77:88",
      certificatePem: "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----",
      notAfter: new Date(NOW + 10 * 365 * D + H).toISOString(),
    }),
  ],
};

describe("rootsTable / rootsPem / rotateSummary / signSummary", () => {
  it("a trust domain line, then the active root first, aligned, without colour", () => {
    const lines = rootsTable(ROTATED, NOW, false).trimEnd().split("\n");
    expect(lines[0]).toBe("trust domain: weft.local");
    expect(lines[1]).toMatch(/^ID\s+STATE\s+SERIAL\s+NOT AFTER\s+EXPIRES IN\s+LEAVES\s+FINGERPRINT$/);
    expect(lines[2]).toMatch(
      /^root-2\s+active\s+010203040506\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+10y 0d\s+0\s+11:22:33:44:55:66$/,
    );
    expect(lines[3]).toMatch(/^root-1\s+retiring\s+7c3e9a0b11d2\s+\S+Z\s+9y 364d\s+3\s+AB:CD:EF:01:23:45$/);
    expect(lines).toHaveLength(4);
    const col = lines[1]!.indexOf("EXPIRES IN");
    expect(lines[2]!.slice(col)).toMatch(/^10y 0d/);
    expect(lines[3]!.slice(col)).toMatch(/^9y 364d/);
  });

  it("colours the state on a terminal", () => {
    const t = rootsTable(ROTATED, NOW, true);
    expect(t).toContain("\u001b[32mactive\u001b[0m");
    expect(t).toContain("\u001b[33mretiring\u001b[0m");
  });

  it("the PEM bundle has every root, active first, each ending in a newline", () => {
    expect(rootsPem(ROTATED)).toBe("-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\nOLD-PEM\n");
  });

  it("rotate names the new active root, the retiring one and when it goes", () => {
    const r: RotateResponse = { activeRootId: "root-2", previousRootId: "root-1", roots: ROTATED.roots };
    const text = rotateSummary(r, NOW);
    expect(text).toMatch(/^active root\s+root-2 \(fingerprint 11:22:33:44:55:66, expires in 10y 0d\)$/m);
    expect(text).toMatch(/^retiring root\s+root-1 \(3 leaves outstanding\)$/m);
    expect(text).toContain(
      "New leaves are signed by root-2.\nRoot root-1 retires when its last leaf expires or is replaced;\n",
    );

    const one = rotateSummary(
      { ...r, roots: [ROTATED.roots[1]!, { ...ROTATED.roots[0]!, leavesOutstanding: 1 }] },
      NOW,
    );
    expect(one).toContain("(1 leaf outstanding)");

    const gone = rotateSummary({ ...r, roots: [ROTATED.roots[1]!] }, NOW);
    expect(gone).toMatch(/^retiring root\s+root-1 \(no leaves outstanding; already removed/m);
    expect(gone).not.toContain("retires when");
  });

  it("sign says what was signed, until when, and whether the chain has an intermediate", () => {
    const r = signResponse();
    expect(signSummary(r, NOW)).toBe(
      "signed spiffe://weft.local/ns/default/svc/web: serial 0a0b, root root-2, expires 2026-03-02T11:59:00Z (in 23h 59m)\n",
    );
    const chained = signSummary({ ...r, chainPem: `${r.certificatePem}${r.certificatePem}` }, NOW);
    expect(chained).toContain("(chain includes the cross-signed intermediate)");
  });
});

describe("instanceTable", () => {
  const base = {
    service: "web",
    address: "10.0.0.1",
    port: 8080,
    ports: {},
    tags: [],
    meta: {},
    datacenter: "dc1",
    checks: [],
    status: "passing" as const,
    registeredAt: 0,
    modifyIndex: 1,
  };

  it("shows '-' when no instance has a certificate (the column is always there)", () => {
    const t = instanceTable([{ ...base, id: "web-1" }], false, NOW);
    expect(t).toBe(
      "ID     ADDRESS        STATUS   CHECKS  TAGS  DATACENTER  CERT EXPIRES\nweb-1  10.0.0.1:8080  passing  -       -     dc1         -\n",
    );
  });

  it("adds CERT EXPIRES: time left, expired, or '-'", () => {
    const lines = instanceTable(
      [
        { ...base, id: "web-3" },
        {
          ...base,
          id: "web-1",
          certificate: {
            serialNumber: "01",
            rootId: "r",
            notAfter: new Date(NOW + 23 * H + 12 * M).toISOString(),
          },
        },
        {
          ...base,
          id: "web-2",
          certificate: { serialNumber: "02", rootId: "r", notAfter: "2026-01-01T00:00:00Z" },
        },
      ],
      false,
      NOW,
    )
      .trimEnd()
      .split("\n");
    expect(lines[0]).toMatch(/^ID\s+ADDRESS\s+STATUS\s+CHECKS\s+TAGS\s+DATACENTER\s+CERT EXPIRES$/);
    expect(lines[1]).toMatch(/^web-1\s.*\sdc1\s+23h 12m$/);
    expect(lines[2]).toMatch(/^web-2\s.*\sdc1\s+expired$/);
    expect(lines[3]).toMatch(/^web-3\s.*\sdc1\s+-$/);
  });
});

function signResponse(over: Partial<SignResponse> = {}): SignResponse {
  return {
    spiffeId: "spiffe://weft.local/ns/default/svc/web",
    service: "web",
    serialNumber: "0a0b",
    certificatePem: "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n",
    chainPem: "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n",
    rootId: "root-2",
    notBefore: "2026-03-01T11:59:00Z",
    notAfter: "2026-03-02T11:59:00Z",
    rootsPem: ["ROOT"],
    trustDomain: "weft.local",
    ...over,
  };
}

const CSR = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n";

describe("readCsr", () => {
  const dir = mkdtempSync(join(tmpdir(), "weft-ca-csr-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads a file relative to cwd, or standard input for '-'", async () => {
    writeFileSync(join(dir, "csr.pem"), CSR);
    expect(await readCsr("csr.pem", dir)).toBe(CSR);
    expect(
      await readCsr("-", dir, Readable.from([Buffer.from(CSR.slice(0, 10)), Buffer.from(CSR.slice(10))])),
    ).toBe(CSR);
  });

  it("a missing file is a usage error naming it", async () => {
    await expect(readCsr("nope.pem", dir)).rejects.toMatchObject({
      code: "WEFT_ERR_USAGE",
      message: "cannot read CSR file nope.pem: no such file or directory",
    });
    await expect(readCsr(".", dir)).rejects.toMatchObject({
      message: "cannot read CSR file .: is a directory",
    });
  });

  it("refuses an empty file, one over 16 KiB, and a private key", async () => {
    writeFileSync(join(dir, "empty.pem"), "\n");
    await expect(readCsr("empty.pem", dir)).rejects.toMatchObject({ message: "CSR empty.pem is empty" });
    writeFileSync(join(dir, "big.pem"), "x".repeat(16 * 1024 + 1));
    await expect(readCsr("big.pem", dir)).rejects.toMatchObject({
      message: "CSR big.pem is larger than 16384 bytes",
    });
    await expect(readCsr("-", dir, Readable.from([Buffer.alloc(16 * 1024 + 1)]))).rejects.toMatchObject({
      message: "CSR on standard input is larger than 16384 bytes",
    });
    writeFileSync(join(dir, "key.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    await expect(readCsr("key.pem", dir)).rejects.toMatchObject({
      code: "WEFT_ERR_USAGE",
      message: expect.stringContaining("key.pem contains a private key"),
    });
  });
});

// --- the commands, in-process, against a stub of the CA endpoints ---

interface Seen {
  method: string;
  url: string;
  auth: string | undefined;
  body: unknown;
}

let stub: Server;
let addr: string;
let seen: Seen[] = [];
/** What the stub answers next for POST /v1/ca/sign. */
let signAnswer: { status: number; body: unknown } = { status: 200, body: signResponse() };
const ROTATE_OK: RotateResponse = { activeRootId: "root-2", previousRootId: "root-1", roots: ROTATED.roots };
const ROTATE_PENDING = {
  error: {
    code: "WEFT_ERR_CA_ROTATION_PENDING",
    message: "a root rotation is still in progress: root root-1 retires when its last leaf expires",
  },
};
let rotateAnswer: { status: number; body: unknown } = { status: 200, body: ROTATE_OK };
let work: string;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((done) => {
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      text += c;
    });
    req.on("end", () => done(text));
  });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "weft-ca-cmd-"));
  stub = createServer(async (req, res) => {
    const text = await readBody(req);
    seen.push({
      method: req.method ?? "",
      url: req.url ?? "",
      auth: req.headers.authorization,
      body: text ? JSON.parse(text) : undefined,
    });
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json", "x-weft-index": "7" });
      res.end(JSON.stringify(body));
    };
    if (req.method === "GET" && req.url === "/v1/ca/roots") return send(200, ROTATED);
    if (req.method === "POST" && req.url === "/v1/ca/sign") return send(signAnswer.status, signAnswer.body);
    if (req.method === "POST" && req.url === "/v1/ca/rotate")
      return send(rotateAnswer.status, rotateAnswer.body);
    send(404, { error: { code: "WEFT_ERR_ROUTE_NOT_FOUND", message: "no route" } });
  });
  await new Promise<void>((r) => stub.listen(0, "127.0.0.1", r));
  addr = `127.0.0.1:${(stub.address() as { port: number }).port}`;
  writeFileSync(join(work, "csr.pem"), CSR);
});

afterAll(async () => {
  await new Promise<void>((r) => stub.close(() => r()));
  rmSync(work, { recursive: true, force: true });
});

beforeEach(() => {
  seen = [];
  signAnswer = { status: 200, body: signResponse() };
  rotateAnswer = { status: 200, body: ROTATE_OK };
});

function weft(...args: string[]) {
  return runCaptured([...args, "--addr", addr, "--token", "s3cret"], work);
}

describe("weft ca (in-process, stub server)", () => {
  it("--help of each command has examples", async () => {
    for (const cmd of ["roots", "sign", "rotate"]) {
      const r = await weft("ca", cmd, "--help");
      expect(r.code).toBe(EXIT.OK);
      expect(r.out).toContain("Examples:");
    }
  });

  it("roots: table, --json, --pem; --json and --pem together are a usage error", async () => {
    const t = await weft("ca", "roots");
    expect(t.code).toBe(EXIT.OK);
    expect(t.out.split("\n")[0]).toBe("trust domain: weft.local");
    expect(t.out).toMatch(/^root-2\s+active\s/m);
    expect(seen[0]).toMatchObject({ method: "GET", url: "/v1/ca/roots", auth: "Bearer s3cret" });

    const j = await weft("ca", "roots", "--json");
    expect(JSON.parse(j.out)).toEqual(ROTATED);

    const p = await weft("ca", "roots", "--pem");
    expect(p.out).toBe(rootsPem(ROTATED));

    const both = await weft("ca", "roots", "--json", "--pem");
    expect(both.code).toBe(EXIT.USAGE);
    expect(both.err).toContain("(WEFT_ERR_USAGE)");
  });

  it("sign: sends the CSR, ttl and instance; the leaf goes to stdout, the summary to stderr", async () => {
    const r = await weft("ca", "sign", "--csr", "csr.pem", "--ttl", "1h", "--instance", "web-1");
    expect(r.err).toContain("signed spiffe://weft.local/ns/default/svc/web: serial 0a0b");
    expect(r.code).toBe(EXIT.OK);
    expect(r.out).toBe(signResponse().certificatePem);
    expect(seen).toEqual([
      {
        method: "POST",
        url: "/v1/ca/sign",
        auth: "Bearer s3cret",
        body: { csr: CSR, ttl: "1h", instanceId: "web-1" },
      },
    ]);
  });

  it("sign --out/--chain-out write files; --json prints the SignResponse", async () => {
    const chain = `${signResponse().certificatePem}-----BEGIN CERTIFICATE-----\nINTER\n-----END CERTIFICATE-----`;
    signAnswer = { status: 200, body: signResponse({ chainPem: chain }) };
    const r = await weft("ca", "sign", "--csr", "csr.pem", "--out", "leaf.pem", "--chain-out", "chain.pem");
    expect(r.code).toBe(EXIT.OK);
    expect(r.out).toBe("");
    expect(r.err).toContain("cross-signed intermediate");
    expect(readFileSync(join(work, "leaf.pem"), "utf8")).toBe(signResponse().certificatePem);
    expect(readFileSync(join(work, "chain.pem"), "utf8")).toBe(`${chain}\n`);
    expect(seen[0]?.body).toEqual({ csr: CSR });

    const j = await weft("ca", "sign", "--csr", "csr.pem", "--json");
    expect(j.code).toBe(EXIT.OK);
    expect(JSON.parse(j.out)).toEqual(signResponse({ chainPem: chain }));
  });

  it("sign: a missing CSR file or a bad --ttl/--instance is exit 2 before any request", async () => {
    const missing = await weft("ca", "sign", "--csr", "missing.pem");
    expect(missing.code).toBe(EXIT.USAGE);
    expect(missing.err).toBe(
      "error: cannot read CSR file missing.pem: no such file or directory (WEFT_ERR_USAGE)\n",
    );
    const ttl = await weft("ca", "sign", "--csr", "csr.pem", "--ttl", "soon");
    expect(ttl.code).toBe(EXIT.USAGE);
    expect(ttl.err).toMatch(/--ttl.*invalid duration "soon".*\(WEFT_ERR_USAGE\)/);
    const zero = await weft("ca", "sign", "--csr", "csr.pem", "--ttl", "0s");
    expect(zero.code).toBe(EXIT.USAGE);
    const inst = await weft("ca", "sign", "--csr", "csr.pem", "--instance", "-bad");
    expect(inst.code).toBe(EXIT.USAGE);
    expect((await weft("ca", "sign")).code).toBe(EXIT.USAGE);
    expect(seen).toEqual([]);
  });

  it("sign: a write failure is exit 2 naming the file", async () => {
    const r = await weft("ca", "sign", "--csr", "csr.pem", "--out", "no/such/dir/leaf.pem");
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.err).toContain("cannot write the certificate to no/such/dir/leaf.pem");
  });

  it("sign: the server's refusals keep their code; 403 is exit 4, 400 exit 2", async () => {
    signAnswer = {
      status: 403,
      body: {
        error: {
          code: "WEFT_ERR_IDENTITY_DENIED",
          message: 'token may not obtain an identity for service "api": needs service:api:write',
        },
      },
    };
    const denied = await weft("ca", "sign", "--csr", "csr.pem");
    expect(denied.code).toBe(EXIT.DENIED);
    expect(denied.out).toBe("");
    expect(denied.err).toBe(
      'error: token may not obtain an identity for service "api": needs service:api:write (WEFT_ERR_IDENTITY_DENIED)\n',
    );
    signAnswer = {
      status: 400,
      body: { error: { code: "WEFT_ERR_CSR_INVALID", message: "CSR refused: has 2 URI SANs" } },
    };
    const bad = await weft("ca", "sign", "--csr", "csr.pem");
    expect(bad.code).toBe(EXIT.USAGE);
    expect(bad.err).toContain("(WEFT_ERR_CSR_INVALID)");
  });

  it("rotate: the new and the retiring root; --json the RotateResponse", async () => {
    const r = await weft("ca", "rotate");
    expect(r.code).toBe(EXIT.OK);
    expect(r.out).toMatch(/^active root\s+root-2 /m);
    expect(r.out).toMatch(/^retiring root\s+root-1 \(3 leaves outstanding\)$/m);
    expect(r.out).toContain("when its last leaf expires or is replaced");
    expect(seen[0]).toMatchObject({ method: "POST", url: "/v1/ca/rotate", auth: "Bearer s3cret" });
    const j = await weft("ca", "rotate", "--json");
    expect(JSON.parse(j.out)).toEqual(ROTATE_OK);
  });

  it("rotate: a pending rotation (409) is exit 1 with the server's message", async () => {
    rotateAnswer = { status: 409, body: ROTATE_PENDING };
    const r = await weft("ca", "rotate");
    expect(r.code).toBe(EXIT.ERROR);
    expect(r.err).toMatch(
      /^error: a root rotation is still in progress.*\(WEFT_ERR_CA_ROTATION_PENDING\)\n$/,
    );
    expect(seen[0]).toMatchObject({ method: "POST", url: "/v1/ca/rotate" });
  });
});
