// Certificates for the HAProxy pair from Weft's own CA: `openssl req` makes
// an ECDSA P-256 key and a CSR with one URI SAN (the SPIFFE ID of the
// service), a running `weft server` signs it (POST /v1/ca/sign through
// WeftClient.caSign), and the files HAProxy wants are written:
//   <dir>/<service>.pem  the chain then the private key (HAProxy `crt`)
//   <dir>/roots.pem      every root of the trust bundle (HAProxy `ca-file`)
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** -> {crt, ca, spiffeId, notAfter} (file paths). */
export async function issueFromWeftCa(client, dir, service, trustDomain) {
  const key = join(dir, `${service}.key`);
  const csr = join(dir, `${service}.csr`);
  const spiffeId = `spiffe://${trustDomain}/ns/default/svc/${service}`;
  execFileSync(
    "openssl",
    [
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      key,
      "-subj",
      `/CN=${service}`,
      "-addext",
      `subjectAltName=URI:${spiffeId}`,
      "-out",
      csr,
    ],
    { stdio: ["ignore", "ignore", "pipe"], timeout: 30_000 },
  );
  const signed = await client.caSign({ csr: readFileSync(csr, "utf8"), ttl: "24h" });
  const crt = join(dir, `${service}.pem`);
  writeFileSync(crt, `${signed.chainPem.trim()}\n${readFileSync(key, "utf8")}`, { mode: 0o600 });
  const ca = join(dir, "roots.pem");
  writeFileSync(ca, `${signed.rootsPem.map((p) => p.trim()).join("\n")}\n`);
  return { crt, ca, spiffeId: signed.spiffeId, notAfter: signed.notAfter };
}
