/**
 * The control plane's built-in CA: `weft ca roots` (the trust bundle),
 * `weft ca sign` (a leaf certificate for a CSR) and `weft ca rotate` (a new
 * root, cross-signed by the current one). The wire contract is
 * packages/api/src/ca.ts; the endpoints are in docs/api.md.
 *
 * The pure helpers (time left, short serials and fingerprints, the tables)
 * are exported for tests and for `weft instances`' CERT EXPIRES column.
 */
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import {
  type CaRoot,
  type CaRootsResponse,
  type InstanceCertificate,
  instanceIdSchema,
  MAX_CSR_PEM_BYTES,
  type RotateResponse,
  type SignResponse,
} from "@weft/api";
import { parseDuration, WeftError } from "@weft/core";
import { type Command, InvalidArgumentError, Option } from "commander";
import { type ClientFlags, clientFrom, withClientOptions } from "../client-options.js";
import { errnoDetail, usage } from "../files.js";
import type { Io } from "../io.js";
import { type Color, json, paint, table, useColor } from "../output.js";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const YEAR = 365 * DAY;

const UNITS = [
  ["y", YEAR],
  ["d", DAY],
  ["h", HOUR],
  ["m", MINUTE],
  ["s", SECOND],
] as const;

/**
 * A time left for people: the two largest units, rounded down so it never
 * promises more than there is: "9y 364d", "23h 59m", "1d 0h", "45s".
 * "expired" at or below zero, "<1s" below a second.
 */
export function humanTimeLeft(ms: number): string {
  if (Number.isNaN(ms)) return "?";
  if (ms <= 0) return "expired";
  if (ms < SECOND) return "<1s";
  let rest = ms;
  const parts: string[] = [];
  for (const [unit, size] of UNITS) {
    if (parts.length === 0 && rest < size) continue;
    parts.push(`${Math.floor(rest / size)}${unit}`);
    rest %= size;
    if (parts.length === 2) break;
  }
  return parts.join(" ");
}

/** Time left until an ISO timestamp; "?" when it does not parse. */
export function timeLeft(notAfter: string, now: number): string {
  return humanTimeLeft(Date.parse(notAfter) - now);
}

/** The CERT EXPIRES cell of `weft instances`: time left, "expired", or "-" without a certificate. */
export function certExpiresCell(cert: InstanceCertificate | undefined, now: number, color: boolean): string {
  if (cert === undefined) return "-";
  const left = timeLeft(cert.notAfter, now);
  return left === "expired" ? paint(left, "red", color) : left;
}

/** An ISO timestamp to the second ("2035-01-02T03:04:05Z"); as given when it does not parse. */
export function isoSeconds(iso: string): string {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : new Date(t).toISOString().replace(/\.\d{3}Z$/, "Z");
}

const SERIAL_CHARS = 12;
const FINGERPRINT_BYTES = 6;

/** The first 12 characters of a serial number, without separators (like a short git hash). */
export function shortSerial(serial: string): string {
  return serial.replace(/:/g, "").slice(0, SERIAL_CHARS);
}

/** The first 6 bytes of a colon-separated fingerprint: enough to tell roots apart at a glance. */
export function shortFingerprint(fingerprint: string): string {
  return fingerprint.split(":").slice(0, FINGERPRINT_BYTES).join(":");
}

const STATE_COLOR: Record<CaRoot["state"], Color> = { active: "green", retiring: "yellow" };

/** Active root first, then retiring ones, newest first. */
function byState(a: CaRoot, b: CaRoot): number {
  if (a.state !== b.state) return a.state === "active" ? -1 : 1;
  return Date.parse(b.notAfter) - Date.parse(a.notAfter);
}

/** `weft ca roots`: a "trust domain: X" line, then one row per root. */
export function rootsTable(r: CaRootsResponse, now: number, color: boolean): string {
  const rows = [...r.roots]
    .sort(byState)
    .map((root) => [
      root.id,
      paint(root.state, STATE_COLOR[root.state] ?? "dim", color),
      shortSerial(root.serialNumber),
      isoSeconds(root.notAfter),
      timeLeft(root.notAfter, now),
      String(root.leavesOutstanding),
      shortFingerprint(root.fingerprintSha256),
    ]);
  return (
    `trust domain: ${r.trustDomain}\n` +
    table(["ID", "STATE", "SERIAL", "NOT AFTER", "EXPIRES IN", "LEAVES", "FINGERPRINT"], rows)
  );
}

/** Every root's PEM, active first, one after the other: a CA file for `openssl verify -CAfile`. */
export function rootsPem(r: CaRootsResponse): string {
  return [...r.roots]
    .sort(byState)
    .map((root) => withNewline(root.certificatePem))
    .join("");
}

function leaves(n: number): string {
  return `${n} ${n === 1 ? "leaf" : "leaves"}`;
}

/** `weft ca rotate`: the new active root, the retiring one, and when it goes. */
export function rotateSummary(r: RotateResponse, now: number): string {
  const active = r.roots.find((x) => x.id === r.activeRootId);
  const previous = r.roots.find((x) => x.id === r.previousRootId);
  const lines = [
    table(
      ["FIELD", "VALUE"],
      [
        [
          "active root",
          active
            ? `${active.id} (fingerprint ${shortFingerprint(active.fingerprintSha256)}, expires in ${timeLeft(active.notAfter, now)})`
            : r.activeRootId,
        ],
        [
          "retiring root",
          previous
            ? `${previous.id} (${leaves(previous.leavesOutstanding)} outstanding)`
            : `${r.previousRootId} (no leaves outstanding; already removed from the trust bundle)`,
        ],
      ],
    ).replace(/^FIELD.*\n/, ""),
  ];
  if (previous) {
    lines.push(
      `New leaves are signed by ${r.activeRootId}.\n` +
        `Root ${r.previousRootId} retires when its last leaf expires or is replaced;\n` +
        "it stays in the trust bundle until then, and another rotation is refused.\n",
    );
  }
  return lines.join("");
}

/** What `weft ca sign` says on stderr about the leaf it got. */
export function signSummary(r: SignResponse, now: number): string {
  const chained = countCertificates(r.chainPem) > 1 ? " (chain includes the cross-signed intermediate)" : "";
  return (
    `signed ${r.spiffeId}: serial ${r.serialNumber}, root ${r.rootId}, ` +
    `expires ${isoSeconds(r.notAfter)} (in ${timeLeft(r.notAfter, now)})${chained}\n`
  );
}

function countCertificates(pem: string): number {
  return (pem.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length;
}

function withNewline(s: string): string {
  return s.endsWith("\n") ? s : `${s}\n`;
}

function checkCsrText(text: string, name: string): string {
  if (text.trim().length === 0) throw usage(`CSR ${name} is empty`);
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    throw usage(
      `${name} contains a private key, which is never sent: pass the CSR (-----BEGIN CERTIFICATE REQUEST-----)`,
    );
  }
  return text;
}

async function readLimited(stream: NodeJS.ReadableStream, limit: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
    size += b.length;
    if (size > limit) return undefined;
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * The CSR `--csr PATH` names (relative to `cwd`), or standard input for
 * `-`. A missing or unreadable file, an empty one, one over the API's 16 KiB
 * bound or one holding a private key is a usage error naming it.
 */
export async function readCsr(
  path: string,
  cwd: string,
  stdin: NodeJS.ReadableStream = process.stdin,
): Promise<string> {
  const tooBig = (name: string) => usage(`CSR ${name} is larger than ${MAX_CSR_PEM_BYTES} bytes`);
  if (path === "-") {
    const text = await readLimited(stdin, MAX_CSR_PEM_BYTES);
    if (text === undefined) throw tooBig("on standard input");
    return checkCsrText(text, "on standard input");
  }
  const file = resolve(cwd, path);
  let text: string;
  try {
    const st = statSync(file);
    if (st.isFile() && st.size > MAX_CSR_PEM_BYTES) throw tooBig(path);
    text = readFileSync(file, "utf8");
  } catch (e) {
    if (e instanceof WeftError) throw e;
    throw usage(`cannot read CSR file ${path}: ${errnoDetail(e)}`);
  }
  if (Buffer.byteLength(text) > MAX_CSR_PEM_BYTES) throw tooBig(path);
  return checkCsrText(text, path);
}

function writeOutput(path: string, cwd: string, text: string, what: string): void {
  try {
    writeFileSync(resolve(cwd, path), text, { mode: 0o644 });
  } catch (e) {
    throw usage(`cannot write the ${what} to ${path}: ${errnoDetail(e)}`);
  }
}

function ttlArg(value: string): string {
  const r = parseDuration(value);
  if (!r.ok) throw new InvalidArgumentError(r.error);
  if (r.ms < 1000) throw new InvalidArgumentError("must be at least 1s (the CA refuses shorter)");
  return value;
}

function instanceArg(value: string): string {
  const r = instanceIdSchema.safeParse(value);
  if (!r.success) throw new InvalidArgumentError(r.error.issues[0]?.message ?? "invalid instance id");
  return value;
}

interface SignFlags extends ClientFlags {
  csr: string;
  ttl?: string;
  instance?: string;
  out?: string;
  chainOut?: string;
  json?: boolean;
}

export function registerCaCommands(program: Command, io: Io): void {
  const ca = program
    .command("ca")
    .summary("the built-in CA: trust bundle, signing, rotation")
    .description(
      "The control plane's certificate authority. Workload certificates carry the\n" +
        "SPIFFE ID spiffe://<trust-domain>/ns/default/svc/<service> and chain to the\n" +
        "roots of the trust bundle.",
    );

  withClientOptions(
    ca
      .command("roots")
      .summary("show the trust bundle")
      .description(
        "Show the CA's roots: the active one (signs new leaves) and, after a rotation,\n" +
          "the retiring one (kept until its last leaf expires or is replaced).\n" +
          "Any valid token may read the trust bundle.",
      )
      .addOption(new Option("--json", "print the CaRootsResponse as JSON"))
      .addOption(
        new Option("--pem", "print every root's certificate (PEM), for openssl verify -CAfile").conflicts(
          "json",
        ),
      ),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft ca roots\n  $ weft ca roots --pem > roots.pem && openssl verify -CAfile roots.pem leaf.pem\n  $ weft ca roots --json | jq -r .activeRootId\n",
    )
    .action(async (opts: ClientFlags & { json?: boolean; pem?: boolean }) => {
      const r = await clientFrom(opts, io.cwd).caRoots();
      if (opts.json) {
        io.out.write(json(r));
        return;
      }
      if (opts.pem) {
        io.out.write(rootsPem(r));
        return;
      }
      io.out.write(rootsTable(r, Date.now(), useColor(io.out)));
    });

  withClientOptions(
    ca
      .command("sign")
      .summary("get a leaf certificate for a CSR")
      .description(
        "Send a PKCS#10 CSR (PEM) to the CA and write the signed leaf. The CSR must\n" +
          "carry exactly one URI SAN, spiffe://<trust-domain>/ns/default/svc/<service>,\n" +
          "and the token needs service:<service>:write (or operator). The private key\n" +
          "stays here: only the CSR is sent.",
      )
      .requiredOption("--csr <file>", "the CSR in PEM ('-' reads standard input)")
      .option(
        "--ttl <duration>",
        "requested lifetime, e.g. 1h (default: the mesh's certificates.leafTtl)",
        ttlArg,
      )
      .option(
        "--instance <id>",
        "the catalog instance the certificate is for (shown by weft instances)",
        instanceArg,
      )
      .option("--out <file>", "write the leaf (PEM) here instead of standard output")
      .option("--chain-out <file>", "also write the chain to present (leaf, then any intermediate)")
      .option("--json", "print the whole SignResponse as JSON"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  $ openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=web \\\n" +
        '      -addext "subjectAltName=URI:spiffe://weft.local/ns/default/svc/web" -keyout key.pem -out csr.pem\n' +
        "  $ weft ca sign --csr csr.pem --instance web-1 --out leaf.pem --chain-out chain.pem\n" +
        "  $ weft ca sign --csr - --ttl 1h < csr.pem > leaf.pem\n",
    )
    .action(async (opts: SignFlags) => {
      const csr = await readCsr(opts.csr, io.cwd);
      const r = await clientFrom(opts, io.cwd).caSign({
        csr,
        ...(opts.ttl !== undefined ? { ttl: opts.ttl } : {}),
        ...(opts.instance !== undefined ? { instanceId: opts.instance } : {}),
      });
      if (opts.out !== undefined) writeOutput(opts.out, io.cwd, withNewline(r.certificatePem), "certificate");
      if (opts.chainOut !== undefined) writeOutput(opts.chainOut, io.cwd, withNewline(r.chainPem), "chain");
      if (opts.json) {
        io.out.write(json(r));
        return;
      }
      if (opts.out === undefined) io.out.write(withNewline(r.certificatePem));
      io.err.write(signSummary(r, Date.now()));
    });

  withClientOptions(
    ca
      .command("rotate")
      .summary("replace the active root")
      .description(
        "Generate a new root, cross-signed by the current one; new leaves come from the\n" +
          "new root. The old root stays in the trust bundle (retiring) until every leaf it\n" +
          "signed has expired or been replaced, then it is removed; another rotation is\n" +
          "refused until then. Needs an operator token.",
      )
      .option("--json", "print the RotateResponse as JSON"),
  )
    .addHelpText(
      "after",
      "\nExamples:\n  $ weft ca rotate\n  $ weft ca rotate --json | jq -r .activeRootId\n",
    )
    .action(async (opts: ClientFlags & { json?: boolean }) => {
      const r = await clientFrom(opts, io.cwd).caRotate();
      if (opts.json) {
        io.out.write(json(r));
        return;
      }
      io.out.write(rotateSummary(r, Date.now()));
    });
}
