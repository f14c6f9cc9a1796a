export { HealthChecker, type HealthCheckerOptions } from "./checker.js";
export {
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
  grpcFrame,
  MAX_GRPC_MESSAGE_BYTES,
  readGrpcFrame,
  SERVING_STATUS,
  servingStatusName,
} from "./grpc-health-codec.js";
export { type ProbeFn, probe } from "./probe.js";
export {
  type HealthCheckSpec,
  type HealthStatus,
  MAX_OUTPUT_CHARS,
  type ProbeOptions,
  type ProbeResult,
  type ProbeTarget,
} from "./result.js";
