/**
 * Named debug tracing, switched on by the environment (like grpc-js's
 * GRPC_TRACE): `WEFT_TRACE=store,health` or `WEFT_TRACE=all`. Off by default
 * and cheap when off: `tracer(name)` returns a no-op.
 */

const enabled = new Set(
  (process.env.WEFT_TRACE ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean),
);

export type TraceFn = (msg: string, fields?: Record<string, unknown>) => void;

const noop: TraceFn = () => {};

export function tracer(name: string): TraceFn {
  if (!enabled.has(name) && !enabled.has("all")) return noop;
  return (msg, fields) => {
    const line = { t: new Date().toISOString(), trace: name, msg, ...fields };
    process.stderr.write(`${JSON.stringify(line)}\n`);
  };
}
