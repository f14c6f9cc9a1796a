import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import https from "node:https";
import net, { type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TlsOriginator } from "./terminating-gateway.js";

const logger = { info: () => {}, warn: () => {} };
let dir: string;
let server: https.Server;
let port: number;
let seen = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "weft-tlsorig-"));
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      "k.pem",
      "-out",
      "c.pem",
      "-subj",
      "/CN=ext.test",
      "-days",
      "1",
      "-addext",
      "subjectAltName=DNS:ext.test",
    ],
    { cwd: dir, stdio: "ignore" },
  );
  server = https.createServer(
    { cert: readFileSync(join(dir, "c.pem")), key: readFileSync(join(dir, "k.pem")) },
    (req, res) => {
      seen++;
      res.end(`tls ${req.url}`);
    },
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

function plainGet(localPort: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(localPort, "127.0.0.1", () =>
      s.write("GET /x HTTP/1.1\r\nHost: ext.test\r\nConnection: close\r\n\r\n"),
    );
    let raw = "";
    s.on("data", (c) => {
      raw += c;
    });
    s.on("close", () => resolve(raw));
    s.on("error", () => resolve(raw));
  });
}

const ext = (sni: string) => ({
  name: "ext",
  host: "127.0.0.1",
  port: 0,
  tls: { sni, caFile: join(dir, "c.pem") },
  connectTimeout: 2000,
});

describe("TlsOriginator", () => {
  it("originates verified TLS to the external service", async () => {
    const o = new TlsOriginator({ ...ext("ext.test"), port }, logger);
    const local = await o.listen();
    expect(await plainGet(local)).toMatch(/^HTTP\/1\.1 200[\s\S]*tls \/x$/);
    await o.close();
  });

  it("refuses a server whose certificate does not name the SNI host: nothing is sent", async () => {
    const before = seen;
    const o = new TlsOriginator({ ...ext("other.test"), port }, logger);
    const local = await o.listen();
    expect(await plainGet(local)).toBe("");
    expect(seen).toBe(before);
    await o.close();
  });
});
