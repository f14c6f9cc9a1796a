/**
 * Reading `-f FILE|DIR` for `apply` and `validate`: a file as given, or the
 * *.yaml / *.yml / *.json files directly in a directory (sorted by name, not
 * recursive). The files are validated locally, as one set, with the api
 * package's `validateFiles`, which renders errors as `file:line:col: Kind "name": path:
 * message`, before anything is sent anywhere.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseDocuments, type Resource, validateFiles } from "@weft/api";
import { WeftError } from "@weft/core";

const EXTENSIONS = /\.(ya?ml|json)$/i;

export interface SourceFile {
  path: string;
  text: string;
}

export interface LoadResult {
  files: string[];
  /** The documents as written (not defaulted or normalised): what `apply` sends. */
  documents: unknown[];
  /** Number of resources validateFile accepted. */
  valid: number;
  /** Rendered errors, in file order. */
  errors: string[];
}

/** A usage error (exit 2) with `detail` as its message. */
export function usage(detail: string): WeftError {
  return new WeftError("WEFT_ERR_USAGE", { detail });
}

/** A file-system error as a short phrase ("no such file or directory"). */
export function errnoDetail(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  if (code === "ENOENT") return "no such file or directory";
  if (code === "EACCES") return "permission denied";
  if (code === "EISDIR") return "is a directory";
  return e instanceof Error ? e.message : String(e);
}

/** The files `-f PATH` names, in the order they are read. */
export function listFiles(path: string): string[] {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    throw usage(`cannot read ${path}: ${errnoDetail(e)}`);
  }
  if (!st.isDirectory()) return [path];
  const names = readdirSync(path)
    .filter((n) => EXTENSIONS.test(n))
    .sort();
  const files = names.map((n) => join(path, n)).filter((p) => statSync(p).isFile());
  if (files.length === 0) throw usage(`no *.yaml, *.yml or *.json files in directory ${path}`);
  return files;
}

export function readSources(path: string): SourceFile[] {
  return listFiles(path).map((p) => {
    try {
      return { path: p, text: readFileSync(p, "utf8") };
    } catch (e) {
      throw usage(`cannot read ${p}: ${errnoDetail(e)}`);
    }
  });
}

/**
 * The documents as written, for sending: the server validates and defaults
 * them itself, and stores them as applied. Only called on valid files.
 */
function rawDocuments(text: string): unknown[] {
  return parseDocuments(text).documents.map((d) => d.value);
}

/**
 * Reads and validates every file under `path` as one set (so a directory's
 * files may refer to each other, and port collisions across files are
 * caught); never contacts a server. `existing`: resources already stored,
 * which the files may refer to (a Split naming the subsets of a stored Resolver).
 */
export function loadResources(path: string, existing: readonly Resource[] = []): LoadResult {
  const sources = readSources(path);
  const r = validateFiles(
    sources.map((s) => ({ text: s.text, fileName: s.path })),
    { existing },
  );
  const out: LoadResult = {
    files: sources.map((s) => s.path),
    documents: [],
    valid: r.errors.length === 0 ? r.resources.length : 0,
    errors: r.errors.map((e) => e.text),
  };
  if (r.errors.length === 0) for (const src of sources) out.documents.push(...rawDocuments(src.text));
  return out;
}
