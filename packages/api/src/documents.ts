/**
 * Reads a YAML or JSON text holding one or many documents (separated by
 * `---`) into plain values, keeping where each came from so that an error in
 * a field can be reported at its line and column.
 *
 * Config is input (HARDENING.md): texts over MAX_TEXT_BYTES, more than
 * MAX_DOCUMENTS documents, alias expansion beyond MAX_ALIAS_COUNT (the
 * "billion laughs"), duplicate keys, unresolved tags and malformed YAML are
 * errors with a position, never an exception.
 */
import {
  type Document,
  isAlias,
  isMap,
  isNode,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseAllDocuments,
  visit,
} from "yaml";

export const MAX_TEXT_BYTES = 4 * 1024 * 1024;
export const MAX_DOCUMENTS = 1000;
/** How many nodes alias expansion may produce per document (yaml's own guard against exponential growth). */
export const MAX_ALIAS_COUNT = 100;
/**
 * Deepest nesting accepted (block levels, compact `- - -` and flow `[[[`
 * together). yaml composes nodes recursively: a few hundred levels exhaust
 * the stack and some deep forms cost seconds, while config needs about ten.
 */
export const MAX_DEPTH = 64;
/**
 * Most collection entries accepted in one text (estimated from indicators:
 * `-`, `:`, `,`, `[`, `{`). yaml builds a few microseconds' worth of objects per
 * node, so this, not the byte limit, is what bounds parse time (~1 s).
 */
export const MAX_NODES = 250_000;

/** 1-based line and column. */
export interface SourcePosition {
  line: number;
  column: number;
}

export interface SourceDocument {
  /** 0-based position of the document in the stream. */
  index: number;
  /** Where the document's content starts. */
  line: number;
  column: number;
  /** The document as a plain value (mappings are plain objects). */
  value: unknown;
  /**
   * Where the field at `path` is written: the key for a mapping entry, the
   * item for a list entry; the nearest enclosing node when the field is
   * absent (a missing required field points at its parent).
   */
  locate(path: readonly (string | number)[]): SourcePosition;
}

export interface SourceError extends SourcePosition {
  /** The document it belongs to, when known. */
  index?: number;
  message: string;
}

export interface ParsedText {
  documents: SourceDocument[];
  errors: SourceError[];
}

/** UTF-8 length of `text`, counted only as far as needed to know it exceeds `limit`. No Buffer: api also runs in the browser. */
function utf8Length(text: string, limit: number): number {
  if (text.length > limit) return text.length; // every UTF-16 unit is at least one byte
  if (text.length * 3 <= limit) return text.length; // at most three bytes per unit
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c <= 0xdfff ? 2 : 3; // each half of a surrogate pair: 2 + 2
  }
  return bytes;
}

function describe(e: unknown): string {
  if (e instanceof RangeError && /call stack/i.test(e.message)) return "document is nested too deeply";
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Parses every document of a YAML (or JSON) text. Never throws. */
export function parseDocuments(text: string): ParsedText {
  const documents: SourceDocument[] = [];
  const errors: SourceError[] = [];
  if (typeof text !== "string") {
    return { documents, errors: [{ line: 1, column: 1, message: "expected text" }] };
  }
  const bytes = utf8Length(text, MAX_TEXT_BYTES);
  if (bytes > MAX_TEXT_BYTES) {
    errors.push({
      line: 1,
      column: 1,
      message: `file is larger than ${MAX_TEXT_BYTES} bytes (4 MiB)`,
    });
    return { documents, errors };
  }
  // Cheap bound before building any document: each document past the first starts with `---`.
  const separators = text.match(/^---/gm)?.length ?? 0;
  if (separators > MAX_DOCUMENTS) {
    errors.push({ line: 1, column: 1, message: `more than ${MAX_DOCUMENTS} documents in one file` });
    return { documents, errors };
  }

  const refused = prescan(text, MAX_DEPTH, MAX_NODES);
  if (refused) {
    errors.push(refused);
    return { documents, errors };
  }

  const lineCounter = new LineCounter();
  const pos = (offset: number): SourcePosition => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, column: p.col };
  };

  let docs: Document.Parsed[];
  try {
    const parsed = parseAllDocuments(text, {
      lineCounter,
      prettyErrors: false,
      // yaml's own duplicate-key check is quadratic in a mapping's size; checkKeys below is linear.
      uniqueKeys: false,
      strict: true,
      version: "1.2",
      schema: "core",
    });
    docs = Array.isArray(parsed) ? parsed : [];
  } catch (e) {
    errors.push({ line: 1, column: 1, message: `cannot parse: ${describe(e)}` });
    return { documents, errors };
  }
  if (docs.length > MAX_DOCUMENTS) {
    errors.push({ line: 1, column: 1, message: `more than ${MAX_DOCUMENTS} documents in one file` });
    return { documents, errors };
  }

  docs.forEach((doc, index) => {
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) {
      for (const p of problems) {
        const at = pos(p.pos[0]);
        errors.push({ ...at, index, message: p.message });
      }
      return;
    }
    const keyProblem = checkKeys(doc);
    if (keyProblem) {
      errors.push({ ...pos(keyProblem.offset), index, message: keyProblem.message });
      return;
    }
    const contents = doc.contents;
    if (contents === null || (isScalar(contents) && contents.value === null && !contents.source)) {
      return; // an empty document (a trailing `---`, only comments)
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (e) {
      const at = contents.range ? pos(contents.range[0]) : { line: 1, column: 1 };
      const msg =
        e instanceof ReferenceError && /alias/i.test(e.message)
          ? `too many alias expansions (more than ${MAX_ALIAS_COUNT}); refusing a possible alias bomb`
          : describe(e);
      errors.push({ ...at, index, message: msg });
      return;
    }
    const start = contents.range ? pos(contents.range[0]) : { line: 1, column: 1 };
    documents.push({
      index,
      line: start.line,
      column: start.column,
      value,
      locate: (path) => locateIn(doc, path, pos, start),
    });
  });
  return { documents, errors };
}

/** Keys must be scalars (no `[a]: b`), unique within their mapping. Linear in the document's size. */
function checkKeys(doc: Document.Parsed): { offset: number; message: string } | undefined {
  let problem: { offset: number; message: string } | undefined;
  visit(doc, {
    Map(_, map) {
      const seen = new Set<string>();
      for (const pair of map.items) {
        const key = pair.key;
        const offset = (isNode(key) ? key.range?.[0] : undefined) ?? map.range?.[0] ?? 0;
        if (!isScalar(key)) {
          problem = { offset, message: "mapping keys must be plain scalars" };
          return visit.BREAK;
        }
        const text = String(key.value);
        if (seen.has(text)) {
          problem = {
            offset,
            message: `duplicate key ${JSON.stringify(text.slice(0, 64))}: map keys must be unique`,
          };
          return visit.BREAK;
        }
        seen.add(text);
      }
      return undefined;
    },
  });
  return problem;
}

function locateIn(
  doc: Document.Parsed,
  path: readonly (string | number)[],
  pos: (offset: number) => SourcePosition,
  fallback: SourcePosition,
): SourcePosition {
  try {
    let node: unknown = doc.contents;
    let best: SourcePosition = fallback;
    const at = (n: unknown): SourcePosition | undefined => {
      const range = isNode(n) ? (n as Node).range : undefined;
      return range ? pos(range[0]) : undefined;
    };
    for (const segment of path) {
      if (isAlias(node)) node = node.resolve(doc);
      if (isMap(node)) {
        const pair = node.items.find((it) => isPair(it) && keyText(it.key) === String(segment));
        if (!pair) return best;
        best = at(pair.key) ?? at(pair.value) ?? best;
        node = pair.value;
      } else if (isSeq(node) && typeof segment === "number") {
        const item = node.items[segment];
        if (item === undefined) return best;
        best = at(item) ?? best;
        node = item;
      } else {
        return best;
      }
    }
    return best;
  } catch {
    return fallback;
  }
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  return undefined;
}

/**
 * A linear pre-scan bounding how deeply the text can nest before yaml (whose
 * composer recurses) sees it: block levels (an indentation stack), compact
 * indicators on a line (`- - - x`), and flow collections (`[[[`, `{{{`).
 * Brackets and dashes count only where YAML reads them as indicators (at a
 * token start), quoted scalars and comments are skipped, so regular
 * expressions in plain scalars are not miscounted. The estimate errs high by
 * a level or two, far below the limit for real config. Also refuses `?`
 * complex keys: config never needs them and yaml handles deep ones slowly.
 */
function prescan(
  text: string,
  maxDepth: number,
  maxNodes: number,
): (SourcePosition & { message: string }) | undefined {
  let flow = 0;
  let nodes = 0;
  let line = 1;
  let lineStart = 0;
  const indents: number[] = [];
  let onLine = 0; // compact indicators on this line
  let atLineStart = true;
  let tokenStart = true; // after start of line, whitespace, ":", "-", ",", "[", "{"
  const tooDeep = (i: number) => ({
    line,
    column: i - lineStart + 1,
    message: `nested deeper than ${maxDepth} levels`,
  });
  const tooMany = (i: number) => ({
    line,
    column: i - lineStart + 1,
    message: `more than ${maxNodes} values in one file`,
  });
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 /* \n */) {
      line++;
      lineStart = i + 1;
      tokenStart = true;
      atLineStart = true;
      onLine = 0;
      continue;
    }
    if (c === 32 || c === 9 || c === 13) {
      tokenStart = true;
      continue;
    }
    if (tokenStart && c === 35 /* # */) {
      while (i + 1 < text.length && text.charCodeAt(i + 1) !== 10) i++;
      continue;
    }
    if (atLineStart) {
      atLineStart = false;
      if (flow === 0) {
        const indent = i - lineStart;
        while (indents.length > 0 && (indents[indents.length - 1] as number) >= indent) indents.pop();
        indents.push(indent);
      }
    }
    if (tokenStart && (c === 34 /* " */ || c === 39) /* ' */) {
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 10) {
          line++;
          lineStart = i + 1;
        } else if (c === 34 && d === 92 /* \ */) {
          i++;
        } else if (d === c) {
          if (c === 39 && text.charCodeAt(i + 1) === 39) i++;
          else break;
        }
      }
      tokenStart = false;
      continue;
    }
    const next = text.charCodeAt(i + 1);
    const spaceNext = Number.isNaN(next) || next === 32 || next === 9 || next === 10 || next === 13;
    if (tokenStart && c === 63 /* ? */ && spaceNext && flow === 0) {
      return { line, column: i - lineStart + 1, message: "complex mapping keys (`? `) are not supported" };
    }
    if (tokenStart && c === 45 /* - */ && spaceNext) {
      if (++nodes > maxNodes) return tooMany(i);
      onLine++;
      if (indents.length + onLine + flow > maxDepth) return tooDeep(i);
      continue;
    }
    if (tokenStart && (c === 91 /* [ */ || c === 123) /* { */) {
      if (++nodes > maxNodes) return tooMany(i);
      flow++;
      if (indents.length + onLine + flow > maxDepth) return tooDeep(i);
      continue; // still at a token start
    }
    if (flow > 0 && (c === 93 /* ] */ || c === 125) /* } */) {
      flow--;
      tokenStart = false;
      continue;
    }
    if ((c === 58 /* : */ && spaceNext) || (c === 44 /* , */ && flow > 0)) {
      if (++nodes > maxNodes) return tooMany(i);
    }
    if (c === 58 /* : */ && spaceNext && flow === 0) {
      onLine++;
      if (indents.length + onLine + flow > maxDepth) return tooDeep(i);
    }
    tokenStart = c === 58 /* : */ || c === 44; /* , */
  }
  return undefined;
}
