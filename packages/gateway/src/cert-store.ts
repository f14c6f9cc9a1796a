/**
 * The serving certificates of an https listener, read from files and
 * reloaded when the files change, without a restart: new connections get
 * the new certificate, established ones keep theirs.
 *
 * Change detection: fs.watch on the files' directories (fast path; renames
 * over the file, as cert-manager and certbot do, are seen there) and a
 * periodic stat of every file (the backstop: watch events are not
 * guaranteed on every filesystem). A changed pair is loaded only when the
 * certificate and the key match (createSecureContext checks it), so a
 * half-written update (new cert, old key) keeps the previous pair until the
 * key follows. The first load is strict: an unreadable or mismatched pair
 * refuses to start the listener.
 *
 * SNI: an exact host entry first, then the longest wildcard ("*.example.com"),
 * then the default certificate.
 */

import { X509Certificate } from "node:crypto";
import { type FSWatcher, readFileSync, statSync, watch } from "node:fs";
import { dirname } from "node:path";
import { createSecureContext, type SecureContext, type Server as TlsServer } from "node:tls";
import { describeError, weftError } from "@weft/core";
import { hostMatches } from "./route-match.js";

export interface CertPair {
  certFile: string;
  keyFile: string;
}

export interface ServingTls extends CertPair {
  sni?: readonly ({ hosts: readonly string[] } & CertPair)[] | undefined;
  minVersion: "TLSv1.2" | "TLSv1.3";
}

export interface CertLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

interface Loaded {
  pair: CertPair;
  hosts: readonly string[];
  stamp: string;
  cert: Buffer;
  key: Buffer;
  context: SecureContext;
  subject: string;
}

function stampOf(pair: CertPair): string {
  const parts: string[] = [];
  for (const f of [pair.certFile, pair.keyFile]) {
    const s = statSync(f);
    parts.push(`${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`);
  }
  return parts.join("|");
}

export class CertStore {
  private entries: Loaded[] = [];
  private server: TlsServer | undefined;
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private pending: NodeJS.Timeout | undefined;
  /** Successful reloads after the first load. */
  reloads = 0;

  constructor(
    private readonly cfg: ServingTls,
    private readonly o: { logger?: CertLogger; pollMs?: number } = {},
  ) {
    const pairs = [
      { pair: cfg as CertPair, hosts: [] as readonly string[] },
      ...(cfg.sni ?? []).map((s) => ({ pair: s as CertPair, hosts: s.hosts })),
    ];
    for (const { pair, hosts } of pairs) {
      try {
        this.entries.push(this.load(pair, hosts));
      } catch (e) {
        throw weftError(
          "WEFT_ERR_USAGE",
          { detail: `tls certificate ${pair.certFile} / key ${pair.keyFile}: ${describeError(e)}` },
          { cause: e },
        );
      }
    }
  }

  private load(pair: CertPair, hosts: readonly string[]): Loaded {
    const stamp = stampOf(pair);
    const cert = readFileSync(pair.certFile);
    const key = readFileSync(pair.keyFile);
    // Throws on a key that does not match the certificate, or anything unparsable.
    const context = createSecureContext({ cert, key, minVersion: this.cfg.minVersion });
    const subject = new X509Certificate(cert).subject;
    return { pair, hosts, stamp, cert, key, context, subject };
  }

  /** Options for tls.createServer: the default pair, and SNI selection. */
  serverOptions(): {
    cert: Buffer;
    key: Buffer;
    minVersion: "TLSv1.2" | "TLSv1.3";
    SNICallback: (name: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;
  } {
    const d = this.entries[0] as Loaded;
    return {
      cert: d.cert,
      key: d.key,
      minVersion: this.cfg.minVersion,
      SNICallback: (name, cb) => cb(null, this.contextFor(name)),
    };
  }

  contextFor(servername: string): SecureContext {
    const host = servername.toLowerCase();
    let best: Loaded | undefined;
    let bestScore = -1;
    for (let i = 1; i < this.entries.length; i++) {
      const e = this.entries[i] as Loaded;
      for (const h of e.hosts) {
        if (!hostMatches(h, host)) continue;
        // Exact beats wildcard; a longer wildcard beats a shorter one; "*" last.
        const score = h === host ? 100_000 : h === "*" ? 0 : h.length;
        if (score > bestScore) {
          best = e;
          bestScore = score;
        }
      }
    }
    return (best ?? (this.entries[0] as Loaded)).context;
  }

  /** The subject of the certificate served for `servername` (tests, logs). */
  subjectFor(servername: string | undefined): string {
    const ctx = servername ? this.contextFor(servername) : (this.entries[0] as Loaded).context;
    return this.entries.find((e) => e.context === ctx)?.subject ?? "";
  }

  /** Watches the files; the default pair is swapped on `server` with setSecureContext. */
  start(server: TlsServer): void {
    this.server = server;
    const dirs = new Set<string>();
    for (const e of this.entries) {
      dirs.add(dirname(e.pair.certFile));
      dirs.add(dirname(e.pair.keyFile));
    }
    for (const dir of dirs) {
      try {
        const w = watch(dir, { persistent: false }, () => this.soon());
        w.on("error", () => {});
        this.watchers.push(w);
      } catch {
        // The periodic check still runs.
      }
    }
    this.timer = setInterval(() => this.check(), this.o.pollMs ?? 2_000);
    this.timer.unref();
  }

  /** Coalesces a burst of watch events (a cert and a key written one after the other). */
  private soon(): void {
    if (this.pending !== undefined) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.check();
    }, 100);
    this.pending.unref();
  }

  /** Reloads every pair whose files changed; a bad pair keeps the previous one. */
  check(): void {
    this.entries = this.entries.map((e, i) => {
      let stamp: string;
      try {
        stamp = stampOf(e.pair);
      } catch {
        return e;
      }
      if (stamp === e.stamp) return e;
      try {
        const next = this.load(e.pair, e.hosts);
        this.reloads++;
        if (i === 0) {
          this.server?.setSecureContext({ cert: next.cert, key: next.key, minVersion: this.cfg.minVersion });
        }
        this.o.logger?.info({ certFile: e.pair.certFile, subject: next.subject }, "tls certificate reloaded");
        return next;
      } catch (err) {
        this.o.logger?.warn(
          { certFile: e.pair.certFile, err: describeError(err) },
          "tls certificate change not loaded; serving the previous one",
        );
        return e;
      }
    });
  }

  dispose(): void {
    for (const w of this.watchers.splice(0)) w.close();
    if (this.timer) clearInterval(this.timer);
    if (this.pending) clearTimeout(this.pending);
  }
}
