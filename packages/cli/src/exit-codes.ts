/**
 * What `weft` exits with. Scripts branch on these, so they are a contract
 * (listed in `weft --help` and packages/cli/README.md):
 *
 *   0  ok
 *   1  server or runtime error (anything not below)
 *   2  invalid input or usage: bad flags, unknown kind, invalid file, 400/413/415
 *   3  the control plane is unreachable (connection refused, no answer in time)
 *   4  unauthenticated (401) or permission denied (403)
 *   5  not found (404)
 */
import type { ErrorCode } from "@weft/core";
import { WeftError } from "@weft/core";

export const EXIT = {
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  UNREACHABLE: 3,
  DENIED: 4,
  NOT_FOUND: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

const BY_CODE: Partial<Record<ErrorCode, ExitCode>> = {
  WEFT_ERR_INVALID_JSON: EXIT.USAGE,
  WEFT_ERR_VALIDATION: EXIT.USAGE,
  WEFT_ERR_UNKNOWN_KIND: EXIT.USAGE,
  WEFT_ERR_BAD_QUERY: EXIT.USAGE,
  WEFT_ERR_BAD_PATH: EXIT.USAGE,
  WEFT_ERR_BODY_TOO_LARGE: EXIT.USAGE,
  WEFT_ERR_UNSUPPORTED_MEDIA_TYPE: EXIT.USAGE,
  WEFT_ERR_HEADERS_TOO_LARGE: EXIT.USAGE,
  WEFT_ERR_CONFIG_INVALID: EXIT.USAGE,
  WEFT_ERR_USAGE: EXIT.USAGE,
  WEFT_ERR_UNREACHABLE: EXIT.UNREACHABLE,
  WEFT_ERR_UNAUTHENTICATED: EXIT.DENIED,
  WEFT_ERR_PERMISSION_DENIED: EXIT.DENIED,
  WEFT_ERR_NOT_FOUND: EXIT.NOT_FOUND,
};

/**
 * The exit code for an error. A client-side timeout (no answer from the
 * control plane) counts as unreachable; the same code answered by a server
 * (it has a `serverCode`) is a server error.
 */
export function exitCodeFor(err: unknown): ExitCode {
  if (!(err instanceof WeftError)) return EXIT.ERROR;
  const fromServer = "serverCode" in err;
  if (err.code === "WEFT_ERR_TIMEOUT") return fromServer ? EXIT.ERROR : EXIT.UNREACHABLE;
  const mapped = BY_CODE[err.code];
  if (mapped !== undefined) return mapped;
  // Any other 401/403 (e.g. WEFT_ERR_IDENTITY_DENIED from the CA) is still a refusal of the token.
  if (fromServer && (err.status === 401 || err.status === 403)) return EXIT.DENIED;
  if (fromServer && err.status >= 400 && err.status < 500 && err.status !== 409) return EXIT.USAGE;
  return EXIT.ERROR;
}

/** The text for the `--help` epilog and the README. */
export const EXIT_CODES_HELP = `Exit codes:
  0  ok
  1  server or runtime error
  2  invalid input or usage (bad flags, unknown kind, invalid file)
  3  control plane unreachable
  4  unauthenticated or permission denied
  5  not found`;
