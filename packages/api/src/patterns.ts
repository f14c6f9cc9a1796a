/**
 * Patterns with no schema library behind them, so that light entry points
 * (`@weft/api/client`, `@weft/api/spiffe`, used by the sidecar) do not load
 * zod and the resource schemas.
 */

/** A service or resource name: a DNS label (RFC 1123), so it can sit in a SPIFFE ID and a hostname. */
export const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Blocking queries (`?index=N&wait=D`): the wait when none is given, and the
 * most the server holds a read. Both sides of the wire use these.
 */
export const BLOCKING_DEFAULT_WAIT_MS = 5 * 60_000;
export const BLOCKING_MAX_WAIT_MS = 10 * 60_000;
