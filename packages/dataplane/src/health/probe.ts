/**
 * One health probe of the app, whichever kind: the single entry point the
 * checker (and anyone else) calls. Never rejects: a bad spec, a bad target
 * or an unexpected exception is a critical result with the reason.
 */
import { probeGrpc } from "./grpc-check.js";
import { probeHttp } from "./http-check.js";
import {
  errorText,
  type HealthCheckSpec,
  type ProbeOptions,
  type ProbeResult,
  type ProbeTarget,
  result,
} from "./result.js";
import { probeTcp } from "./tcp-check.js";

export type ProbeFn = (
  spec: HealthCheckSpec,
  target: ProbeTarget,
  timeoutMs: number,
  opts?: ProbeOptions,
) => Promise<ProbeResult>;

/** Node's timers take at most a signed 32-bit delay. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** Why `spec` cannot be probed, or undefined when it can. The checker refuses such a spec up front. */
export function specProblem(spec: HealthCheckSpec): string | undefined {
  switch (spec.kind) {
    case "http":
      // Origin-form only: a full URL or a path with spaces or controls would be sent somewhere else, or not at all.
      if (typeof spec.path !== "string" || !/^\/[\x21-\x7e]*$/.test(spec.path)) {
        return `http check path must start with "/" and contain only visible ASCII: ${JSON.stringify(spec.path)}`;
      }
      return undefined;
    case "tcp":
      return undefined;
    case "grpc":
      if (spec.service !== undefined && typeof spec.service !== "string")
        return "grpc check service must be a string";
      return undefined;
    default:
      return `unknown health check kind ${JSON.stringify((spec as { kind: unknown }).kind)}`;
  }
}

export function targetProblem(target: ProbeTarget): string | undefined {
  if (typeof target.host !== "string" || target.host === "") return "health check target host is empty";
  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
    return `health check target port ${target.port} is not in 1-65535`;
  }
  return undefined;
}

export function timeoutProblem(timeoutMs: number): string | undefined {
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_TIMEOUT_MS) {
    return `health check timeout ${timeoutMs} ms is not in 1-${MAX_TIMEOUT_MS}`;
  }
  return undefined;
}

export async function probe(
  spec: HealthCheckSpec,
  target: ProbeTarget,
  timeoutMs: number,
  opts: ProbeOptions = {},
): Promise<ProbeResult> {
  try {
    const problem = specProblem(spec) ?? targetProblem(target) ?? timeoutProblem(timeoutMs);
    if (problem) return result("critical", problem);
    switch (spec.kind) {
      case "http":
        return await probeHttp(spec.path, target, timeoutMs, opts);
      case "tcp":
        return await probeTcp(target, timeoutMs, opts);
      case "grpc":
        return await probeGrpc(spec.service ?? "", target, timeoutMs, opts);
    }
  } catch (e) {
    return result("critical", `health probe failed: ${errorText(e)}`);
  }
}
