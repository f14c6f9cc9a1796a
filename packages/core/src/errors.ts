/**
 * The one error catalogue. Every error Weft raises on purpose has a stable
 * code here, a message template and the HTTP (and gRPC) status it maps to.
 * Tests assert on `code`, never on text. Layers add context through `cause`;
 * one place per listener turns a WeftError into a response (see
 * controlplane/src/http/respond.ts).
 */

interface ErrorSpec {
  /** HTTP status when this error reaches a client. */
  readonly status: number;
  /** gRPC status code (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
  readonly grpc: number;
  /** Message template; `{name}` is replaced from the params. */
  readonly message: string;
}

export const ERRORS = {
  // --- input ---
  WEFT_ERR_INVALID_JSON: { status: 400, grpc: 3, message: "request body is not valid JSON: {detail}" },
  WEFT_ERR_VALIDATION: { status: 400, grpc: 3, message: "{detail}" },
  WEFT_ERR_UNKNOWN_KIND: {
    status: 400,
    grpc: 3,
    message: 'unknown kind "{kind}"; expected one of {expected}',
  },
  WEFT_ERR_BAD_QUERY: { status: 400, grpc: 3, message: 'query parameter "{param}": {detail}' },
  WEFT_ERR_BAD_PATH: { status: 400, grpc: 3, message: "{detail}" },
  WEFT_ERR_BODY_TOO_LARGE: {
    status: 413,
    grpc: 8,
    message: "request body exceeds the limit of {limit} bytes",
  },
  WEFT_ERR_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    grpc: 3,
    message: 'content-type "{contentType}" is not supported; send application/json',
  },
  WEFT_ERR_HEADERS_TOO_LARGE: { status: 431, grpc: 8, message: "request headers too large" },
  WEFT_ERR_BAD_REQUEST: { status: 400, grpc: 3, message: "malformed HTTP request: {detail}" },
  WEFT_ERR_REQUEST_TIMEOUT: { status: 408, grpc: 4, message: "request not received in time" },
  WEFT_ERR_CONFIG_INVALID: { status: 400, grpc: 3, message: "{detail}" },
  WEFT_ERR_USAGE: { status: 400, grpc: 3, message: "{detail}" },
  // --- lookup ---
  WEFT_ERR_NOT_FOUND: { status: 404, grpc: 5, message: "{what} not found" },
  WEFT_ERR_ROUTE_NOT_FOUND: { status: 404, grpc: 12, message: "no API route for {method} {path}" },
  WEFT_ERR_METHOD_NOT_ALLOWED: {
    status: 405,
    grpc: 12,
    message: "method {method} not allowed on {path}; allowed: {allowed}",
  },
  WEFT_ERR_CONFLICT: { status: 409, grpc: 10, message: "{detail}" },
  // --- ACL ---
  WEFT_ERR_UNAUTHENTICATED: { status: 401, grpc: 16, message: "{detail}" },
  WEFT_ERR_PERMISSION_DENIED: { status: 403, grpc: 7, message: "token lacks permission {permission}" },
  // --- CA ---
  WEFT_ERR_CSR_INVALID: { status: 400, grpc: 3, message: "CSR refused: {detail}" },
  WEFT_ERR_CERT_TTL_TOO_LONG: {
    status: 400,
    grpc: 3,
    message:
      "requested certificate lifetime {requested} exceeds the mesh maximum {max} (Mesh certificates.maxLeafTtl)",
  },
  WEFT_ERR_IDENTITY_DENIED: {
    status: 403,
    grpc: 7,
    message: 'token may not obtain an identity for service "{service}": needs {permission}',
  },
  WEFT_ERR_CA_ROTATION_PENDING: {
    status: 409,
    grpc: 9,
    message:
      "a root rotation is still in progress: root {rootId} retires when its last leaf expires or is replaced (at the latest {until})",
  },
  // --- store ---
  WEFT_ERR_STORE_CORRUPT: {
    status: 500,
    grpc: 15,
    message:
      "store at {path} is corrupt or unreadable: {detail}; refusing to start (restore a backup of the data dir, or move the file away to start empty on purpose)",
  },
  WEFT_ERR_STORE_COMPACTED: {
    status: 410,
    grpc: 11,
    message: "revision {revision} has been compacted; the oldest watchable revision is {oldest}",
  },
  WEFT_ERR_STORE_CLOSED: { status: 503, grpc: 14, message: "store is closed" },
  WEFT_ERR_STORE_FAILED: { status: 503, grpc: 14, message: "store write failed: {detail}" },
  WEFT_ERR_STORE_LOCKED: {
    status: 503,
    grpc: 9,
    message: "store at {path} is in use by another Weft server ({detail}); stop it or use another data dir",
  },
  // --- transport / server ---
  WEFT_ERR_UNREACHABLE: {
    status: 503,
    grpc: 14,
    message: "cannot reach the control plane at {addr}: {detail}",
  },
  WEFT_ERR_UNAVAILABLE: { status: 503, grpc: 14, message: "{detail}" },
  WEFT_ERR_TIMEOUT: { status: 504, grpc: 4, message: "{detail}" },
  WEFT_ERR_INTERNAL: { status: 500, grpc: 13, message: "internal error (reference {ref})" },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export type ErrorParams = Record<string, string | number | boolean | undefined>;

function render(template: string, params: ErrorParams): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const v = params[name];
    return v === undefined ? `{${name}}` : String(v);
  });
}

export class WeftError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly grpc: number;
  readonly params: ErrorParams;

  constructor(code: ErrorCode, params: ErrorParams = {}, options?: { cause?: unknown }) {
    const spec: ErrorSpec = ERRORS[code];
    super(render(spec.message, params), options);
    this.name = "WeftError";
    this.code = code;
    this.status = spec.status;
    this.grpc = spec.grpc;
    this.params = params;
  }

  /** The body every API error response carries: `{error: {code, message}}`. */
  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

/** Builds a catalogued error. `weftError("WEFT_ERR_NOT_FOUND", {what: "service api"})`. */
export function weftError(code: ErrorCode, params?: ErrorParams, options?: { cause?: unknown }): WeftError {
  return new WeftError(code, params, options);
}

export function isWeftError(e: unknown, code?: ErrorCode): e is WeftError {
  return e instanceof WeftError && (code === undefined || e.code === code);
}

/** A short human description of any thrown value, for logs and CLI output. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
