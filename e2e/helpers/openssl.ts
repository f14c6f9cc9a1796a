/**
 * The openssl binary for end-to-end tests: CSRs made by a client the CA
 * does not share code with, and `openssl verify` / `x509` on what it issues.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Runs the openssl binary in `dir` and returns its stdout. On a non-zero
 * exit it throws execFileSync's error: its stderr is in the message, and
 * `stdout` / `stderr` are on the error.
 */
export function openssl(dir: string, ...args: string[]): string {
  return execFileSync("openssl", args, { cwd: dir, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** `openssl req -newkey` arguments for a P-256 key (the default of `opensslCsr`). */
export const NEWKEY_P256 = ["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] as const;

export interface OpensslCsrOptions {
  /** The subject's CN. */
  cn: string;
  /** The subjectAltName extension value, e.g. `URI:spiffe://weft.local/ns/default/svc/web`. */
  san: string;
  /** `-newkey` and its options; P-256 by default. */
  newkey?: readonly string[];
}

export interface OpensslCsr {
  csrPath: string;
  keyPath: string;
  csrPem: string;
}

/** A fresh key and CSR from `openssl req`: writes `<name>.key` and `<name>.csr` in `dir`. */
export function opensslCsr(
  dir: string,
  name: string,
  { cn, san, newkey = NEWKEY_P256 }: OpensslCsrOptions,
): OpensslCsr {
  openssl(
    dir,
    "req",
    "-new",
    "-newkey",
    ...newkey,
    "-nodes",
    "-subj",
    `/CN=${cn}`,
    "-addext",
    `subjectAltName=${san}`,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
  );
  const csrPath = join(dir, `${name}.csr`);
  return { csrPath, keyPath: join(dir, `${name}.key`), csrPem: readFileSync(csrPath, "utf8") };
}
